//! Reading and writing mapped values in a SCIM resource, and what a provisioning call
//! writes given the org's mapping.

use super::{Mapping, Policy, attribute};
use crate::scim::{
    ScimError,
    patch::{self, AttrTarget, OpKind, PatchOp, PatchPath},
    schema,
};
use serde_json::{Map, Value};

/// The value at a mapped path in a resource (a string, number or boolean, as text).
pub fn read(resource: &Map<String, Value>, scim_attribute: &str) -> Option<String> {
    let PatchPath::Attr(t) = attribute(scim_attribute, false).ok()? else {
        return None;
    };
    let value = lookup(resource, &t)?;
    match value {
        Value::String(s) => Some(s.clone()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn lookup<'a>(resource: &'a Map<String, Value>, t: &AttrTarget) -> Option<&'a Value> {
    let container = match t.extension {
        Some(ext) => resource
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(ext.id))
            .map(|(_, v)| v)?
            .as_object()?,
        None => resource,
    };
    let value = container
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&t.attr))
        .map(|(_, v)| v)?;
    let value = match (&t.filter, value) {
        (Some(f), Value::Array(items)) => items.iter().find(|e| patch::element_matches(e, f))?,
        (Some(_), _) => return None,
        (None, v) => v,
    };
    match (&t.sub, value) {
        // Entra PATCHes `manager` as a bare id: a complex attribute's bare value is its
        // `value` (the PATCH keeps it as sent; the stored resource has `{"value"}`).
        (Some(sub), Value::String(_)) if sub.eq_ignore_ascii_case("value") => Some(value),
        (Some(sub), _) => value
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sub))
            .map(|(_, v)| v),
        (None, _) => Some(value),
    }
}

/// Sets (or, with `None`, clears) the value at a mapped path.
pub fn write(
    resource: &mut Map<String, Value>,
    scim_attribute: &str,
    value: Option<&str>,
) -> Result<(), ScimError> {
    let path = attribute(scim_attribute, false).map_err(ScimError::invalid_value)?;
    let op = PatchOp {
        op: OpKind::Replace,
        path: Some(path),
        value: Some(value.map_or(Value::Null, |v| Value::String(v.to_owned()))),
    };
    patch::apply(resource, &schema::USER, &[op])
}

/// What a provisioning call (`create` or an update) writes, given the org's mapping:
/// - the directory fields: on create every field not `ignore`d; on update only
///   `overwrite` fields, the others keep their stored values;
/// - the SCIM resource to store: for fields Okta may not change (`create_only` on update),
///   the stored value is written back into the resource, so `GET` returns what is stored.
pub fn apply(
    mapping: &[Mapping],
    resource: &mut Map<String, Value>,
    stored: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut fields = stored.cloned().unwrap_or_default();
    for m in mapping {
        match (m.policy, stored) {
            (Policy::Ignore, _) => {}
            (Policy::Overwrite, _) | (Policy::CreateOnly, None) => {
                match read(resource, &m.scim_attribute) {
                    Some(v) => {
                        fields.insert(m.field.clone(), Value::String(v));
                    }
                    None => {
                        fields.remove(&m.field);
                    }
                }
            }
            (Policy::CreateOnly, Some(_)) => {
                let kept = fields.get(&m.field).and_then(Value::as_str);
                let _ = write(resource, &m.scim_attribute, kept);
            }
        }
    }
    fields
}
