//! A user's life as Okta and Entra drive it: profile push by GET then PUT, path-less PATCH
//! deactivate and reactivate, the wizard's PUT `active:false`, Entra's PATCH shapes,
//! ETags, and DELETE — each change one event with a higher version.

use reqwest::Method;
use serde_json::{Value, json};
use tests::{
    harness::TestApp,
    okta::{PASSWORD_PLACEHOLDER, ScimClient, create_user_body},
};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ROSTER: &str = "urn:ietf:params:scim:schemas:extension:roster:2.0:User";

async fn json(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    res.json().await.expect("JSON")
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn create(app: &TestApp, okta: &ScimClient, local: &str) -> Value {
    json(
        okta.post_user(&create_user_body(&app.email(local), "Pat", "Lee"))
            .await,
        201,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_profile_push_deactivate_reactivate() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let user = create(&app, okta, "pat").await;
    let id = user["id"].as_str().expect("id").to_owned();
    let path = format!("/Users/{id}");

    // Profile push: GET, change, PUT the whole body back (id, meta, groups, password included).
    let mut body = json(okta.get_user(&id).await, 200).await;
    body["title"] = json!("Staff Engineer");
    body["password"] = json!(PASSWORD_PLACEHOLDER);
    body["groups"] = json!([]);
    body[ENTERPRISE] =
        json!({"employeeNumber": "42", "department": "Eng", "manager": {"value": "boss-1"}});
    body[ROSTER] = json!({"shirtSize": "M"});
    body["x-okta-custom"] = json!("kept");
    let put = json(okta.send_json(Method::PUT, &path, &body).await, 200).await;
    assert_eq!(put["title"], "Staff Engineer");
    assert_eq!(put["meta"]["version"], "W/\"2\"");
    let got = json(okta.get_user(&id).await, 200).await;
    assert_eq!(got["title"], "Staff Engineer");
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "42");
    assert_eq!(got[ENTERPRISE]["manager"]["value"], "boss-1");
    assert_eq!(
        got[ROSTER]["shirtSize"], "M",
        "unmapped extension attributes are kept"
    );
    assert_eq!(got["x-okta-custom"], "kept", "unknown attributes are kept");
    assert!(got.get("password").is_none());
    let schemas = got["schemas"].as_array().expect("schemas");
    assert!(schemas.iter().any(|s| s == ENTERPRISE) && schemas.iter().any(|s| s == ROSTER));

    // The same PUT again changes nothing: no new version, no event.
    let again = json(okta.send_json(Method::PUT, &path, &body).await, 200).await;
    assert_eq!(again["meta"]["version"], "W/\"2\"");

    // Okta's deactivate: PATCH with no path.
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let res = json(okta.send_json(Method::PATCH, &path, &off).await, 200).await;
    assert_eq!(res["active"], false);
    let got = json(okta.get_user(&id).await, 200).await;
    assert_eq!(got["active"], false, "a deactivated user is still returned");
    assert_eq!(
        got["title"], "Staff Engineer",
        "deactivation changes nothing else"
    );
    assert_eq!(
        okta.find_by_user_name(got["userName"].as_str().expect("name"))
            .await["totalResults"],
        1
    );

    let on = patch(json!([{"op": "replace", "value": {"active": true}}]));
    assert_eq!(
        json(okta.send_json(Method::PATCH, &path, &on).await, 200).await["active"],
        true
    );

    // The wizard's deactivate: PUT with active false.
    let mut body = json(okta.get_user(&id).await, 200).await;
    body["active"] = json!(false);
    assert_eq!(
        json(okta.send_json(Method::PUT, &path, &body).await, 200).await["active"],
        false
    );

    let keys: Vec<String> = events(&app, &id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "user.created",
            "user.updated",
            "user.deactivated",
            "user.reactivated",
            "user.deactivated"
        ]
    );
    let versions: Vec<i64> = events(&app, &id)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5], "versions strictly increase");
    // Reactivation does not invite again.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM invites WHERE user_id = '{id}'"
        ))
        .await,
        1
    );
    app.stop().await;
}

/// The user's events in the outbox, in order: (routing key, version).
async fn events(app: &TestApp, id: &str) -> Vec<(String, i64)> {
    use sea_orm::ConnectionTrait;
    let rows = app
        .db
        .query_all_raw(common::db::stmt(
            "SELECT routing_key, (envelope->'payload'->>'version')::bigint AS v FROM outbox \
             WHERE envelope->'payload'->>'user_id' = $1 ORDER BY id",
            [id.into()],
        ))
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "routing_key").expect("key"),
                r.try_get("", "v").expect("version"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_patch_shapes() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let boss = create(&app, okta, "boss").await;
    let user = create(&app, okta, "report").await;
    let path = format!("/Users/{}", user["id"].as_str().expect("id"));

    let ops = patch(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": app.email("new.address")},
        {"op": "Replace", "path": "name.familyName", "value": "Newname"},
        {"op": "Add", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "E-7"},
        {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss["id"]},
    ]));
    let res = json(okta.send_json(Method::PATCH, &path, &ops).await, 200).await;
    assert_eq!(res["emails"][0]["value"], app.email("new.address"));
    assert_eq!(res["name"]["familyName"], "Newname");
    assert_eq!(res[ENTERPRISE]["employeeNumber"], "E-7");
    assert_eq!(
        res[ENTERPRISE]["manager"]["value"], boss["id"],
        "a bare id is read back as {{value}}"
    );

    // Clearing the manager with "" (the gallery validator's shape).
    let clear =
        patch(json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": ""}]));
    let res = json(okta.send_json(Method::PATCH, &path, &clear).await, 200).await;
    assert!(res[ENTERPRISE].get("manager").is_none(), "{res}");

    // Removing `active` is not a way to reactivate anyone.
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(
        json(okta.send_json(Method::PATCH, &path, &off).await, 200).await["active"],
        false
    );
    let remove = patch(json!([{"op": "remove", "path": "active"}]));
    assert_eq!(
        json(okta.send_json(Method::PATCH, &path, &remove).await, 200).await["active"],
        false
    );
    let on = patch(json!([{"op": "replace", "path": "active", "value": true}]));
    assert_eq!(
        json(okta.send_json(Method::PATCH, &path, &on).await, 200).await["active"],
        true
    );

    // Entra disables with a string.
    let off = patch(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(
        json(okta.send_json(Method::PATCH, &path, &off).await, 200).await["active"],
        false
    );
    assert_eq!(
        json(okta.get_user(user["id"].as_str().expect("id")).await, 200).await["active"],
        false
    );

    // Bad patches are SCIM errors and change nothing.
    let version =
        json(okta.get_user(user["id"].as_str().expect("id")).await, 200).await["meta"]["version"]
            .clone();
    let bad = patch(json!([{"op": "remove"}]));
    let err = json(okta.send_json(Method::PATCH, &path, &bad).await, 400).await;
    assert_eq!(err["scimType"], "noTarget");
    let bad = patch(json!([{"op": "replace", "path": "active", "value": "sometimes"}]));
    assert_eq!(
        json(okta.send_json(Method::PATCH, &path, &bad).await, 400).await["scimType"],
        "invalidValue"
    );
    let now = json(okta.get_user(user["id"].as_str().expect("id")).await, 200).await;
    assert_eq!(now["meta"]["version"], version);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_uniqueness_and_delete() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let a = create(&app, okta, "a").await;
    let b = create(&app, okta, "b").await;
    let id = a["id"].as_str().expect("id");
    let path = format!("/Users/{id}");

    let res = okta.get_if_none_match(&path, "W/\"1\"").await;
    assert_eq!(res.status(), 304);
    let res = okta.get_if_none_match(&path, "W/\"9\"").await;
    assert_eq!(res.status(), 200);

    let change = patch(json!([{"op": "replace", "path": "title", "value": "X"}]));
    let res = okta.patch_if_match(&path, "W/\"7\"", &change).await;
    assert_eq!(res.status(), 412);
    assert_eq!(json(res, 412).await["status"], "412");
    let res = okta.patch_if_match(&path, "W/\"1\"", &change).await;
    assert_eq!(json(res, 200).await["title"], "X");

    // Renaming onto another user's userName, in any case, is a uniqueness conflict.
    let mut body = json(okta.get_user(id).await, 200).await;
    body["userName"] = json!(b["userName"].as_str().expect("name").to_uppercase());
    let err = json(okta.send_json(Method::PUT, &path, &body).await, 409).await;
    assert_eq!(err["scimType"], "uniqueness");

    let res = okta.delete(&path).await;
    assert_eq!(res.status(), 204);
    assert_eq!(okta.get_user(id).await.status(), 404);
    assert_eq!(okta.delete(&path).await.status(), 404);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE routing_key = 'user.deleted'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    let res = okta
        .send_json(
            Method::PUT,
            &format!("/Users/{}", uuid::Uuid::new_v4()),
            &body,
        )
        .await;
    assert_eq!(res.status(), 404);
    app.stop().await;
}
