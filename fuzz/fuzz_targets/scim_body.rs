//! SCIM request bodies as the ingress reads them on POST and PUT (`serde_json` then
//! `UserInput`/`GroupInput`), and as the worker reads them again: what the ingress accepts
//! and forwards validates again to the same input, and renders as a resource.

#![no_main]

use chrono::DateTime;
use common::scim::{
    ScimError,
    model::{self, GroupInput, StoredGroup, StoredUser, UserInput},
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use uuid::Uuid;

const BASE_URL: &str = "https://roster.example.com/scim/v2";

fn check_refusal(e: &ScimError, body: &Value) {
    assert_eq!(e.status, 400, "{body}: {}", e.detail);
}

fn user(body: &Value) {
    let input = match UserInput::from_json(body.clone()) {
        Ok(input) => input,
        Err(e) => return check_refusal(&e, body),
    };
    // The ingress forwards `input.resource`; the worker validates it again.
    let again = UserInput::from_json(Value::Object(input.resource.clone()))
        .unwrap_or_else(|e| panic!("{body} accepted, its resource refused: {}", e.detail));
    assert_eq!(again, input, "{body}");
    let resource = Value::Object(input.resource);
    let stored = StoredUser {
        id: Uuid::nil(),
        user_name: &input.user_name,
        external_id: input.external_id.as_deref(),
        active: input.active,
        resource: &resource,
        version: 1,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    };
    let rendered = model::render_user(&stored, BASE_URL);
    assert!(rendered.is_object(), "{body}");
    serde_json::to_vec(&rendered).unwrap_or_else(|e| panic!("{body} renders unserialisably: {e}"));
}

fn group(body: &Value) {
    let input = match GroupInput::from_json(body.clone()) {
        Ok(input) => input,
        Err(e) => return check_refusal(&e, body),
    };
    let resource = Value::Object(input.resource.clone());
    let stored = StoredGroup {
        id: Uuid::nil(),
        display_name: &input.display_name,
        external_id: input.external_id.as_deref(),
        resource: &resource,
        version: 1,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    };
    let members: Vec<model::MemberRef> = input
        .members
        .iter()
        .map(|id| model::MemberRef {
            id: *id,
            display: None,
        })
        .collect();
    let rendered = model::render_group(&stored, Some(&members), BASE_URL);
    assert!(rendered.is_object(), "{body}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    user(&body);
    group(&body);
});
