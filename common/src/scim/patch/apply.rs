//! Applying parsed operations to a resource held as a JSON object.

use super::{OpKind, PatchOp, PatchPath, filtered::apply_filtered, no_target, parse_path};
use crate::scim::{
    ScimError,
    schema::{self, Schema},
};
use serde_json::{Map, Value};

/// The canonical spelling of `name` in `schema`, else the key already used in `obj`, else `name`.
pub(super) fn key_for(
    obj: &Map<String, Value>,
    schema: Option<&'static Schema>,
    name: &str,
) -> String {
    match schema.and_then(|s| s.attr(name)) {
        Some(a) => a.name.to_owned(),
        None => key_in(obj, name),
    }
}

/// The canonical spelling of sub-attribute `name` of `parent`, else the key already used
/// in `obj`, else `name`.
pub(super) fn sub_key(
    obj: &Map<String, Value>,
    parent: Option<&'static schema::Attr>,
    name: &str,
) -> String {
    match parent.and_then(|p| p.sub_attr(name)) {
        Some(a) => a.name.to_owned(),
        None => key_in(obj, name),
    }
}

/// The key of `obj` that is `name` case-insensitively, else `name`.
fn key_in(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// Whether a value clears its target (Entra sends `""`, others `null`).
pub(super) fn is_clear(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_str().is_some_and(str::is_empty)
}

/// Applies operations in order to `resource` (a resource of `core`). On error the
/// resource may be partly changed: apply to a copy and keep it only on success.
pub fn apply(
    resource: &mut Map<String, Value>,
    core: &'static Schema,
    ops: &[PatchOp],
) -> Result<(), ScimError> {
    for op in ops {
        apply_one(resource, core, op)?;
    }
    Ok(())
}

fn apply_one(
    resource: &mut Map<String, Value>,
    core: &'static Schema,
    op: &PatchOp,
) -> Result<(), ScimError> {
    match (&op.path, op.op) {
        (None, OpKind::Add | OpKind::Replace) => {
            let Some(Value::Object(values)) = &op.value else {
                return Err(ScimError::invalid_value(
                    "an operation without a path needs an object value",
                ));
            };
            for (k, v) in values {
                if let Some(ext) = schema::user_extension(k).filter(|_| core.id == schema::USER.id)
                {
                    let Value::Object(inner) = v else {
                        return Err(ScimError::invalid_value(format!("{k} must be an object")));
                    };
                    let container = extension_object(resource, ext);
                    for (ik, iv) in inner {
                        set_attr(container, Some(ext), ik, None, iv.clone(), op.op)?;
                    }
                    continue;
                }
                // Keys may themselves be paths: `name.givenName`, `urn:…:User:employeeNumber`.
                let path = parse_path(k, core)?;
                apply_path(resource, core, &path, op.op, Some(v.clone()))?;
            }
            Ok(())
        }
        (None, OpKind::Remove) => Err(no_target("remove needs a path")),
        (Some(path), kind) => apply_path(resource, core, path, kind, op.value.clone()),
    }
}

fn extension_object<'a>(
    resource: &'a mut Map<String, Value>,
    ext: &'static Schema,
) -> &'a mut Map<String, Value> {
    let key = resource
        .keys()
        .find(|k| k.eq_ignore_ascii_case(ext.id))
        .cloned()
        .unwrap_or_else(|| ext.id.to_owned());
    let slot = resource
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn apply_path(
    resource: &mut Map<String, Value>,
    core: &'static Schema,
    path: &PatchPath,
    kind: OpKind,
    value: Option<Value>,
) -> Result<(), ScimError> {
    match path {
        PatchPath::Extension(ext) => {
            let key = key_for(resource, None, ext.id);
            match (kind, value) {
                (OpKind::Remove, _) => {
                    resource.remove(&key);
                }
                (_, Some(Value::Object(inner))) => {
                    let container = extension_object(resource, ext);
                    for (k, v) in inner {
                        set_attr(container, Some(ext), &k, None, v, kind)?;
                    }
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{} needs an object value",
                        ext.id
                    )));
                }
            }
            Ok(())
        }
        PatchPath::Attr(t) => {
            let (container, schema) = match t.extension {
                Some(ext) => (extension_object(resource, ext), Some(ext)),
                None => (resource, Some(core)),
            };
            match &t.filter {
                None => match kind {
                    OpKind::Remove => {
                        remove_attr(container, schema, &t.attr, t.sub.as_deref(), value.as_ref());
                        Ok(())
                    }
                    _ => {
                        let value = value.unwrap_or(Value::Null);
                        set_attr(container, schema, &t.attr, t.sub.as_deref(), value, kind)
                    }
                },
                Some(f) => apply_filtered(container, schema, t, f, kind, value),
            }
        }
    }
}

/// Add or replace `attr[.sub]` in `obj`.
fn set_attr(
    obj: &mut Map<String, Value>,
    schema: Option<&'static Schema>,
    attr: &str,
    sub: Option<&str>,
    value: Value,
    kind: OpKind,
) -> Result<(), ScimError> {
    // `name.givenName` given as one key in a pathless value.
    if sub.is_none()
        && let Some((a, s)) = attr.split_once('.')
    {
        return set_attr(obj, schema, a, Some(s), value, kind);
    }
    let def = schema.and_then(|s| s.attr(attr));
    let key = key_for(obj, schema, attr);
    if let Some(sub) = sub {
        if is_clear(&value) {
            if let Some(Value::Object(inner)) = obj.get_mut(&key) {
                let sk = sub_key(inner, def, sub);
                inner.remove(&sk);
            }
            return Ok(());
        }
        let slot = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(inner) = slot {
            let sk = sub_key(inner, def, sub);
            inner.insert(sk, value);
        }
        return Ok(());
    }
    if is_clear(&value) {
        obj.remove(&key);
        return Ok(());
    }
    let multi = def
        .map(|d| d.multi)
        .unwrap_or_else(|| obj.get(&key).is_some_and(Value::is_array));
    let complex = def.is_some_and(|d| d.ty == schema::Type::Complex);
    match (kind, multi, obj.get_mut(&key)) {
        // add to a multi-valued attribute appends (skipping values already present).
        (OpKind::Add, true, Some(Value::Array(existing))) => {
            let new = match value {
                Value::Array(v) => v,
                v => vec![v],
            };
            // One pass over what is there, not one per added value: a group PATCH may add
            // thousands of members to thousands.
            let mut present: std::collections::HashSet<String> =
                existing.iter().map(element_key).collect();
            for v in new {
                if present.insert(element_key(&v)) {
                    existing.push(v);
                }
            }
        }
        (_, true, _) => {
            let new = match value {
                Value::Array(v) => v,
                v => vec![v],
            };
            obj.insert(key, Value::Array(new));
        }
        // replace or add of a complex single-valued attribute merges its sub-attributes.
        (_, false, Some(Value::Object(existing))) if complex => match value {
            Value::Object(new) => {
                for (k, v) in new {
                    let sk = sub_key(existing, def, &k);
                    if is_clear(&v) {
                        existing.remove(&sk);
                    } else {
                        existing.insert(sk, v);
                    }
                }
            }
            v => {
                obj.insert(key, v);
            }
        },
        _ => {
            obj.insert(key, value);
        }
    }
    Ok(())
}

/// Two elements of a multi-valued attribute are the same when equal, or when both carry
/// the same `value` and `type` (members, groups, emails): the same exactly when their keys
/// are equal. (serde_json's maps are sorted, so equal values serialise alike.)
pub(super) fn element_key(e: &Value) -> String {
    match e.get("value") {
        Some(v) => format!("v{v}\u{0}{}", e.get("type").unwrap_or(&Value::Null)),
        None => format!("w{e}"),
    }
}

fn remove_attr(
    obj: &mut Map<String, Value>,
    schema: Option<&'static Schema>,
    attr: &str,
    sub: Option<&str>,
    value: Option<&Value>,
) {
    let def = schema.and_then(|s| s.attr(attr));
    let key = key_for(obj, schema, attr);
    match sub {
        Some(sub) => match obj.get_mut(&key) {
            Some(Value::Object(inner)) => {
                let sk = sub_key(inner, def, sub);
                inner.remove(&sk);
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    if let Value::Object(inner) = item {
                        let sk = sub_key(inner, def, sub);
                        inner.remove(&sk);
                    }
                }
            }
            _ => {}
        },
        None => match (obj.get_mut(&key), value) {
            // Entra removes members with a value list: remove exactly those.
            (Some(Value::Array(items)), Some(v)) if !is_clear(v) => {
                let listed: Vec<&Value> = match v {
                    Value::Array(l) => l.iter().collect(),
                    other => vec![other],
                };
                items.retain(|e| {
                    !listed
                        .iter()
                        .any(|l| match (e.get("value"), l.get("value")) {
                            (Some(x), Some(y)) => x == y,
                            _ => e == *l,
                        })
                });
            }
            _ => {
                obj.remove(&key);
            }
        },
    }
}
