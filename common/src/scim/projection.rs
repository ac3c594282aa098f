//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes of a
//! rendered resource are returned. `id` and `schemas` are always returned; `meta` too
//! unless excluded by name.

use serde_json::{Map, Value};

/// A parsed attribute list: `userName,name.givenName,urn:…:User:employeeNumber`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttrList(Vec<(Option<String>, String, Option<String>)>);

impl AttrList {
    pub fn parse(text: &str) -> Self {
        Self(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    // A whole extension, named by its URN.
                    if super::schema::ALL
                        .iter()
                        .any(|s| s.id.eq_ignore_ascii_case(item))
                    {
                        return (None, item.to_ascii_lowercase(), None);
                    }
                    let (urn, rest) = match item.rfind(':') {
                        Some(i) => (Some(item[..i].to_ascii_lowercase()), &item[i + 1..]),
                        None => (None, item),
                    };
                    let (attr, sub) = match rest.split_once('.') {
                        Some((a, s)) => (a.to_ascii_lowercase(), Some(s.to_ascii_lowercase())),
                        None => (rest.to_ascii_lowercase(), None),
                    };
                    (urn, attr, sub)
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const ALWAYS: [&str; 2] = ["id", "schemas"];

/// Applies `attributes` (keep only these) or, if that is empty, `excludedAttributes`.
pub fn project(resource: &mut Value, core_urn: &str, attributes: &AttrList, excluded: &AttrList) {
    let Value::Object(obj) = resource else { return };
    let core = core_urn.to_ascii_lowercase();
    if !attributes.is_empty() {
        let mut keep = Map::new();
        for (k, v) in std::mem::take(obj) {
            let kl = k.to_ascii_lowercase();
            if ALWAYS.contains(&kl.as_str()) {
                keep.insert(k, v);
                continue;
            }
            if let Some(projected) = select(&kl, v, &core, attributes) {
                keep.insert(k, projected);
            }
        }
        *obj = keep;
    } else if !excluded.is_empty() {
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            let kl = k.to_ascii_lowercase();
            if ALWAYS.contains(&kl.as_str()) {
                continue;
            }
            let Some(v) = obj.remove(&k) else { continue };
            if let Some(v) = exclude(&kl, v, &core, excluded) {
                obj.insert(k, v);
            }
        }
    }
}

/// The part of top-level attribute `key` (lower-cased) that `list` asks for, if any.
fn select(key: &str, v: Value, core: &str, list: &AttrList) -> Option<Value> {
    if key.starts_with("urn:") {
        // An extension object: keep the sub-attributes named with its URN, or all of it.
        let Value::Object(inner) = v else { return None };
        if list.0.iter().any(|(u, a, _)| u.is_none() && a == key) {
            return Some(Value::Object(inner));
        }
        let wanted: Vec<&(Option<String>, String, Option<String>)> = list
            .0
            .iter()
            .filter(|(u, _, _)| u.as_deref() == Some(key))
            .collect();
        let kept: Map<String, Value> = inner
            .into_iter()
            .filter(|(k, _)| wanted.iter().any(|(_, a, _)| *a == k.to_ascii_lowercase()))
            .collect();
        return (!kept.is_empty()).then_some(Value::Object(kept));
    }
    let mut whole = false;
    let mut subs = Vec::new();
    for (urn, attr, sub) in &list.0 {
        if urn.as_deref().is_some_and(|u| u != core) || attr != key {
            continue;
        }
        match sub {
            None => whole = true,
            Some(s) => subs.push(s.as_str()),
        }
    }
    if whole {
        return Some(v);
    }
    if subs.is_empty() {
        return None;
    }
    Some(retain_subs(v, |k| {
        subs.contains(&k.to_ascii_lowercase().as_str())
    }))
}

/// What remains of top-level attribute `key` after `list` excludes from it.
fn exclude(key: &str, v: Value, core: &str, list: &AttrList) -> Option<Value> {
    if key.starts_with("urn:") {
        let Value::Object(inner) = v else {
            return Some(v);
        };
        if list.0.iter().any(|(u, a, _)| u.is_none() && a == key) {
            return None;
        }
        let kept: Map<String, Value> = inner
            .into_iter()
            .filter(|(k, _)| {
                !list.0.iter().any(|(u, a, s)| {
                    u.as_deref() == Some(key) && *a == k.to_ascii_lowercase() && s.is_none()
                })
            })
            .collect();
        return Some(Value::Object(kept));
    }
    let mut subs = Vec::new();
    for (urn, attr, sub) in &list.0 {
        if urn.as_deref().is_some_and(|u| u != core) || attr != key {
            continue;
        }
        match sub {
            None => return None,
            Some(s) => subs.push(s.as_str()),
        }
    }
    if subs.is_empty() {
        return Some(v);
    }
    Some(retain_subs(v, |k| {
        !subs.contains(&k.to_ascii_lowercase().as_str())
    }))
}

/// `v` with only the sub-attributes `keep` says yes to: an object's, or each object's of an
/// array (other values as they are).
fn retain_subs(v: Value, keep: impl Fn(&str) -> bool) -> Value {
    let retain =
        |m: Map<String, Value>| Value::Object(m.into_iter().filter(|(k, _)| keep(k)).collect());
    match v {
        Value::Object(m) => retain(m),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::Object(m) => retain(m),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": [CORE], "id": "1", "userName": "a", "title": "T",
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x", "type": "work"}],
            "meta": {"resourceType": "User"},
            ENT: {"employeeNumber": "7", "department": "D"}
        })
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id() {
        let mut u = user();
        project(
            &mut u,
            CORE,
            &AttrList::parse("userName,name.givenName,emails.value"),
            &AttrList::default(),
        );
        assert_eq!(
            u,
            json!({"schemas": [CORE], "id": "1", "userName": "a", "name": {"givenName": "A"}, "emails": [{"value": "a@x"}]})
        );
        let mut u = user();
        project(
            &mut u,
            CORE,
            &AttrList::parse(&format!("{ENT}:employeeNumber")),
            &AttrList::default(),
        );
        assert_eq!(u[ENT], json!({"employeeNumber": "7"}));
        assert!(u.get("userName").is_none());
        let mut u = user();
        project(
            &mut u,
            CORE,
            &AttrList::parse(&format!("{CORE}:USERNAME")),
            &AttrList::default(),
        );
        assert_eq!(u["userName"], "a");
        let mut u = user();
        project(&mut u, CORE, &AttrList::parse(ENT), &AttrList::default());
        assert_eq!(u[ENT]["department"], "D");
        let mut u = user();
        project(&mut u, CORE, &AttrList::default(), &AttrList::parse(ENT));
        assert!(u.get(ENT).is_none());
    }

    #[test]
    fn excluded_attributes_drop_those_only() {
        let mut u = user();
        project(
            &mut u,
            CORE,
            &AttrList::default(),
            &AttrList::parse("emails, name.familyName, id"),
        );
        assert!(u.get("emails").is_none());
        assert_eq!(u["name"], json!({"givenName": "A"}));
        assert_eq!(u["id"], "1", "id is always returned");
        let mut g =
            json!({"schemas": [], "id": "g", "displayName": "G", "members": [{"value": "1"}]});
        project(
            &mut g,
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            &AttrList::default(),
            &AttrList::parse("members"),
        );
        assert!(g.get("members").is_none());
        assert_eq!(g["displayName"], "G");
    }
}
