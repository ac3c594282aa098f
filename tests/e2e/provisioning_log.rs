//! The provisioning log: every SCIM request of an org — whatever its outcome — is one
//! entry with its method, path, person, status and the SCIM error's `detail`, in that
//! org's log only; a request with no valid token belongs to no org and is not logged;
//! no entry holds a secret or a body.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::{
    harness::TestApp,
    okta::{PASSWORD_PLACEHOLDER, ScimClient, create_user_body},
};

/// Sends `method path` (with `body`, `If-Match`) tagged with `X-Request-Id: tag`; returns
/// the status and the SCIM error's `detail`, if any.
async fn call(
    okta: &ScimClient,
    tag: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    if_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = okta.request(method, path).header("X-Request-Id", tag);
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/scim+json")
            .body(b.to_string());
    }
    if let Some(v) = if_match {
        req = req.header("If-Match", v);
    }
    let res = req.send().await.expect("SCIM request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let detail = body["detail"].as_str().map(str::to_owned);
    (status, detail, body)
}

/// The org's log as the admin API pages it, waiting until it has at least `n` entries.
async fn log(app: &TestApp, key: &str, query: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let res = app
            .admin(
                Method::GET,
                &format!("/admin/v1/provisioning/log?limit=200{query}"),
                key,
                None,
            )
            .await;
        assert_eq!(res.status(), 200, "GET /admin/v1/provisioning/log{query}");
        let body: Value = res.json().await.expect("JSON");
        let entries = body["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() >= n || start.elapsed() > Duration::from_secs(20) {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_tag<'a>(entries: &'a [Value], tag: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["correlation_id"] == tag)
        .unwrap_or_else(|| panic!("no log entry for {tag}: {entries:#?}"))
}

fn patch_active(active: bool) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "value": {"active": active}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_logged_for_its_own_org_only() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let okta = &acme.scim;
    // A guard that trips at the third deactivation or deletion, for a 503.
    let res = app
        .put_settings(
            &acme.admin_key,
            json!({"deprovision_guard": {"threshold_percent": 1, "min_count": 2}}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let ada = create_user_body(&app.email("ada"), "Ada", "Lovelace");
    let (s201, _, created) = call(okta, "t-201", Method::POST, "/Users", Some(&ada), None).await;
    assert_eq!(s201, 201);
    let id = created["id"].as_str().expect("id").to_owned();
    let (s200, _, _) = call(
        okta,
        "t-200",
        Method::GET,
        &format!("/Users/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(s200, 200);
    let (s409, d409, _) = call(okta, "t-409", Method::POST, "/Users", Some(&ada), None).await;
    assert_eq!(s409, 409);
    let bad = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "name": {}});
    let (s400, d400, _) = call(okta, "t-400", Method::POST, "/Users", Some(&bad), None).await;
    assert_eq!(s400, 400);
    let missing = uuid::Uuid::now_v7();
    let (s404, d404, _) = call(
        okta,
        "t-404",
        Method::GET,
        &format!("/Users/{missing}"),
        None,
        None,
    )
    .await;
    assert_eq!(s404, 404);
    let (s412, d412, _) = call(
        okta,
        "t-412",
        Method::PUT,
        &format!("/Users/{id}"),
        Some(&ada),
        Some("W/\"7\""),
    )
    .await;
    assert_eq!(s412, 412);
    // Two more people; the deletion and the first deactivation pass, the second is held.
    let mut others = Vec::new();
    for name in ["bo", "cy"] {
        let body = create_user_body(&app.email(name), "X", "Y");
        let (s, _, u) = call(
            okta,
            &format!("t-make-{name}"),
            Method::POST,
            "/Users",
            Some(&body),
            None,
        )
        .await;
        assert_eq!(s, 201);
        others.push(u["id"].as_str().expect("id").to_owned());
    }
    let (s204, _, _) = call(
        okta,
        "t-204",
        Method::DELETE,
        &format!("/Users/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(s204, 204);
    let (s, _, _) = call(
        okta,
        "t-deactivate",
        Method::PATCH,
        &format!("/Users/{}", others[0]),
        Some(&patch_active(false)),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s503, d503, _) = call(
        okta,
        "t-503",
        Method::PATCH,
        &format!("/Users/{}", others[1]),
        Some(&patch_active(false)),
        None,
    )
    .await;
    assert_eq!(s503, 503);
    // A wrong token belongs to no org: not logged anywhere.
    let stranger = app.scim("rst_scim_not-a-real-token");
    let (s401, _, _) = call(&stranger, "t-401", Method::GET, "/Users", None, None).await;
    assert_eq!(s401, 401);
    // The other org's request is in its own log only.
    let (s, _, _) = call(&other.scim, "t-other", Method::GET, "/Users", None, None).await;
    assert_eq!(s, 200);

    let entries = log(&app, &acme.admin_key, "", 11).await;
    assert_eq!(entries.len(), 11, "{entries:#?}");
    let expect = [
        ("t-201", "POST", "/Users", 201, None),
        ("t-200", "GET", "/Users/{id}", 200, None),
        ("t-409", "POST", "/Users", 409, d409.clone()),
        ("t-400", "POST", "/Users", 400, d400.clone()),
        ("t-404", "GET", "/Users/{missing}", 404, d404.clone()),
        ("t-412", "PUT", "/Users/{id}", 412, d412.clone()),
        ("t-503", "PATCH", "/Users/{held}", 503, d503.clone()),
        ("t-204", "DELETE", "/Users/{id}", 204, None),
    ];
    for (tag, method, path, status, detail) in expect {
        let e = by_tag(&entries, tag);
        let path = path
            .replace("{id}", &id)
            .replace("{missing}", &missing.to_string())
            .replace("{held}", &others[1]);
        assert_eq!(e["method"], method, "{tag}");
        assert_eq!(e["path"], path, "{tag}");
        assert_eq!(e["status"], status, "{tag}");
        assert_eq!(e["detail"].as_str().map(str::to_owned), detail, "{tag}");
        assert!(e["duration_ms"].is_number() && e["at"].is_string(), "{tag}");
        if status >= 400 {
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{tag}");
        }
    }
    assert!(
        d503.as_deref()
            .is_some_and(|d| d.contains("held for an admin's approval"))
    );
    // The person: from the path, and from `Location` on a create.
    assert_eq!(by_tag(&entries, "t-201")["resource_id"], id.as_str());
    assert_eq!(by_tag(&entries, "t-201")["resource_type"], "User");
    assert_eq!(by_tag(&entries, "t-503")["resource_id"], others[1].as_str());
    assert!(entries.iter().all(|e| e["correlation_id"] != "t-401"));
    assert!(entries.iter().all(|e| e["correlation_id"] != "t-other"));

    // Newest first, failures easy to find, one person's, and paged by cursor.
    let ids: Vec<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
    assert_eq!(entries[0]["correlation_id"], "t-503");
    let failed = log(&app, &acme.admin_key, "&outcome=failed", 5).await;
    let statuses: Vec<i64> = failed.iter().filter_map(|e| e["status"].as_i64()).collect();
    assert_eq!(statuses, [503, 412, 404, 400, 409]);
    let person = log(&app, &acme.admin_key, &format!("&person={id}"), 4).await;
    let tags: Vec<&str> = person
        .iter()
        .filter_map(|e| e["correlation_id"].as_str())
        .collect();
    assert_eq!(tags, ["t-204", "t-412", "t-200", "t-201"]);
    let res = app
        .admin(
            Method::GET,
            "/admin/v1/provisioning/log?limit=5",
            &acme.admin_key,
            None,
        )
        .await;
    let page: Value = res.json().await.expect("JSON");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(5));
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = log(&app, &acme.admin_key, &format!("&cursor={cursor}"), 6).await;
    assert_eq!(rest.len(), 6);
    assert_eq!(rest[0]["id"], entries[5]["id"]);
    let res = app
        .admin(
            Method::GET,
            "/admin/v1/provisioning/log?outcome=bogus",
            &acme.admin_key,
            None,
        )
        .await;
    assert_eq!(res.status(), 400);

    // The other org sees its one request only; the 401 is nowhere.
    let theirs = log(&app, &other.admin_key, "", 1).await;
    let tags: Vec<&str> = theirs
        .iter()
        .filter_map(|e| e["correlation_id"].as_str())
        .collect();
    assert_eq!(tags, ["t-other"]);
    app.assert_none("SELECT count(*) FROM provisioning_log WHERE correlation_id = 't-401'")
        .await;
    assert_eq!(app.count("SELECT count(*) FROM provisioning_log").await, 12);

    // Never a secret or a body.
    let stored = app
        .count(&format!(
            "SELECT count(*) FROM provisioning_log WHERE row_to_json(provisioning_log)::text LIKE '%{}%' \
             OR row_to_json(provisioning_log)::text LIKE '%{PASSWORD_PLACEHOLDER}%' \
             OR row_to_json(provisioning_log)::text LIKE '%Lovelace%'",
            &okta.token[okta.token.len() - 12..]
        ))
        .await;
    assert_eq!(stored, 0, "a token, a password or a body in the log");
    app.stop().await;
}

/// Entries older than the retention are pruned; younger ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_past_their_retention_are_pruned() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    for (tag, age_days) in [("old", 31), ("young", 29)] {
        app.db
            .execute_unprepared(&format!(
                "INSERT INTO provisioning_log (id, org_id, at, method, path, status, duration_ms, correlation_id) \
                 VALUES ('{}', '{}', now() - interval '{age_days} days', 'GET', '/Users', 200, 1, '{tag}')",
                uuid::Uuid::now_v7(),
                t.org_id
            ))
            .await
            .expect("insert");
    }
    let retention = Duration::from_secs(30 * 86_400);
    let pruned = worker::provisioning_log::prune_once(&app.db, retention)
        .await
        .expect("prune");
    // (The worker prunes at its start too, which may have come first.)
    assert!(pruned <= 1, "{pruned}");
    app.assert_none("SELECT count(*) FROM provisioning_log WHERE correlation_id = 'old'")
        .await;
    assert_eq!(
        app.count("SELECT count(*) FROM provisioning_log WHERE correlation_id = 'young'")
            .await,
        1
    );
    app.stop().await;
}

/// Another service with access to the broker cannot write an org's log: entries not
/// published by Roster's own broker user are dead-lettered, not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entries_are_not_stored() {
    use common::{
        amqp::{Publisher, Topology},
        messages::{Envelope, PROVISIONING_LOG, ProvisioningLogEntries, ProvisioningLogEntry},
    };
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let conn = lapin::Connection::connect(&app.settings_amqp_direct(), Default::default())
        .await
        .expect("connecting to RabbitMQ");
    let publisher = Publisher::open(&conn).await.expect("publisher");
    let entry = ProvisioningLogEntry {
        id: uuid::Uuid::now_v7(),
        org_id: t.org_id.parse().expect("org id"),
        at: chrono::Utc::now(),
        method: "DELETE".into(),
        path: "/Users/forged".into(),
        resource_type: None,
        resource_id: None,
        status: 204,
        detail: None,
        duration_ms: 1,
        correlation_id: "forged".into(),
    };
    let env = Envelope::new(
        PROVISIONING_LOG,
        None,
        "forged",
        ProvisioningLogEntries {
            entries: vec![entry],
        },
    );
    let queue = Topology::from_settings(&app.settings).provisioning_log_queue();
    tests::events::publish_to_queue(&publisher, &queue, &env).await;
    // Roster's own entries still arrive (and show the writer is consuming).
    let res = t
        .scim
        .request(Method::GET, "/Users")
        .header("X-Request-Id", "genuine")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    let entries = log(&app, &t.admin_key, "", 1).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["correlation_id"], "genuine");
    let dead = Topology::from_settings(&app.settings).dead_letter_queue();
    let ch = conn.create_channel().await.expect("channel");
    let start = Instant::now();
    loop {
        let q = ch
            .queue_declare(
                dead.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("dead-letter queue");
        if q.message_count() >= 1 || start.elapsed() > Duration::from_secs(10) {
            assert_eq!(q.message_count(), 1, "the forged message is dead-lettered");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.assert_none("SELECT count(*) FROM provisioning_log WHERE correlation_id = 'forged'")
        .await;
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}
