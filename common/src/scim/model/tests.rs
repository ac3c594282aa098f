//! Users and groups as identity providers send them, validated and rendered.

use super::*;
use crate::scim::USER_SCHEMA;
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

fn okta_body() -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": "jane.doe@example.com",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": true, "value": "jane.doe@example.com", "type": "work"}],
        "displayName": "Jane Doe",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "groups": [],
        "password": "xK3!placeholder",
        "active": true
    })
}

#[test]
fn an_external_id_fits_its_index() {
    let long = "x".repeat(MAX_EXTERNAL_ID_LEN + 1);
    let e =
        UserInput::from_json(json!({"userName": "a", "externalId": long})).expect_err("too long");
    assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
    let e = GroupInput::from_json(json!({"displayName": "g", "externalId": long}))
        .expect_err("too long");
    assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
    let fits = "é".repeat(MAX_EXTERNAL_ID_LEN);
    assert!(UserInput::from_json(json!({"userName": "a", "externalId": fits})).is_ok());
}

#[test]
fn a_nul_anywhere_is_refused_for_users_and_groups() {
    for body in [
        json!({"userName": "a\u{0}b"}),
        json!({"userName": "a", "name": {"givenName": "x\u{0}"}}),
        json!({"userName": "a", "x\u{0}": 1}),
    ] {
        let e = UserInput::from_json(body).expect_err("NUL");
        assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
    }
    let e = GroupInput::from_json(json!({"displayName": "g\u{0}"})).expect_err("NUL");
    assert_eq!(e.scim_type.as_deref(), Some("invalidValue"));
    assert!(UserInput::from_json(json!({"userName": "a"})).is_ok());
}

#[test]
fn okta_create_body_is_accepted_without_its_password() {
    let u = UserInput::from_json(okta_body()).expect("valid");
    assert_eq!(u.user_name, "jane.doe@example.com");
    assert_eq!(u.email.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(u.given_name.as_deref(), Some("Jane"));
    assert_eq!(u.external_id.as_deref(), Some("00u1abcd"));
    assert!(u.active);
    assert!(!u.resource.contains_key("password"));
    assert!(!u.resource.contains_key("groups"));
    assert_eq!(u.resource["locale"], "en-US");
}

#[test]
fn names_are_canonical_and_manager_an_object() {
    let u = UserInput::from_json(json!({
        "USERNAME": "a@x.io",
        "Name": {"GIVENNAME": "A"},
        "emails": [{"VALUE": "a@x.io", "Primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"EmployeeNumber": "7", "manager": "m-1"},
        "urn:ietf:params:scim:schemas:extension:roster:2.0:User": {"shirtSize": "M"},
        "schemas": ["whatever"],
        "nickName": "Al"
    }))
    .expect("valid");
    assert_eq!(u.user_name, "a@x.io");
    assert_eq!(u.given_name.as_deref(), Some("A"));
    assert_eq!(u.email.as_deref(), Some("a@x.io"));
    let ent = &u.resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(ent["employeeNumber"], "7");
    assert_eq!(ent["manager"], json!({"value": "m-1"}));
    assert_eq!(
        u.resource["urn:ietf:params:scim:schemas:extension:roster:2.0:User"]["shirtSize"],
        "M"
    );
    assert_eq!(
        u.resource["schemas"],
        json!([
            USER_SCHEMA,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:roster:2.0:User"
        ])
    );
    let cleared = UserInput::from_json(json!({"userName": "a",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": ""}}))
    .expect("valid");
    assert!(
        cleared
            .resource
            .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
            .is_none()
    );
}

#[test]
fn groups_validate_members_and_names() {
    let id = Uuid::new_v4();
    let g = GroupInput::from_json(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "DISPLAYNAME": " Eng ", "id": "ignored",
        "members": [{"value": id.to_string(), "display": "A"}, {"value": id.to_string()}]
    }))
    .expect("valid");
    assert_eq!(g.display_name, "Eng");
    assert_eq!(g.members, vec![id], "duplicates collapse");
    assert!(!g.resource.contains_key("id") && !g.resource.contains_key("members"));
    for bad in [
        json!({}),
        json!({"displayName": ""}),
        json!({"displayName": "G", "members": [{"value": "not-an-id"}]}),
        json!({"displayName": "G", "members": "x"}),
        json!({"displayName": "G", "members": [{"value": id.to_string(), "type": "Group"}]}),
    ] {
        assert_eq!(
            GroupInput::from_json(bad.clone())
                .expect_err(&bad.to_string())
                .status,
            400
        );
    }
}

#[test]
fn strings_for_active_are_accepted() {
    let mut b = okta_body();
    b["active"] = json!("False");
    let u = UserInput::from_json(b).expect("valid");
    assert!(!u.active);
    assert_eq!(u.resource["active"], json!(false));
}

#[test]
fn bad_users_are_refused_with_invalid_value() {
    for (body, why) in [
        (json!({}), "no userName"),
        (json!({"userName": ""}), "empty userName"),
        (json!({"userName": 7}), "number userName"),
        (json!({"userName": "a\r\nb"}), "CRLF"),
        (json!({"userName": "a", "active": "maybe"}), "bad active"),
        (json!({"userName": "a", "emails": "x"}), "bad emails"),
        (
            json!({"userName": "a", "emails": [{"value": "a@b.c\r\nBcc: x@evil.io"}]}),
            "CRLF in an email",
        ),
        (
            json!({"userName": "a", "emails": [{"value": "Eve <a@b.c>"}]}),
            "a display name in an email",
        ),
        (
            json!({"userName": "a", "emails": [{"value": "a@b.c, x@evil.io"}]}),
            "two addresses",
        ),
        (json!({"userName": "a", "name": []}), "bad name"),
        (json!({"userName": "x".repeat(300)}), "long"),
    ] {
        let err = UserInput::from_json(body).expect_err(why);
        assert_eq!(err.status, 400, "{why}");
    }
    assert!(UserInput::from_json(json!([1])).is_err());
}

#[test]
fn email_addresses_are_one_plain_address() {
    for good in [
        "a@b.c",
        "jane.doe+okta@example.co.uk",
        "x@localhost",
        "é@bücher.de",
    ] {
        assert!(is_email_address(good), "{good}");
    }
    for bad in [
        "",
        "a",
        "@b.c",
        "a@",
        "a@@b.c",
        "a b@c.d",
        "a@b.c\nBcc: e@f.g",
        "<a@b.c>",
        "a@b.c>",
        "\"a\"@b.c",
        "a@b..c",
        ".a@b.c",
        "a@b.c;d@e.f",
        "a@b.c\u{0}",
    ] {
        assert!(!is_email_address(bad), "{bad:?}");
    }
    assert!(!is_email_address(&format!("{}@b.c", "a".repeat(65))));
}

#[test]
fn rendering_adds_id_meta_and_never_a_password() {
    let input = UserInput::from_json(okta_body()).expect("valid");
    let resource = Value::Object(input.resource);
    let id = Uuid::new_v4();
    let now = Utc::now();
    let v = render_user(
        &StoredUser {
            id,
            user_name: "jane.doe@example.com",
            external_id: Some("00u1abcd"),
            active: true,
            resource: &resource,
            version: 3,
            created_at: now,
            updated_at: now,
        },
        "http://x/scim/v2",
    );
    assert_eq!(v["id"], id.to_string());
    assert_eq!(v["meta"]["version"], "W/\"3\"");
    assert_eq!(
        v["meta"]["location"],
        format!("http://x/scim/v2/Users/{id}")
    );
    assert!(v.get("password").is_none());
    assert_eq!(v["name"]["familyName"], "Doe");
}
