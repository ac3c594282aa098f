//! Tenants are walled off: over every SCIM, admin, directory and admin-page route, one
//! org's credentials never read or change another org's data. Another org's ids answer
//! `404` (never `403`, never data), and the other org is byte-for-byte unchanged after
//! each attempt.

use crate::{
    auth::Page,
    hostile::{assert_api_error, assert_scim_error, snapshot},
};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{
    harness::{Tenant, TestApp},
    okta::{ScimClient, create_user_body},
};

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn id_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 201, "creating");
    res.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// One org's people and group.
struct Seeded {
    user: String,
    user_name: String,
    external_id: String,
    group: String,
    group_name: String,
}

async fn seed(app: &TestApp, t: &Tenant, local: &str) -> Seeded {
    let user_name = app.email(local);
    let body = create_user_body(&user_name, local, "Person");
    let external_id = body["externalId"].as_str().expect("externalId").to_owned();
    let user = id_of(t.scim.post_user(&body).await).await;
    let group_name = format!("{local} team");
    let group = id_of(
        t.scim
            .send_json(
                Method::POST,
                "/Groups",
                &json!({"displayName": group_name, "members": [{"value": user}]}),
            )
            .await,
    )
    .await;
    Seeded {
        user,
        user_name,
        external_id,
        group,
        group_name,
    }
}

async fn total(okta: &ScimClient, method: Method, path: &str, body: Option<Value>) -> Value {
    let res = match body {
        Some(b) => okta.send_json(method, path, &b).await,
        None => okta.request(method, path).send().await.expect("request"),
    };
    assert_eq!(res.status(), 200, "{path}");
    let page: Value = res.json().await.expect("JSON");
    page["totalResults"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orgs_scim_token_never_reaches_another_org() {
    let app = TestApp::spawn().await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let mine = seed(&app, &a, "a.person").await;
    let theirs = seed(&app, &b, "b.person").await;
    let okta = &a.scim;
    let b_before = snapshot(&app, &b.org_id).await;

    // By id: every verb on Users and Groups is 404 with SCIM error JSON.
    let user = format!("/Users/{}", theirs.user);
    let group = format!("/Groups/{}", theirs.group);
    let replace_user = create_user_body(&theirs.user_name, "Hijacked", "X");
    let deactivate = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let attempts = [
        (Method::GET, user.clone(), None),
        (Method::PUT, user.clone(), Some(replace_user)),
        (Method::PATCH, user.clone(), Some(deactivate)),
        (Method::DELETE, user.clone(), None),
        (Method::GET, group.clone(), None),
        (
            Method::PUT,
            group.clone(),
            Some(json!({"displayName": "Hijacked", "members": []})),
        ),
        (
            Method::PATCH,
            group.clone(),
            Some(patch(
                json!([{"op": "replace", "path": "members", "value": []}]),
            )),
        ),
        (Method::DELETE, group.clone(), None),
    ];
    for (method, path, body) in attempts {
        let res = match &body {
            Some(b) => okta.send_json(method.clone(), &path, b).await,
            None => okta
                .request(method.clone(), &path)
                .send()
                .await
                .expect("request"),
        };
        assert_scim_error(res, 404, None).await;
        assert_eq!(snapshot(&app, &b.org_id).await, b_before, "{method} {path}");
    }

    // Queries never match another org's rows, whatever they filter on.
    let quote = |s: &str| format!("\"{s}\"");
    for filter in [
        format!("userName eq {}", quote(&theirs.user_name)),
        format!("id eq {}", quote(&theirs.user)),
        format!("externalId eq {}", quote(&theirs.external_id)),
        format!("emails.value eq {}", quote(&theirs.user_name)),
        "userName pr".to_owned(),
    ] {
        let query = format!("/Users?filter={}", tests::okta::urlencode(&filter));
        let expected = if filter == "userName pr" { 1 } else { 0 };
        assert_eq!(
            total(okta, Method::GET, &query, None).await,
            expected,
            "{filter}"
        );
        let search = json!({"filter": filter});
        assert_eq!(
            total(okta, Method::POST, "/Users/.search", Some(search)).await,
            expected,
            "{filter}"
        );
    }
    for filter in [
        format!("displayName eq {}", quote(&theirs.group_name)),
        format!("id eq {}", quote(&theirs.group)),
        format!("members.value eq {}", quote(&theirs.user)),
    ] {
        let query = format!("/Groups?filter={}", tests::okta::urlencode(&filter));
        assert_eq!(total(okta, Method::GET, &query, None).await, 0, "{filter}");
        let search = json!({"filter": filter});
        assert_eq!(
            total(okta, Method::POST, "/Groups/.search", Some(search)).await,
            0,
            "{filter}"
        );
    }
    let res = okta.get("/Users?startIndex=1&count=200").await;
    let list: Value = res.json().await.expect("JSON");
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], mine.user.as_str());

    // Another org's user cannot be put in one's own group, by any route.
    let a_before = snapshot(&app, &a.org_id).await;
    let member = json!([{"value": theirs.user}]);
    let own_group = format!("/Groups/{}", mine.group);
    for (method, path, body) in [
        (
            Method::POST,
            "/Groups".to_owned(),
            json!({"displayName": "Smuggled", "members": member}),
        ),
        (
            Method::PUT,
            own_group.clone(),
            json!({"displayName": mine.group_name, "members": member}),
        ),
        (
            Method::PATCH,
            own_group.clone(),
            patch(json!([{"op": "add", "path": "members", "value": member}])),
        ),
        (
            Method::PATCH,
            own_group.clone(),
            patch(json!([{"op": "replace", "path": "members", "value": member}])),
        ),
    ] {
        let res = okta.send_json(method.clone(), &path, &body).await;
        let err = assert_scim_error(res, 400, Some("invalidValue")).await;
        assert!(
            err["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(&theirs.user),
            "names the unknown id: {err}"
        );
        assert_eq!(snapshot(&app, &a.org_id).await, a_before, "{method} {path}");
        assert_eq!(snapshot(&app, &b.org_id).await, b_before, "{method} {path}");
    }
    // A remove of another org's member from one's own group removes nothing anywhere.
    let remove =
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", theirs.user)}]));
    let res = okta.send_json(Method::PATCH, &own_group, &remove).await;
    assert!(
        res.status().is_success() || res.status() == 400,
        "{}",
        res.status()
    );
    assert_eq!(snapshot(&app, &b.org_id).await, b_before);

    // The same userName and displayName may exist in both orgs.
    let res = okta
        .post_user(&create_user_body(&theirs.user_name, "Other", "One"))
        .await;
    assert_eq!(res.status(), 201);
    let res = okta
        .send_json(
            Method::POST,
            "/Groups",
            &json!({"displayName": theirs.group_name}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(snapshot(&app, &b.org_id).await, b_before);
    assert_eq!(b.scim.get_user(&theirs.user).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orgs_admin_key_and_session_never_reach_another_org() {
    let app = TestApp::spawn().await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let _mine = seed(&app, &a, "a.person").await;
    let theirs = seed(&app, &b, "b.person").await;
    // B's settings differ from A's, so reading the wrong org would show.
    let res = app
        .put_settings(
            &b.admin_key,
            json!({"send_invites": false, "lock_synced_fields": true}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let b_before = snapshot(&app, &b.org_id).await;
    let key = &a.admin_key;

    // The directory: another org's person is 404, to read and to edit.
    let person = format!("/api/v1/people/{}", theirs.user);
    let msg = assert_api_error(app.admin(Method::GET, &person, key, None).await, 404).await;
    assert!(!msg.contains(&theirs.user_name), "{msg}");
    let edit = json!({"fields": {"preferred_name": "Hijacked"}});
    assert_api_error(
        app.admin(Method::PATCH, &person, key, Some(edit)).await,
        404,
    )
    .await;
    assert_eq!(snapshot(&app, &b.org_id).await, b_before);

    // Every read answers for A alone.
    let res = app
        .admin(
            Method::GET,
            "/api/v1/people?include_inactive=true",
            key,
            None,
        )
        .await;
    let people: Value = res.json().await.expect("JSON");
    let ids: Vec<&str> = people
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(!ids.contains(&theirs.user.as_str()));
    let res = app
        .admin(Method::GET, "/admin/v1/activity?limit=200", key, None)
        .await;
    let activity = res.text().await.expect("text");
    assert!(!activity.contains(&theirs.user) && !activity.contains(&theirs.group));
    assert!(!activity.contains(&theirs.user_name));
    let res = app
        .admin(Method::GET, "/admin/v1/settings", key, None)
        .await;
    let settings: Value = res.json().await.expect("JSON");
    assert_eq!(
        settings["send_invites"], true,
        "A's own settings: {settings}"
    );

    // Every write changes A alone.
    for (method, path, body) in [
        (
            Method::PUT,
            "/admin/v1/settings",
            Some(json!({"send_invites": false})),
        ),
        (
            Method::PUT,
            "/admin/v1/mappings",
            Some(json!([{"field": "job_title", "scim_attribute": "title", "policy": "ignore"}])),
        ),
        (Method::POST, "/admin/v1/provisioning/token", None),
        (
            Method::PUT,
            "/admin/v1/provisioning",
            Some(json!({"enabled": false})),
        ),
    ] {
        let res = app.admin(method.clone(), path, key, body).await;
        assert_eq!(res.status(), 200, "{method} {path}");
        assert_eq!(snapshot(&app, &b.org_id).await, b_before, "{method} {path}");
    }
    assert_eq!(
        b.scim.get_user(&theirs.user).await.status(),
        200,
        "B's token works"
    );

    // The admin page: A's session shows A's data and changes A's settings only.
    let page = Page::from(&app, [127, 0, 0, 41]);
    let (cookie, html) = page.signed_in(key).await;
    assert!(!html.contains(&theirs.user_name) && !html.contains(&theirs.user));
    let res = page
        .submit(
            "/admin/settings",
            &cookie,
            &html,
            &[("send_invites", "on"), ("lock_synced_fields", "")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        snapshot(&app, &b.org_id).await,
        b_before,
        "the page's writes"
    );
    let res = app
        .admin(Method::GET, "/admin/v1/settings", key, None)
        .await;
    let settings: Value = res.json().await.expect("JSON");
    assert_eq!(settings["send_invites"], true, "A's page changed A");

    // B's key and page still work for B, with B's data.
    let res = app
        .admin(Method::GET, "/admin/v1/settings", &b.admin_key, None)
        .await;
    let settings: Value = res.json().await.expect("JSON");
    assert_eq!(
        settings,
        json!({"send_invites": false, "lock_synced_fields": true, "deactivated_people": {"policy": "keep"}, "deprovision_guard": {
            "enabled": true, "threshold_percent": 10, "min_count": 10, "window_minutes": 60},
               "manager_match": ["id", "external_id", "email", "user_name", "employee_number"]})
    );
    app.stop().await;
}
