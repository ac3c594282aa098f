//! Write-only attributes (`password`) taken out of a PATCH body before it is published.

use serde_json::{Map, Value};

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
    use crate::scim::{patch::parse_request, schema};
    use serde_json::json;

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
}
