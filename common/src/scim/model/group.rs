//! SCIM Group resources: validating what an identity provider sends (RFC 7643 §4.2), and
//! rendering a stored group (and a user's `groups`) back.

use super::attrs::{canonical_sub, external_id, refuse_nul};
use super::etag;
use crate::scim::{ScimError, schema};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use uuid::Uuid;

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
        obj.insert("schemas".into(), json!([crate::scim::GROUP_SCHEMA]));
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
    obj.insert("schemas".into(), json!([crate::scim::GROUP_SCHEMA]));
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
