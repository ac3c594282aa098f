//! PATCH requests as identity providers send them, parsed and applied.

use super::*;
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
    let g = patched(
        group(),
        &GROUP,
        ops(
            json!([{"op": "Remove", "path": "members", "value": [{"value": "1"}, {"value": "3"}]}]),
        ),
    )
    .expect("ok");
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

mod properties {
    use super::super::*;
    use crate::scim::schema::{GROUP, USER};
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
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
