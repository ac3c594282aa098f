//! PATCH (RFC 7644 §3.5.2) as pure functions over a resource held as a JSON object: parse
//! the request (op names in any case, with or without `path`), parse paths (`name.givenName`,
//! `emails[type eq "work"].value`, `members[value eq "…"]`, URN-qualified extension paths),
//! and apply the operations. Lenient where identity providers are known to differ (Entra's
//! capitalised ops, `"False"` strings, `Add` to an empty value path, member removal by a
//! value list), strict where guessing could lose data (a `remove` needs a target).

use super::{
    ScimError,
    filter::{self, CompValue, CompareOp, Filter},
    schema::{self, Schema},
};
use serde_json::{Map, Value};

/// Most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Where an operation points.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchPath {
    /// A whole extension object, e.g. `urn:…:enterprise:2.0:User`.
    Extension(&'static Schema),
    Attr(AttrTarget),
}

/// `[urn:]attr[.sub]` or `[urn:]attr[filter][.sub]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrTarget {
    /// The extension the attribute lives in; `None` for the core schema.
    pub extension: Option<&'static Schema>,
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::new(400, Some("noTarget"), detail)
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::new(400, Some("invalidPath"), detail)
}

/// Parses a PATCH request body (`{"schemas":[PatchOp],"Operations":[…]}`).
pub fn parse_request(body: &Value, core: &'static Schema) -> Result<Vec<PatchOp>, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs \"Operations\""))?;
    let Value::Array(ops) = ops else {
        return Err(ScimError::invalid_syntax("\"Operations\" must be an array"));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("\"Operations\" is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "at most {MAX_OPERATIONS} operations per request"
        )));
    }
    ops.iter().map(|op| parse_op(op, core)).collect()
}

fn parse_op(op: &Value, core: &'static Schema) -> Result<PatchOp, ScimError> {
    let Value::Object(o) = op else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let field = |name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let kind = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => OpKind::Add,
        Some("replace") => OpKind::Replace,
        Some("remove") => OpKind::Remove,
        Some(other) => return Err(ScimError::invalid_syntax(format!("unknown op {other:?}"))),
        None => return Err(ScimError::invalid_syntax("each operation needs an \"op\"")),
    };
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(parse_path(p.trim(), core)?),
        Some(_) => return Err(invalid_path("\"path\" must be a string")),
    };
    let value = field("value").cloned();
    match (kind, &path, &value) {
        (OpKind::Remove, None, _) => Err(no_target("remove needs a path")),
        (OpKind::Add | OpKind::Replace, None, Some(Value::Object(_))) => Ok(()),
        (OpKind::Add | OpKind::Replace, None, _) => Err(ScimError::invalid_value(
            "an operation without a path needs an object value",
        )),
        (OpKind::Add, Some(_), None) => Err(ScimError::invalid_value("add needs a value")),
        _ => Ok(()),
    }?;
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

/// Parses a PATCH path against `core` and the User extensions.
pub fn parse_path(text: &str, core: &'static Schema) -> Result<PatchPath, ScimError> {
    if text.len() > filter::MAX_FILTER_LEN {
        return Err(invalid_path("path too long"));
    }
    if let Some(ext) = schema::user_extension(text) {
        return Ok(PatchPath::Extension(ext));
    }
    // Split `head[filter]tail`.
    let (head, filter, tail) = match text.find('[') {
        Some(open) => {
            let close = text
                .rfind(']')
                .filter(|c| *c > open)
                .ok_or_else(|| invalid_path("unclosed '['"))?;
            let inner =
                filter::parse(&text[open + 1..close]).map_err(|e| invalid_path(e.detail))?;
            (&text[..open], Some(inner), &text[close + 1..])
        }
        None => (text, None, ""),
    };
    let (extension, rest) = split_urn(head, core)?;
    let (attr, mut sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s.to_owned())),
        None => (rest, None),
    };
    if !tail.is_empty() {
        let s = tail
            .strip_prefix('.')
            .ok_or_else(|| invalid_path(format!("unexpected {tail:?}")))?;
        if filter.is_none() || sub.is_some() {
            return Err(invalid_path(format!("unexpected {tail:?}")));
        }
        sub = Some(s.to_owned());
    }
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !valid(attr) || sub.as_deref().is_some_and(|s| !valid(s)) {
        return Err(invalid_path(format!("{text:?} is not a valid path")));
    }
    Ok(PatchPath::Attr(AttrTarget {
        extension,
        attr: attr.to_owned(),
        filter,
        sub,
    }))
}

/// Splits a URN prefix off an attribute path: the core schema's URN is dropped, a known
/// extension's is returned; an unknown URN is an error.
fn split_urn<'a>(
    head: &'a str,
    core: &'static Schema,
) -> Result<(Option<&'static Schema>, &'a str), ScimError> {
    if !head.to_ascii_lowercase().starts_with("urn:") {
        return Ok((None, head));
    }
    let i = head.rfind(':').ok_or_else(|| invalid_path("bad URN"))?;
    let (urn, rest) = (&head[..i], &head[i + 1..]);
    if urn.eq_ignore_ascii_case(core.id) {
        return Ok((None, rest));
    }
    match schema::user_extension(urn) {
        Some(ext) if core.id == schema::USER.id => Ok((Some(ext), rest)),
        _ => Err(invalid_path(format!("unknown schema {urn:?}"))),
    }
}

/// The canonical spelling of `name` in `schema`, else the key already used in `obj`, else `name`.
fn key_for(obj: &Map<String, Value>, schema: Option<&'static Schema>, name: &str) -> String {
    if let Some(a) = schema.and_then(|s| s.attr(name)) {
        return a.name.to_owned();
    }
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn sub_key(obj: &Map<String, Value>, parent: Option<&'static schema::Attr>, name: &str) -> String {
    if let Some(a) = parent.and_then(|p| p.sub_attr(name)) {
        return a.name.to_owned();
    }
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// Whether a value clears its target (Entra sends `""`, others `null`).
fn is_clear(v: &Value) -> bool {
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
fn element_key(e: &Value) -> String {
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

/// Operations on `attr[filter][.sub]`: only the elements the filter matches.
fn apply_filtered(
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

/// Evaluates a value filter against one element of a multi-valued attribute.
pub fn element_matches(element: &Value, f: &Filter) -> bool {
    match f {
        Filter::And(a, b) => element_matches(element, a) && element_matches(element, b),
        Filter::Or(a, b) => element_matches(element, a) || element_matches(element, b),
        Filter::Not(a) => !element_matches(element, a),
        Filter::ValuePath { .. } => false,
        Filter::Present(p) => {
            field(element, &p.name).is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        }
        Filter::Compare { path, op, value } => {
            let Some(actual) = field(element, &path.name) else {
                return *op == CompareOp::Ne;
            };
            compare(actual, *op, value)
        }
    }
}

fn field<'a>(element: &'a Value, name: &str) -> Option<&'a Value> {
    element
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compare(actual: &Value, op: CompareOp, expected: &CompValue) -> bool {
    match (actual, expected) {
        (Value::String(a), CompValue::Str(e)) => {
            let (a, e) = (a.to_lowercase(), e.to_lowercase());
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
            }
        }
        (Value::Bool(a), CompValue::Bool(e)) => match op {
            CompareOp::Eq => a == e,
            CompareOp::Ne => a != e,
            _ => false,
        },
        (Value::String(a), CompValue::Bool(e)) => {
            super::model::parse_bool(&Value::String(a.clone()))
                .is_some_and(|b| (b == *e) == (op == CompareOp::Eq))
        }
        (Value::Number(a), CompValue::Num(e)) => {
            let (Some(a), Some(e)) = (a.as_f64(), e.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
                _ => false,
            }
        }
        (Value::Null, CompValue::Null) => op == CompareOp::Eq,
        _ => op == CompareOp::Ne,
    }
}

/// Attributes that are write-only (RFC 7643 §7 `"mutability": "writeOnly"`): Roster
/// stores none of them, so they are taken out of a request before it is published.
const WRITE_ONLY: [&str; 1] = ["password"];

/// Whether a PATCH path or a value key names a write-only attribute (bare, or after the
/// core schema's URN).
fn names_write_only(name: &str) -> bool {
    let attr = name.trim().rsplit(':').next().unwrap_or_default();
    let head = attr.split(['[', '.']).next().unwrap_or_default();
    WRITE_ONLY.iter().any(|w| head.eq_ignore_ascii_case(w))
}

/// Takes every write-only attribute (`password`) out of a PATCH body, so it is never
/// published: an operation whose path names one becomes a pathless `replace` of nothing
/// (it keeps its place: a PATCH needs operations), and pathless values lose such keys.
pub fn strip_write_only(body: &mut Value) {
    let Some(ops) = body
        .as_object_mut()
        .and_then(|o| {
            o.iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        })
        .and_then(|(_, v)| v.as_array_mut())
    else {
        return;
    };
    for op in ops {
        let Some(o) = op.as_object_mut() else {
            continue;
        };
        let path = o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("path"))
            .and_then(|(_, v)| v.as_str());
        if path.is_some_and(names_write_only) {
            *op = serde_json::json!({"op": "replace", "value": {}});
            continue;
        }
        for (k, v) in o.iter_mut() {
            if k.eq_ignore_ascii_case("value")
                && let Value::Object(value) = v
            {
                strip_keys(value);
            }
        }
    }
}

/// Removes write-only keys from a resource object, and from the core schema's URN object
/// inside it.
fn strip_keys(value: &mut Map<String, Value>) {
    value.retain(|k, _| !names_write_only(k));
    for (k, v) in value.iter_mut() {
        if k.to_ascii_lowercase().starts_with("urn:")
            && let Value::Object(inner) = v
        {
            inner.retain(|k, _| !names_write_only(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_only_attributes_never_leave_a_patch() {
        let mut body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "value": {"password": "p1", "active": false}},
            {"op": "replace", "path": "password", "value": "p2"},
            {"Op": "Replace", "Path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "Value": "p3"},
            {"op": "add", "value": {"urn:ietf:params:scim:schemas:core:2.0:User": {"Password": "p4", "title": "x"}}},
            {"op": "replace", "path": "title", "value": "password"}
        ]});
        strip_write_only(&mut body);
        let text = body.to_string();
        for p in ["p1", "p2", "p3", "p4"] {
            assert!(!text.contains(&format!("\"{p}\"")), "{p} left in {text}");
        }
        assert!(parse_request(&body, &schema::USER).is_ok(), "{text}");
        assert_eq!(body["Operations"][0]["value"], json!({"active": false}));
        assert_eq!(body["Operations"][4]["value"], "password");
    }
    use crate::scim::schema::{GROUP, USER};
    use serde_json::json;

    fn patched(resource: Value, core: &'static Schema, body: Value) -> Result<Value, ScimError> {
        let ops = parse_request(&body, core)?;
        let Value::Object(mut r) = resource else {
            panic!("object")
        };
        apply(&mut r, core, &ops)?;
        Ok(Value::Object(r))
    }

    fn ops(list: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list})
    }

    fn user() -> Value {
        json!({
            "userName": "a@x.io",
            "active": true,
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x.io", "type": "work", "primary": true}, {"value": "a@home.io", "type": "home"}],
        })
    }

    #[test]
    fn okta_pathless_deactivate_and_reactivate() {
        let u = patched(
            user(),
            &USER,
            ops(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .expect("ok");
        assert_eq!(u["active"], false);
        let u = patched(
            u,
            &USER,
            ops(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .expect("ok");
        assert_eq!(u["active"], true);
        assert_eq!(u["name"]["givenName"], "A", "other attributes untouched");
    }

    #[test]
    fn entra_capitalised_ops_strings_and_value_paths() {
        let u = patched(
            user(),
            &USER,
            ops(json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@x.io"},
                {"op": "Replace", "path": "name.familyName", "value": "C"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "7"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-id"},
            ])),
        )
        .expect("ok");
        assert_eq!(u["active"], "False");
        assert_eq!(u["emails"][0]["value"], "new@x.io");
        assert_eq!(u["emails"][1]["value"], "a@home.io");
        assert_eq!(u["name"], json!({"givenName": "A", "familyName": "C"}));
        let ext = &u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ext["employeeNumber"], "7");
        assert_eq!(ext["manager"], "mgr-id");
    }

    #[test]
    fn add_to_an_empty_value_path_creates_the_element() {
        let u = patched(
            json!({"userName": "a"}),
            &USER,
            ops(json!([{"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555"}])),
        )
        .expect("ok");
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "work", "value": "+1 555"}])
        );
    }

    #[test]
    fn pathless_values_with_dotted_and_urn_keys() {
        let u = patched(
            user(),
            &USER,
            ops(json!([{"op": "replace", "value": {
                "displayName": "New",
                "name.givenName": "Z",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Eng",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"division": "R&D"}
            }}])),
        )
        .expect("ok");
        assert_eq!(u["displayName"], "New");
        assert_eq!(u["name"]["givenName"], "Z");
        assert_eq!(u["name"]["familyName"], "B");
        let ext = &u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ext["department"], "Eng");
        assert_eq!(ext["division"], "R&D");
    }

    #[test]
    fn clearing_with_empty_string_or_null() {
        let start = json!({"userName": "a", "title": "T",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}});
        let u = patched(
            start.clone(),
            &USER,
            ops(json!([
                {"op": "replace", "path": "title", "value": ""},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": null},
            ])),
        )
        .expect("ok");
        assert!(u.get("title").is_none());
        assert!(
            u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
                .get("manager")
                .is_none()
        );
        let u = patched(
            start,
            &USER,
            ops(json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"m\"]"}])),
        )
        .expect("ok");
        assert!(
            u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
                .get("manager")
                .is_none()
        );
    }

    fn group() -> Value {
        json!({"displayName": "G", "members": [{"value": "1", "display": "One"}, {"value": "2"}, {"value": "3"}]})
    }

    #[test]
    fn adding_many_members_to_many_skips_only_the_present_ones() {
        let members: Vec<Value> = (0..20_000)
            .map(|i| json!({"value": format!("u{i}")}))
            .collect();
        let group = json!({"displayName": "Big", "members": members});
        let added: Vec<Value> = (10_000..30_000)
            .map(|i| json!({"value": format!("u{i}"), "display": "again"}))
            .collect();
        let out = patched(
            group,
            &GROUP,
            ops(json!([{"op": "add", "path": "members", "value": added}])),
        )
        .expect("patched");
        let members = out["members"].as_array().expect("members");
        assert_eq!(members.len(), 30_000, "10 000 already there are skipped");
        let typed = patched(
            json!({"userName": "a", "emails": [{"value": "a@b.c", "type": "work"}]}),
            &USER,
            ops(json!([{"op": "add", "path": "emails", "value": [
                {"value": "a@b.c", "type": "home"}, {"value": "a@b.c", "type": "work", "primary": true}
            ]}])),
        )
        .expect("patched");
        assert_eq!(
            typed["emails"].as_array().map(Vec::len),
            Some(2),
            "same value, other type: kept"
        );
    }

    #[test]
    fn okta_membership_shapes() {
        let g = patched(
            group(),
            &GROUP,
            ops(json!([{"op": "remove", "path": "members[value eq \"2\"]"}])),
        )
        .expect("ok");
        assert_eq!(
            g["members"],
            json!([{"value": "1", "display": "One"}, {"value": "3"}])
        );
        let g = patched(g, &GROUP, ops(json!([{"op": "add", "path": "members", "value": [{"value": "4", "display": "Four"}, {"value": "1"}]}]))).expect("ok");
        let ids: Vec<&str> = g["members"]
            .as_array()
            .expect("list")
            .iter()
            .map(|m| m["value"].as_str().expect("id"))
            .collect();
        assert_eq!(
            ids,
            ["1", "3", "4"],
            "add appends and skips present members"
        );
        let g = patched(
            g,
            &GROUP,
            ops(json!([{"op": "replace", "path": "members", "value": []}])),
        )
        .expect("ok");
        assert_eq!(g["members"], json!([]));
        let g = patched(
            group(),
            &GROUP,
            ops(json!([{"op": "replace", "value": {"id": "gid", "displayName": "Renamed"}}, {"op": "remove", "path": "members[value eq \"1\"]"}])),
        )
        .expect("ok");
        assert_eq!(g["displayName"], "Renamed");
        assert_eq!(
            g["members"].as_array().map(Vec::len),
            Some(2),
            "rename leaves members alone"
        );
    }

    #[test]
    fn entra_member_removal_by_value_list_removes_only_those() {
        let g = patched(group(), &GROUP, ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "1"}, {"value": "3"}]}]))).expect("ok");
        assert_eq!(g["members"], json!([{"value": "2"}]));
        let g = patched(
            group(),
            &GROUP,
            ops(json!([{"op": "remove", "path": "members[value eq \"nope\"]"}])),
        )
        .expect("ok");
        assert_eq!(
            g["members"].as_array().map(Vec::len),
            Some(3),
            "a filter matching nothing removes nothing"
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for (body, scim_type) in [
            (json!({}), "invalidSyntax"),
            (json!({"Operations": []}), "invalidSyntax"),
            (
                json!({"Operations": [{"op": "explode", "path": "a"}]}),
                "invalidSyntax",
            ),
            (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
            (
                json!({"Operations": [{"op": "add", "value": 3}]}),
                "invalidValue",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "emails[type eq", "value": 3}]}),
                "invalidPath",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "urn:x:y:z:attr", "value": 3}]}),
                "invalidPath",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "a b", "value": 3}]}),
                "invalidPath",
            ),
        ] {
            let err = parse_request(&body, &USER).expect_err(&body.to_string());
            assert_eq!(err.scim_type.as_deref(), Some(scim_type), "{body}");
        }
    }

    #[test]
    fn paths_parse_into_targets() {
        let p = parse_path(
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
            &USER,
        )
        .expect("ok");
        assert_eq!(
            p,
            PatchPath::Attr(AttrTarget {
                extension: None,
                attr: "name".into(),
                filter: None,
                sub: Some("givenName".into())
            })
        );
        match parse_path("emails[type eq \"work\"].value", &USER).expect("ok") {
            PatchPath::Attr(t) => {
                assert_eq!(t.attr, "emails");
                assert_eq!(t.sub.as_deref(), Some("value"));
                assert!(t.filter.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_path(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                &USER
            ),
            Ok(PatchPath::Extension(_))
        ));
    }

    mod properties {
        use super::super::*;
        use crate::scim::schema::{GROUP, USER};
        use proptest::prelude::*;
        use serde_json::json;

        proptest! {
            #[test]
            fn any_path_parses_or_is_refused_without_panicking(text in ".{0,200}") {
                if let Err(e) = parse_path(&text, &USER) {
                    prop_assert!(e.status == 400);
                }
            }

            #[test]
            fn simple_paths_round_trip(attr in "[a-zA-Z][a-zA-Z0-9]{0,10}", sub in prop::option::of("[a-zA-Z][a-zA-Z0-9]{0,10}")) {
                let text = match &sub { Some(s) => format!("{attr}.{s}"), None => attr.clone() };
                match parse_path(&text, &USER).expect("valid") {
                    PatchPath::Attr(t) => {
                        prop_assert_eq!(t.attr, attr);
                        prop_assert_eq!(t.sub, sub);
                        prop_assert!(t.filter.is_none() && t.extension.is_none());
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }

            #[test]
            fn member_removal_removes_exactly_the_named_member(n in 1usize..30, pick in 0usize..30) {
                let ids: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
                let target = ids[pick % n].clone();
                let members: Vec<_> = ids.iter().map(|i| json!({"value": i})).collect();
                let mut g = json!({"displayName": "G", "members": members}).as_object().cloned().expect("object");
                let ops = parse_request(
                    &json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{target}\"]")}]}),
                    &GROUP,
                ).expect("valid");
                apply(&mut g, &GROUP, &ops).expect("applies");
                let left: Vec<&str> = g["members"].as_array().expect("list").iter().map(|m| m["value"].as_str().expect("id")).collect();
                prop_assert_eq!(left.len(), n - 1);
                prop_assert!(!left.contains(&target.as_str()));
            }

            #[test]
            fn arbitrary_operations_never_panic(
                op in prop::sample::select(vec!["add", "replace", "remove", "Add", "bogus"]),
                path in prop::option::of(prop::sample::select(vec![
                    "members", "members[value eq \"1\"]", "emails[type eq \"work\"].value", "name.givenName",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "active", "x[", "a.b.c",
                ])),
                value in prop::sample::select(vec![json!(null), json!(""), json!("s"), json!(1), json!([]), json!([{"value": "1"}]), json!({"a": 1})]),
            ) {
                let mut body = json!({"op": op, "value": value});
                if let Some(p) = path {
                    body["path"] = json!(p);
                }
                for core in [&USER, &GROUP] {
                    if let Ok(ops) = parse_request(&json!({"Operations": [body.clone()]}), core) {
                        let mut r = json!({"userName": "u", "displayName": "G", "members": [{"value": "1"}]}).as_object().cloned().expect("object");
                        let _ = apply(&mut r, core, &ops);
                    }
                }
            }
        }
    }
}
