//! SCIM User resources: validating what an identity provider sends (RFC 7643 §4.1) into
//! what Roster stores, and rendering a stored user back.

use super::{
    ScimError, USER_SCHEMA,
    schema::{self, Attr, Schema},
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
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
    pub active: bool,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The primary email, or the first one.
    pub email: Option<String>,
    /// The resource as sent, without `id`, `meta`, `password` and `groups`.
    pub resource: Map<String, Value>,
}

/// Whether any string in `value`, key or value, holds a NUL character — which PostgreSQL
/// cannot store, so a resource holding one is refused before it reaches the database,
/// whether it came over HTTP or as another service's command.
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn refuse_nul(value: &Value) -> Result<(), ScimError> {
    if has_nul(value) {
        return Err(ScimError::invalid_value(
            "a NUL character (\\u0000) is in the resource; no attribute may contain one",
        ));
    }
    Ok(())
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

/// Canonical names for the attributes of `schema` in `obj` (unknown ones kept as sent).
pub fn canonical_attrs(obj: Map<String, Value>, schema: &'static Schema) -> Map<String, Value> {
    obj.into_iter()
        .map(|(k, v)| canonical_attr(k, v, schema))
        .collect()
}

fn canonical_attr(k: String, v: Value, schema: &'static Schema) -> (String, Value) {
    match schema.attr(&k) {
        Some(def) => (def.name.to_owned(), canonical_sub(v, def)),
        None => (k, v),
    }
}

fn canonical_sub(v: Value, def: &'static Attr) -> Value {
    let rename = |m: Map<String, Value>| -> Value {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| match def.sub_attr(&k) {
                    Some(s) => (s.name.to_owned(), v),
                    None => (k, v),
                })
                .collect(),
        )
    };
    match v {
        Value::Object(m) if !def.sub.is_empty() => rename(m),
        Value::Array(items) if !def.sub.is_empty() => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::Object(m) => rename(m),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
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

/// Accepts booleans and the strings `"true"`/`"false"` in any case (Entra sends `"False"`).
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn key_ci(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn take_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Longest `externalId` (characters). It is indexed, and PostgreSQL refuses an index entry
/// over ~2.7 kB — a longer one would fail in the database rather than as bad input.
/// Okta's ids are 20 characters, Entra's 36.
pub const MAX_EXTERNAL_ID_LEN: usize = 512;

fn external_id(obj: &Map<String, Value>) -> Result<Option<String>, ScimError> {
    let id = optional_string(obj, "externalId")?;
    if id
        .as_ref()
        .is_some_and(|x| x.chars().count() > MAX_EXTERNAL_ID_LEN)
    {
        return Err(ScimError::invalid_value(format!(
            "externalId is longer than {MAX_EXTERNAL_ID_LEN} characters"
        )));
    }
    Ok(id)
}

fn optional_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match take_ci(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
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

/// The weak ETag of a version, as in `meta.version` and the `ETag` header.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
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

/// Longest group `displayName` accepted.
pub const MAX_DISPLAY_NAME_LEN: usize = 256;

/// A validated SCIM Group: its name, external id and member user ids (deduplicated, in
/// the order sent), and the other attributes as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<Uuid>,
    /// Everything else, canonical names, without `id`, `meta` and `members`.
    pub resource: Map<String, Value>,
}

impl GroupInput {
    pub fn from_json(body: Value) -> Result<Self, ScimError> {
        refuse_nul(&body)?;
        let Value::Object(obj) = body else {
            return Err(ScimError::invalid_syntax("a Group must be a JSON object"));
        };
        let mut obj: Map<String, Value> = obj
            .into_iter()
            .filter(|(k, _)| {
                !["id", "meta", "schemas"]
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(k))
            })
            .map(|(k, v)| match schema::GROUP.attr(&k) {
                Some(def) => (def.name.to_owned(), canonical_sub(v, def)),
                None => (k, v),
            })
            .collect();
        let display_name = match obj.get("displayName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ScimError::invalid_value("displayName is required"));
            }
            Some(_) => return Err(ScimError::invalid_value("displayName must be a string")),
        };
        if display_name.chars().count() > MAX_DISPLAY_NAME_LEN
            || display_name.chars().any(char::is_control)
        {
            return Err(ScimError::invalid_value(format!(
                "displayName must be at most {MAX_DISPLAY_NAME_LEN} characters, without control characters"
            )));
        }
        obj.insert("displayName".into(), Value::String(display_name.clone()));
        let external_id = external_id(&obj)?;
        let members = match obj.remove("members") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                let mut ids: Vec<Uuid> = Vec::with_capacity(list.len());
                let mut seen: HashSet<Uuid> = HashSet::with_capacity(list.len());
                for m in &list {
                    let value = m.get("value").and_then(Value::as_str).unwrap_or_default();
                    if m.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("Group"))
                    {
                        return Err(ScimError::invalid_value("groups cannot contain groups"));
                    }
                    let id = Uuid::parse_str(value.trim()).map_err(|_| {
                        ScimError::invalid_value(format!("member {value:?} is not a user id"))
                    })?;
                    if seen.insert(id) {
                        ids.push(id);
                    }
                }
                ids
            }
            Some(_) => return Err(ScimError::invalid_value("members must be an array")),
        };
        obj.insert("schemas".into(), json!([super::GROUP_SCHEMA]));
        Ok(Self {
            display_name,
            external_id,
            members,
            resource: obj,
        })
    }
}

/// A member as a group lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRef {
    pub id: Uuid,
    pub display: Option<String>,
}

/// What `render_group` needs of a stored group.
pub struct StoredGroup<'a> {
    pub id: Uuid,
    pub display_name: &'a str,
    pub external_id: Option<&'a str>,
    pub resource: &'a Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Renders a group; `members` is `None` when they were not asked for.
pub fn render_group(g: &StoredGroup<'_>, members: Option<&[MemberRef]>, base_url: &str) -> Value {
    let mut obj = match g.resource {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    obj.insert("schemas".into(), json!([super::GROUP_SCHEMA]));
    obj.insert("id".into(), json!(g.id.to_string()));
    obj.insert("displayName".into(), json!(g.display_name));
    match g.external_id {
        Some(x) => obj.insert("externalId".into(), json!(x)),
        None => obj.remove("externalId"),
    };
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                let mut v = json!({
                    "value": m.id.to_string(),
                    "$ref": format!("{base_url}/Users/{}", m.id),
                    "type": "User",
                });
                if let Some(d) = &m.display {
                    v["display"] = json!(d);
                }
                v
            })
            .collect();
        obj.insert("members".into(), Value::Array(list));
    }
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": g.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "lastModified": g.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "location": format!("{base_url}/Groups/{}", g.id),
            "version": etag(g.version),
        }),
    );
    Value::Object(obj)
}

/// Sets a rendered user's read-only `groups` from its memberships (id, displayName).
pub fn set_user_groups(user: &mut Value, groups: &[(Uuid, String)], base_url: &str) {
    let list: Vec<Value> = groups
        .iter()
        .map(|(id, name)| {
            json!({"value": id.to_string(), "display": name, "$ref": format!("{base_url}/Groups/{id}"), "type": "direct"})
        })
        .collect();
    if let Value::Object(obj) = user {
        obj.insert("groups".into(), Value::Array(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn okta_body() -> Value {
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "jane.doe@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "emails": [{"primary": true, "value": "jane.doe@example.com", "type": "work"}],
            "displayName": "Jane Doe",
            "locale": "en-US",
            "externalId": "00u1abcd",
            "groups": [],
            "password": "xK3!placeholder",
            "active": true
        })
    }

    #[test]
    fn an_external_id_fits_its_index() {
        let long = "x".repeat(MAX_EXTERNAL_ID_LEN + 1);
        let e = UserInput::from_json(json!({"userName": "a", "externalId": long}))
            .expect_err("too long");
        assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
        let e = GroupInput::from_json(json!({"displayName": "g", "externalId": long}))
            .expect_err("too long");
        assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
        let fits = "é".repeat(MAX_EXTERNAL_ID_LEN);
        assert!(UserInput::from_json(json!({"userName": "a", "externalId": fits})).is_ok());
    }

    #[test]
    fn a_nul_anywhere_is_refused_for_users_and_groups() {
        for body in [
            json!({"userName": "a\u{0}b"}),
            json!({"userName": "a", "name": {"givenName": "x\u{0}"}}),
            json!({"userName": "a", "x\u{0}": 1}),
        ] {
            let e = UserInput::from_json(body).expect_err("NUL");
            assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
        }
        let e = GroupInput::from_json(json!({"displayName": "g\u{0}"})).expect_err("NUL");
        assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
        assert!(UserInput::from_json(json!({"userName": "a"})).is_ok());
    }

    #[test]
    fn okta_create_body_is_accepted_without_its_password() {
        let u = UserInput::from_json(okta_body()).expect("valid");
        assert_eq!(u.user_name, "jane.doe@example.com");
        assert_eq!(u.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(u.given_name.as_deref(), Some("Jane"));
        assert_eq!(u.external_id.as_deref(), Some("00u1abcd"));
        assert!(u.active);
        assert!(!u.resource.contains_key("password"));
        assert!(!u.resource.contains_key("groups"));
        assert_eq!(u.resource["locale"], "en-US");
    }

    #[test]
    fn names_are_canonical_and_manager_an_object() {
        let u = UserInput::from_json(json!({
            "USERNAME": "a@x.io",
            "Name": {"GIVENNAME": "A"},
            "emails": [{"VALUE": "a@x.io", "Primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"EmployeeNumber": "7", "manager": "m-1"},
            "urn:ietf:params:scim:schemas:extension:roster:2.0:User": {"shirtSize": "M"},
            "schemas": ["whatever"],
            "nickName": "Al"
        }))
        .expect("valid");
        assert_eq!(u.user_name, "a@x.io");
        assert_eq!(u.given_name.as_deref(), Some("A"));
        assert_eq!(u.email.as_deref(), Some("a@x.io"));
        let ent = &u.resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ent["employeeNumber"], "7");
        assert_eq!(ent["manager"], json!({"value": "m-1"}));
        assert_eq!(
            u.resource["urn:ietf:params:scim:schemas:extension:roster:2.0:User"]["shirtSize"],
            "M"
        );
        assert_eq!(
            u.resource["schemas"],
            json!([
                USER_SCHEMA,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "urn:ietf:params:scim:schemas:extension:roster:2.0:User"
            ])
        );
        let cleared = UserInput::from_json(json!({"userName": "a",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": ""}}))
        .expect("valid");
        assert!(
            cleared
                .resource
                .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
                .is_none()
        );
    }

    #[test]
    fn groups_validate_members_and_names() {
        let id = Uuid::new_v4();
        let g = GroupInput::from_json(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "DISPLAYNAME": " Eng ", "id": "ignored",
            "members": [{"value": id.to_string(), "display": "A"}, {"value": id.to_string()}]
        }))
        .expect("valid");
        assert_eq!(g.display_name, "Eng");
        assert_eq!(g.members, vec![id], "duplicates collapse");
        assert!(!g.resource.contains_key("id") && !g.resource.contains_key("members"));
        for bad in [
            json!({}),
            json!({"displayName": ""}),
            json!({"displayName": "G", "members": [{"value": "not-an-id"}]}),
            json!({"displayName": "G", "members": "x"}),
            json!({"displayName": "G", "members": [{"value": id.to_string(), "type": "Group"}]}),
        ] {
            assert_eq!(
                GroupInput::from_json(bad.clone())
                    .expect_err(&bad.to_string())
                    .status,
                400
            );
        }
    }

    #[test]
    fn strings_for_active_are_accepted() {
        let mut b = okta_body();
        b["active"] = json!("False");
        let u = UserInput::from_json(b).expect("valid");
        assert!(!u.active);
        assert_eq!(u.resource["active"], json!(false));
    }

    #[test]
    fn bad_users_are_refused_with_invalid_value() {
        for (body, why) in [
            (json!({}), "no userName"),
            (json!({"userName": ""}), "empty userName"),
            (json!({"userName": 7}), "number userName"),
            (json!({"userName": "a\r\nb"}), "CRLF"),
            (json!({"userName": "a", "active": "maybe"}), "bad active"),
            (json!({"userName": "a", "emails": "x"}), "bad emails"),
            (
                json!({"userName": "a", "emails": [{"value": "a@b.c\r\nBcc: x@evil.io"}]}),
                "CRLF in an email",
            ),
            (
                json!({"userName": "a", "emails": [{"value": "Eve <a@b.c>"}]}),
                "a display name in an email",
            ),
            (
                json!({"userName": "a", "emails": [{"value": "a@b.c, x@evil.io"}]}),
                "two addresses",
            ),
            (json!({"userName": "a", "name": []}), "bad name"),
            (json!({"userName": "x".repeat(300)}), "long"),
        ] {
            let err = UserInput::from_json(body).expect_err(why);
            assert_eq!(err.status, 400, "{why}");
        }
        assert!(UserInput::from_json(json!([1])).is_err());
    }

    #[test]
    fn email_addresses_are_one_plain_address() {
        for good in [
            "a@b.c",
            "jane.doe+okta@example.co.uk",
            "x@localhost",
            "é@bücher.de",
        ] {
            assert!(is_email_address(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@b.c",
            "a@",
            "a@@b.c",
            "a b@c.d",
            "a@b.c\nBcc: e@f.g",
            "<a@b.c>",
            "a@b.c>",
            "\"a\"@b.c",
            "a@b..c",
            ".a@b.c",
            "a@b.c;d@e.f",
            "a@b.c\u{0}",
        ] {
            assert!(!is_email_address(bad), "{bad:?}");
        }
        assert!(!is_email_address(&format!("{}@b.c", "a".repeat(65))));
    }

    #[test]
    fn rendering_adds_id_meta_and_never_a_password() {
        let input = UserInput::from_json(okta_body()).expect("valid");
        let resource = Value::Object(input.resource);
        let id = Uuid::new_v4();
        let now = Utc::now();
        let v = render_user(
            &StoredUser {
                id,
                user_name: "jane.doe@example.com",
                external_id: Some("00u1abcd"),
                active: true,
                resource: &resource,
                version: 3,
                created_at: now,
                updated_at: now,
            },
            "http://x/scim/v2",
        );
        assert_eq!(v["id"], id.to_string());
        assert_eq!(v["meta"]["version"], "W/\"3\"");
        assert_eq!(
            v["meta"]["location"],
            format!("http://x/scim/v2/Users/{id}")
        );
        assert!(v.get("password").is_none());
        assert_eq!(v["name"]["familyName"], "Doe");
    }
}
