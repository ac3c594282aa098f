//! PATCH (RFC 7644 §3.5.2): the path parser on any text, and on any bytes that are JSON,
//! the whole request parsed for Users and Groups, applied to a stored resource, and the
//! result validated again, as the worker does. Refusals are 400s; nothing panics.

#![no_main]

use common::scim::{
    model::{GroupInput, UserInput},
    patch,
    schema::{self, Schema},
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fn user() -> Map<String, Value> {
    let v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "jane@example.com",
        "active": true,
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"type": "work", "value": "jane@example.com", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Sales",
            "manager": {"value": "0190c4a2-0000-7000-8000-000000000001"}
        }
    });
    v.as_object().cloned().unwrap_or_default()
}

fn group() -> Map<String, Value> {
    let v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Sales",
        "members": [
            {"value": "0190c4a2-0000-7000-8000-000000000001"},
            {"value": "0190c4a2-0000-7000-8000-000000000002"}
        ]
    });
    v.as_object().cloned().unwrap_or_default()
}

fn check_refusal(e: &common::scim::ScimError, input: &str) {
    assert_eq!(e.status, 400, "{input:?}: {}", e.detail);
}

fn apply(body: &Value, core: &'static Schema, mut resource: Map<String, Value>) {
    let ops = match patch::parse_request(body, core) {
        Ok(ops) => ops,
        Err(e) => return check_refusal(&e, &body.to_string()),
    };
    match patch::apply(&mut resource, core, &ops) {
        Ok(()) if core.id == schema::USER.id => {
            let _ = UserInput::from_json(Value::Object(resource));
        }
        Ok(()) => {
            let _ = GroupInput::from_json(Value::Object(resource));
        }
        Err(e) => check_refusal(&e, &body.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for core in [&schema::USER, &schema::GROUP] {
            if let Err(e) = patch::parse_path(text, core) {
                check_refusal(&e, text);
            }
        }
    }
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        apply(&body, &schema::USER, user());
        apply(&body, &schema::GROUP, group());
    }
});
