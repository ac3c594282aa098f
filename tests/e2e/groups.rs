//! Okta Push Groups and Entra group sync: every membership shape in OKTA.md and
//! IDP-NOTES.md, renames, uniqueness, `excludedAttributes=members`, and delete.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tests::{
    bulk,
    harness::TestApp,
    okta::{ScimClient, create_user_body, urlencode},
};

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn member_ids(okta: &ScimClient, group: &str) -> Vec<String> {
    let res = okta.get(&format!("/Groups/{group}")).await;
    assert_eq!(res.status(), 200);
    let g: Value = res.json().await.expect("JSON");
    let mut ids: Vec<String> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Creates one user per local part with Okta's body, each answered `201`; their ids, in order.
async fn create_users(app: &TestApp, okta: &ScimClient, locals: &[&str]) -> Vec<String> {
    let mut users = Vec::new();
    for local in locals {
        let res = okta
            .post_user(&create_user_body(&app.email(local), local, "X"))
            .await;
        assert_eq!(res.status(), 201);
        users.push(
            res.json::<Value>().await.expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    users
}

/// `POST /Groups` of an empty group named `name`.
async fn post_group(okta: &ScimClient, name: &str) -> reqwest::Response {
    okta.send_json(Method::POST, "/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": []})).await
}

/// Creates an empty group named `name` (`201`); its id.
async fn create_group(okta: &ScimClient, name: &str) -> String {
    let res = post_group(okta, name).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// `GET path`, its body as JSON.
async fn get_json(okta: &ScimClient, path: &str) -> Value {
    okta.get(path).await.json().await.expect("JSON")
}

/// The status of a body-less `method path`.
async fn status(okta: &ScimClient, method: Method, path: &str) -> reqwest::StatusCode {
    okta.request(method, path)
        .send()
        .await
        .expect("request")
        .status()
}

/// `PATCH path` with `body`, which must be answered `204`.
async fn patch_204(okta: &ScimClient, path: &str, body: &Value) {
    assert_eq!(
        okta.send_json(Method::PATCH, path, body).await.status(),
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_push_groups_with_every_membership_shape() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let users = create_users(&app, okta, &["u1", "u2", "u3", "u4"]).await;
    let (u1, u2, u3, u4) = (&users[0], &users[1], &users[2], &users[3]);

    let lookup = |name: &str| {
        format!(
            "/Groups?filter={}",
            urlencode(&format!("displayName eq \"{name}\""))
        )
    };
    let found: Value = get_json(okta, &lookup("Engineering")).await;
    assert_eq!(found["totalResults"], 0);

    let res = post_group(okta, "Engineering").await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("location"));
    let group: Value = res.json().await.expect("JSON");
    let gid = group["id"].as_str().expect("id").to_owned();
    assert_eq!(group["displayName"], "Engineering");
    assert_eq!(group["meta"]["resourceType"], "Group");
    let path = format!("/Groups/{gid}");

    // add with path "members"
    let add = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": u1, "display": "u1"}, {"value": u2, "display": "u2"}, {"value": u3}]}]),
    );
    patch_204(okta, &path, &add).await;
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u1.clone(), u2.clone(), u3.clone()])
    );

    // A member's read-only `groups` reflects it.
    let user: Value = okta.get_user(u1).await.json().await.expect("JSON");
    assert_eq!(user["groups"][0]["value"], gid.as_str());
    assert_eq!(user["groups"][0]["display"], "Engineering");

    // remove with a members[value eq "…"] filter removes exactly that member
    let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}]));
    patch_204(okta, &path, &remove).await;
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u1.clone(), u3.clone()])
    );

    // replace of the whole list, then []
    let replace = patch(json!([{"op": "replace", "path": "members", "value": [{"value": u4}]}]));
    patch_204(okta, &path, &replace).await;
    assert_eq!(member_ids(okta, &gid).await, vec![u4.clone()]);
    let empty = patch(json!([{"op": "replace", "path": "members", "value": []}]));
    patch_204(okta, &path, &empty).await;
    assert!(member_ids(okta, &gid).await.is_empty());

    // rename with {"id","displayName"} in the value, together with membership changes
    let rename = patch(json!([
        {"op": "replace", "value": {"id": gid, "displayName": "Platform"}},
        {"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]},
    ]));
    patch_204(okta, &path, &rename).await;
    let g: Value = get_json(okta, &path).await;
    assert_eq!(g["displayName"], "Platform");
    assert_eq!(g["id"], gid.as_str());
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u1.clone(), u2.clone()])
    );

    // Entra: Remove with a value list removes only those; Replace displayName by path.
    let entra = patch(json!([
        {"op": "Add", "path": "members", "value": [{"value": u3}]},
        {"op": "Remove", "path": "members", "value": [{"value": u1}]},
        {"op": "Replace", "path": "displayName", "value": "Platform Team"},
    ]));
    patch_204(okta, &path, &entra).await;
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u2.clone(), u3.clone()])
    );

    // Entra's lookup leaves members out.
    let res = okta
        .request(
            Method::GET,
            &format!("{}&excludedAttributes=members", lookup("platform team")),
        )
        .send()
        .await
        .expect("GET");
    let found: Value = res.json().await.expect("JSON");
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    assert_eq!(found["Resources"][0]["displayName"], "Platform Team");

    // PUT replaces name and members.
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": gid, "displayName": "Platform Team", "members": [{"value": u4}]});
    let res = okta.send_json(Method::PUT, &path, &put).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["members"][0]["value"],
        u4.as_str()
    );

    // A second group with the same name in another case is a uniqueness conflict.
    let res = okta
        .send_json(
            Method::POST,
            "/Groups",
            &json!({"displayName": "PLATFORM TEAM"}),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["scimType"],
        "uniqueness"
    );

    // Unknown members are refused and change nothing.
    let bad = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": uuid::Uuid::new_v4().to_string()}]}]),
    );
    let res = okta.send_json(Method::PATCH, &path, &bad).await;
    assert_eq!(res.status(), 400);
    assert_eq!(member_ids(okta, &gid).await, vec![u4.clone()]);

    // Deleting a member user drops the membership; deleting the group is 204.
    assert_eq!(
        status(okta, Method::DELETE, &format!("/Users/{u4}")).await,
        204
    );
    assert!(member_ids(okta, &gid).await.is_empty());
    assert_eq!(status(okta, Method::DELETE, &path).await, 204);
    assert_eq!(status(okta, Method::GET, &path).await, 404);
    let user: Value = okta.get_user(u2).await.json().await.expect("JSON");
    assert_eq!(user["groups"], json!([]));

    let kinds = app
        .count("SELECT count(*) FROM outbox WHERE routing_key IN ('group.created', 'group.updated', 'group.deleted')")
        .await;
    assert_eq!(
        kinds,
        1 + 7 + 1,
        "one event per change: create, 7 updates, delete"
    );
    app.stop().await;
}

/// PostgreSQL's own counters for the membership table in this test's database: rows
/// inserted, rows deleted, rows read (by sequential and index scans).
async fn member_table_counters(app: &TestApp) -> [i64; 3] {
    let row = app
        .db
        .query_one_raw(common::db::stmt(
            "SELECT n_tup_ins, n_tup_del, seq_tup_read + COALESCE(idx_tup_fetch, 0) AS tup_read \
             FROM pg_stat_user_tables WHERE relname = 'group_members'",
            [],
        ))
        .await
        .expect("pg_stat_user_tables")
        .expect("a row");
    ["n_tup_ins", "n_tup_del", "tup_read"].map(|c| row.try_get::<i64>("", c).expect(c))
}

/// Waits until PostgreSQL's counters (flushed by each backend within about a second, or
/// ten when it flushed just before) show `inserted` and `deleted`, or 30 s pass.
async fn settled_counters(app: &TestApp, inserted: i64, deleted: i64) -> [i64; 3] {
    let start = std::time::Instant::now();
    loop {
        let c = member_table_counters(app).await;
        if (c[0] >= inserted && c[1] >= deleted) || start.elapsed().as_secs() > 30 {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A one-member PATCH (Okta's add, Okta's filtered remove) to a group of 5,000 touches one
/// membership row and reads next to none: it never loads, rewrites or diffs the whole list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_patch_to_a_large_group_touches_one_row() {
    const N: usize = 5_000;
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let org_id: uuid::Uuid = acme.org_id.parse().expect("org id");
    let gid = create_group(okta, "Everyone").await;
    let users = bulk::insert_users(&app.db, org_id, "big", N + 1)
        .await
        .expect("users");
    let (members, joiner) = users.split_at(N);
    let joiner = joiner[0].to_string();
    bulk::insert_members(&app.db, org_id, gid.parse().expect("group id"), members)
        .await
        .expect("members");
    let before = settled_counters(&app, N as i64, 0).await;
    assert_eq!(before[..2], [N as i64, 0], "the fixture's rows are counted");
    let path = format!("/Groups/{gid}");

    let add = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": joiner, "display": "joiner"}]}]),
    );
    patch_204(okta, &path, &add).await;
    let after_add = settled_counters(&app, before[0] + 1, 0).await;
    assert_eq!(
        after_add[..2],
        [before[0] + 1, 0],
        "one row inserted, none deleted"
    );
    assert!(
        after_add[2] - before[2] < 100,
        "the add read {} membership rows of {N}",
        after_add[2] - before[2]
    );

    let leaver = members[N / 2].to_string();
    let remove =
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{leaver}\"]")}]));
    patch_204(okta, &path, &remove).await;
    let after_remove = settled_counters(&app, after_add[0], 1).await;
    assert_eq!(
        after_remove[..2],
        [after_add[0], 1],
        "one row deleted, none inserted"
    );
    assert!(
        after_remove[2] - after_add[2] < 100,
        "the remove read {} membership rows of {N}",
        after_remove[2] - after_add[2]
    );

    let sql = format!("SELECT count(*) FROM group_members WHERE group_id = '{gid}'");
    assert_eq!(app.count(&sql).await, N as i64);
    let version = format!("SELECT version FROM groups WHERE id = '{gid}'");
    assert_eq!(
        app.count(&version).await,
        3,
        "each PATCH is one new version"
    );
    let joined = format!(
        "SELECT count(*) FROM group_members WHERE group_id = '{gid}' AND user_id IN ('{joiner}')"
    );
    assert_eq!(app.count(&joined).await, 1);
    let left = format!(
        "SELECT count(*) FROM group_members WHERE group_id = '{gid}' AND user_id IN ('{leaver}')"
    );
    app.assert_none(&left).await;
    app.stop().await;
}

/// Groups answer conditional requests as Users do: `If-None-Match` naming the current
/// version is `304` with the `ETag`, another version is `200`; a stale `If-Match` is `412`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_answer_conditional_requests_as_users_do() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let gid = create_group(okta, "Sales").await;
    let path = format!("/Groups/{gid}");
    let res = okta.get(&path).await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().expect("ETag").to_owned();
    assert_eq!(etag, "W/\"1\"");

    let res = okta.get_if_none_match(&path, &etag).await;
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"].to_str().expect("ETag"), etag);
    assert!(res.bytes().await.expect("body").is_empty());
    let res = okta.get_if_none_match(&path, "W/\"9\"").await;
    assert_eq!(res.status(), 200);

    let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "Sales EU"}]));
    let res = okta.patch_if_match(&path, "W/\"7\"", &rename).await;
    assert_eq!(res.status(), 412);
    let res = okta.patch_if_match(&path, &etag, &rename).await;
    assert_eq!(res.status(), 204);
    // The old version no longer matches: the renamed group is sent again.
    let res = okta.get_if_none_match(&path, &etag).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"].to_str().expect("ETag"), "W/\"2\"");
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["displayName"],
        "Sales EU"
    );
    app.stop().await;
}

/// A page of groups carries each group's own members, in the order they were added (all
/// read in one query), the same as each group's own GET; without members when excluded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_groups_carries_each_groups_own_members() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let users = create_users(&app, okta, &["m1", "m2", "m3", "m4"]).await;
    // Added one PATCH at a time, so each group's order is the order of adding.
    let plan: [(&str, Vec<&String>); 4] = [
        ("Alpha", vec![&users[2], &users[0]]),
        ("Beta", vec![&users[3]]),
        ("Gamma", vec![]),
        ("Delta", vec![&users[1], &users[3], &users[0]]),
    ];
    let mut expected = std::collections::HashMap::new();
    for (name, members) in &plan {
        let gid = create_group(okta, name).await;
        for m in members {
            let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": m}]}]));
            patch_204(okta, &format!("/Groups/{gid}"), &add).await;
        }
        let ids: Vec<String> = members.iter().map(|m| (*m).clone()).collect();
        expected.insert(gid, ids);
    }

    let page: Value = get_json(okta, "/Groups?count=10").await;
    assert_eq!(page["totalResults"], 4);
    let groups = page["Resources"].as_array().expect("Resources");
    assert_eq!(groups.len(), 4);
    for g in groups {
        let gid = g["id"].as_str().expect("id");
        let listed: Vec<&str> = g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().expect("value"))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(listed, expected[gid], "{}", g["displayName"]);
        let own: Value = get_json(okta, &format!("/Groups/{gid}")).await;
        assert_eq!(own, *g, "the list renders a group as its own GET does");
    }

    let page: Value = get_json(okta, "/Groups?excludedAttributes=members").await;
    let groups = page["Resources"].as_array().expect("Resources");
    assert_eq!(groups.len(), 4);
    assert!(groups.iter().all(|g| g.get("members").is_none()));
    app.stop().await;
}
