//! Operations on `attr[filter][.sub]`: only the elements the filter matches.

use super::{
    AttrTarget, OpKind,
    apply::{is_clear, key_for, sub_key},
    matching::element_matches,
    no_target,
};
use crate::scim::{
    ScimError,
    filter::{CompValue, CompareOp, Filter},
    schema::Schema,
};
use serde_json::{Map, Value};

/// Operations on `attr[filter][.sub]`: only the elements the filter matches.
pub(super) fn apply_filtered(
    obj: &mut Map<String, Value>,
    schema: Option<&'static Schema>,
    t: &AttrTarget,
    f: &Filter,
    kind: OpKind,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let def = schema.and_then(|s| s.attr(&t.attr));
    let key = key_for(obj, schema, &t.attr);
    let items = match obj.get_mut(&key) {
        Some(Value::Array(items)) => items,
        // Entra's manager removal: `manager[value eq "…"]` on a single complex value.
        Some(Value::Object(_)) if kind == OpKind::Remove => {
            if obj.get(&key).is_some_and(|v| element_matches(v, f)) {
                obj.remove(&key);
            }
            return Ok(());
        }
        _ if kind == OpKind::Remove => return Ok(()),
        _ => {
            obj.insert(key.clone(), Value::Array(Vec::new()));
            match obj.get_mut(&key) {
                Some(Value::Array(items)) => items,
                _ => unreachable!("just inserted an array"),
            }
        }
    };
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, e)| element_matches(e, f))
        .map(|(i, _)| i)
        .collect();
    match (kind, &t.sub) {
        (OpKind::Remove, None) => {
            let mut gone = vec![false; items.len()];
            for &i in &matched {
                gone[i] = true;
            }
            let mut i = 0;
            items.retain(|_| {
                let keep = !gone[i];
                i += 1;
                keep
            });
        }
        (OpKind::Remove, Some(sub)) => {
            for &i in &matched {
                if let Value::Object(e) = &mut items[i] {
                    let sk = sub_key(e, def, sub);
                    e.remove(&sk);
                }
            }
        }
        (_, sub) => {
            let value = value.unwrap_or(Value::Null);
            if matched.is_empty() {
                // Nothing matched: create the element the filter describes (Entra sends
                // `Add`/`Replace` on `emails[type eq "work"].value` for an empty value).
                let mut element = implied_element(f).ok_or_else(|| {
                    no_target(format!("no {} element matches the filter", t.attr))
                })?;
                match sub {
                    Some(sub) if !is_clear(&value) => {
                        element.insert(sub_key(&element, def, sub), value);
                    }
                    Some(_) => return Ok(()),
                    None => match value {
                        Value::Object(v) => element.extend(v),
                        _ => return Err(ScimError::invalid_value("the value must be an object")),
                    },
                }
                items.push(Value::Object(element));
                return Ok(());
            }
            for &i in &matched {
                match (sub, &mut items[i]) {
                    (Some(sub), Value::Object(e)) => {
                        let sk = sub_key(e, def, sub);
                        if is_clear(&value) {
                            e.remove(&sk);
                        } else {
                            e.insert(sk, value.clone());
                        }
                    }
                    (None, slot) => match (&value, slot) {
                        (Value::Object(v), Value::Object(e)) if kind == OpKind::Add => {
                            e.extend(v.clone());
                        }
                        (v, slot) => *slot = v.clone(),
                    },
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The element a filter of `eq` conditions joined by `and` describes, e.g.
/// `type eq "work"` → `{"type": "work"}`.
fn implied_element(f: &Filter) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    fn walk(f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => walk(a, out) && walk(b, out),
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.sub.is_none() => {
                let v = match value {
                    CompValue::Str(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Num(n) => Value::Number(n.clone()),
                    CompValue::Null => return false,
                };
                out.insert(path.name.clone(), v);
                true
            }
            _ => false,
        }
    }
    walk(f, &mut out).then_some(out)
}
