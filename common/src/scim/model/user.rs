//! SCIM User resources: validating what an identity provider sends (RFC 7643 §4.1) into
//! what Roster stores, and rendering a stored user back.

use super::attrs::{
    canonical_attr, canonical_attrs, external_id, key_ci, optional_string, parse_bool, refuse_nul,
    take_ci,
};
use super::etag;
use crate::scim::{ScimError, USER_SCHEMA, schema};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Longest `userName` accepted.
pub const MAX_USER_NAME_LEN: usize = 256;

/// Attributes a client may send but never sets: read-only or write-only (RFC 7643 §4.1).
const NOT_STORED: [&str; 4] = ["id", "meta", "password", "groups"];

/// A validated SCIM User: the columns Roster indexes, plus every attribute that was sent
/// (so `GET` returns what Okta `PUT`, including attributes Roster does not map).
#[derive(Clone, Debug, PartialEq)]
pub struct UserInput {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The primary email, or the first one.
    pub email: Option<String>,
    /// `active`: `false` takes the person out of the directory (a deactivation).
    pub active: bool,
    /// The resource as sent, without `id`, `meta`, `password` and `groups`.
    pub resource: Map<String, Value>,
}

impl UserInput {
    /// Validates a request body. Attribute names are matched case-insensitively.
    pub fn from_json(body: Value) -> Result<Self, ScimError> {
        refuse_nul(&body)?;
        let Value::Object(obj) = body else {
            return Err(ScimError::invalid_syntax("a User must be a JSON object"));
        };
        let mut obj = canonical_user(obj)?;
        let user_name = match take_ci(&obj, "userName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ScimError::invalid_value("userName is required"));
            }
            Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
        };
        if user_name.chars().count() > MAX_USER_NAME_LEN {
            return Err(ScimError::invalid_value(format!(
                "userName is longer than {MAX_USER_NAME_LEN} characters"
            )));
        }
        if user_name.chars().any(char::is_control) {
            return Err(ScimError::invalid_value(
                "userName contains control characters",
            ));
        }
        let active = match take_ci(&obj, "active") {
            None | Some(Value::Null) => true,
            Some(v) => {
                parse_bool(v).ok_or_else(|| ScimError::invalid_value("active must be a boolean"))?
            }
        };
        let external_id = external_id(&obj)?;
        let display_name = optional_string(&obj, "displayName")?;
        let (given_name, family_name) = match take_ci(&obj, "name") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(name)) => (
                optional_string(name, "givenName")?,
                optional_string(name, "familyName")?,
            ),
            Some(_) => return Err(ScimError::invalid_value("name must be an object")),
        };
        let email = primary_email(take_ci(&obj, "emails"))?;
        // Normalise the stored `active` to a real boolean ("False" from Entra included).
        if let Some(key) = key_ci(&obj, "active") {
            obj.insert(key, Value::Bool(active));
        }
        Ok(Self {
            user_name,
            external_id,
            active,
            display_name,
            given_name,
            family_name,
            email,
            resource: obj,
        })
    }
}

/// A User object with read-only and write-only attributes dropped, known attribute names
/// in their canonical spelling (`USERNAME` → `userName`, extension URNs included), the
/// enterprise `manager` as `{"value": …}` (Entra sends a bare id; `""` clears it), and
/// `schemas` listing the core schema and every extension present.
pub fn canonical_user(obj: Map<String, Value>) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (k, v) in obj {
        if NOT_STORED.iter().any(|n| n.eq_ignore_ascii_case(&k))
            || k.eq_ignore_ascii_case("schemas")
        {
            continue;
        }
        if let Some(ext) = schema::user_extension(&k) {
            let Value::Object(inner) = v else {
                return Err(ScimError::invalid_value(format!(
                    "{} must be an object",
                    ext.id
                )));
            };
            let mut inner = canonical_attrs(inner, ext);
            normalise_manager(&mut inner)?;
            if !inner.is_empty() {
                out.insert(ext.id.to_owned(), Value::Object(inner));
            }
            continue;
        }
        let (k, v) = canonical_attr(k, v, &schema::USER);
        out.insert(k, v);
    }
    let mut schemas = vec![Value::String(USER_SCHEMA.to_owned())];
    schemas.extend(
        out.iter()
            .filter(|(k, v)| k.to_ascii_lowercase().starts_with("urn:") && v.is_object())
            .map(|(k, _)| Value::String(k.clone())),
    );
    out.insert("schemas".to_owned(), Value::Array(schemas));
    Ok(out)
}

fn normalise_manager(ext: &mut Map<String, Value>) -> Result<(), ScimError> {
    match ext.get("manager").cloned() {
        None => {}
        Some(Value::Null) => {
            ext.remove("manager");
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            ext.remove("manager");
        }
        Some(Value::String(s)) => {
            ext.insert("manager".into(), json!({ "value": s.trim() }));
        }
        Some(Value::Object(m)) => {
            let value = m
                .get("value")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if value.is_empty() {
                ext.remove("manager");
            }
        }
        Some(_) => {
            return Err(ScimError::invalid_value(
                "manager must be an id or {\"value\": id}",
            ));
        }
    }
    Ok(())
}

fn primary_email(emails: Option<&Value>) -> Result<Option<String>, ScimError> {
    let list = match emails {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ScimError::invalid_value("emails must be an array")),
    };
    let mut first = None;
    for item in list {
        let Value::Object(e) = item else {
            return Err(ScimError::invalid_value("each email must be an object"));
        };
        let value = optional_string(e, "value")?.filter(|v| !v.is_empty());
        if let Some(v) = &value
            && !is_email_address(v)
        {
            return Err(ScimError::invalid_value(
                "each email value must be one address, like jane@example.com",
            ));
        }
        let primary = take_ci(e, "primary").and_then(parse_bool).unwrap_or(false);
        if primary && value.is_some() {
            return Ok(value);
        }
        if first.is_none() {
            first = value;
        }
    }
    Ok(first)
}

/// Longest email address accepted (RFC 5321 §4.5.3.1.3 limits a path to 256 octets).
const MAX_EMAIL_LEN: usize = 254;

/// A plain `local@domain` address: no spaces, control characters, display names, lists or
/// comments, so nothing sent as an address can become a header or a second recipient.
pub fn is_email_address(s: &str) -> bool {
    const SPECIAL: &[char] = &['<', '>', '(', ')', '[', ']', '\\', ',', ';', ':', '"', '@'];
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let clean = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && !part.ends_with('.')
            && !part.contains("..")
            && !part
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || SPECIAL.contains(&c))
    };
    s.len() <= MAX_EMAIL_LEN && local.len() <= 64 && clean(local) && clean(domain)
}

/// What `render_user` needs of a stored user.
pub struct StoredUser<'a> {
    pub id: Uuid,
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    pub active: bool,
    pub resource: &'a Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Renders a stored user as a SCIM User; `base_url` is the SCIM base (`…/scim/v2`).
pub fn render_user(u: &StoredUser<'_>, base_url: &str) -> Value {
    let mut obj = match u.resource {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    obj.retain(|k, _| {
        ![
            "id",
            "username",
            "active",
            "externalid",
            "meta",
            "schemas",
            "password",
        ]
        .contains(&k.to_ascii_lowercase().as_str())
    });
    let schemas = match u.resource.get("schemas") {
        Some(Value::Array(s)) if !s.is_empty() => Value::Array(s.clone()),
        _ => json!([USER_SCHEMA]),
    };
    obj.insert("schemas".into(), schemas);
    obj.insert("id".into(), json!(u.id.to_string()));
    obj.insert("userName".into(), json!(u.user_name));
    if let Some(x) = u.external_id {
        obj.insert("externalId".into(), json!(x));
    }
    obj.insert("active".into(), json!(u.active));
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": u.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "lastModified": u.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "location": format!("{base_url}/Users/{}", u.id),
            "version": etag(u.version),
        }),
    );
    Value::Object(obj)
}
