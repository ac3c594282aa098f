//! What users and groups share: reading attributes case-insensitively, their canonical
//! names, the checks every resource passes (no NUL, a bounded `externalId`), and ETags.

use crate::scim::{
    ScimError,
    schema::{Attr, Schema},
};
use serde_json::{Map, Value};

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

pub(super) fn refuse_nul(value: &Value) -> Result<(), ScimError> {
    if has_nul(value) {
        return Err(ScimError::invalid_value(
            "a NUL character (\\u0000) is in the resource; no attribute may contain one",
        ));
    }
    Ok(())
}

/// Canonical names for the attributes of `schema` in `obj` (unknown ones kept as sent).
pub fn canonical_attrs(obj: Map<String, Value>, schema: &'static Schema) -> Map<String, Value> {
    obj.into_iter()
        .map(|(k, v)| canonical_attr(k, v, schema))
        .collect()
}

pub(super) fn canonical_attr(k: String, v: Value, schema: &'static Schema) -> (String, Value) {
    match schema.attr(&k) {
        Some(def) => (def.name.to_owned(), canonical_sub(v, def)),
        None => (k, v),
    }
}

pub(super) fn canonical_sub(v: Value, def: &'static Attr) -> Value {
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

/// Accepts booleans and the strings `"true"`/`"false"` in any case (Entra sends `"False"`).
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

pub(super) fn key_ci(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

pub(super) fn take_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Longest `externalId` (characters). It is indexed, and PostgreSQL refuses an index entry
/// over ~2.7 kB — a longer one would fail in the database rather than as bad input.
/// Okta's ids are 20 characters, Entra's 36.
pub const MAX_EXTERNAL_ID_LEN: usize = 512;

pub(super) fn external_id(obj: &Map<String, Value>) -> Result<Option<String>, ScimError> {
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

pub(super) fn optional_string(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ScimError> {
    match take_ci(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// The weak ETag of a version, as in `meta.version` and the `ETag` header.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}
