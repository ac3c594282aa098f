//! The pure part of changing a user: the resource a PATCH starts from, and what changed
//! (an event's `changes`). No database.

use common::db::entities::user;
use serde_json::{Map, Value, json};

/// The stored resource with the indexed columns folded back in, as PATCH starts from it.
pub(super) fn current_resource(u: &user::Model) -> Map<String, Value> {
    let mut m = match &u.resource {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    m.insert("userName".into(), json!(u.user_name));
    m.insert("active".into(), json!(u.active));
    match &u.external_id {
        Some(x) => m.insert("externalId".into(), json!(x)),
        None => m.remove("externalId"),
    };
    m
}

/// Top-level fields that differ; a removed field maps to `null`.
pub(super) fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in new {
        if k != "schemas" && old.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in old.keys() {
        if k != "schemas" && !new.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn diff_names_changed_added_and_removed_fields_but_never_schemas() {
        let old = obj(json!({"schemas": ["a"], "title": "Eng", "nickName": "Al", "active": true}));
        let new = obj(json!({"schemas": ["b"], "title": "CTO", "active": true, "locale": "fr"}));
        let changed = diff(&old, &new);
        assert_eq!(
            Value::Object(changed),
            json!({"title": "CTO", "locale": "fr", "nickName": null})
        );
    }

    #[test]
    fn an_unchanged_resource_has_no_changes() {
        let old = obj(json!({"userName": "a@x", "active": false}));
        assert!(diff(&old, &old.clone()).is_empty());
    }
}
