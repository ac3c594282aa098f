//! Every answer is the truth (docs/reliability.md): a change answered `503` — held on a
//! row lock, parked in a retry queue by a database outage, or redelivered after a worker
//! died — is never applied later; a publish whose confirm was lost with its channel is never
//! answered "nothing was changed" when it was applied; no password reaches the commands
//! exchange.

use common::db::stmt;
use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions},
    types::FieldTable,
};
use reqwest::{Method, Response};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::{
    events::Tap,
    harness::{Options, Tenant, TestApp},
    okta::{PASSWORD_PLACEHOLDER, create_user_body},
};

const DEADLINE: Duration = Duration::from_secs(3);

fn options() -> Options {
    Options {
        command_timeout: DEADLINE,
        ..Options::default()
    }
}

fn set_active(active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": active}}]
    })
}

async fn create(t: &Tenant, user_name: &str, active: bool) -> String {
    let mut body = create_user_body(user_name, "Dana", "Reyes");
    body["active"] = json!(active);
    let res = t.scim.post_user(&body).await;
    assert_eq!(res.status(), 201, "create {user_name}");
    let v: Value = res.json().await.expect("user JSON");
    v["id"].as_str().expect("id").to_owned()
}

async fn patch(t: &Tenant, id: &str, body: &Value) -> Response {
    t.scim
        .send_json(Method::PATCH, &format!("/Users/{id}"), body)
        .await
}

async fn user(t: &Tenant, id: &str) -> Value {
    let res = t.scim.get_user(id).await;
    assert_eq!(res.status(), 200);
    res.json().await.expect("user JSON")
}

/// Another transaction holding the person's row until it is rolled back.
async fn hold_row(app: &TestApp, id: &str) -> sea_orm::DatabaseTransaction {
    let holder = app.db.begin().await.expect("begin");
    holder
        .execute_raw(stmt(
            "SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE",
            [id.to_owned().into()],
        ))
        .await
        .expect("row lock");
    holder
}

async fn detail(res: Response) -> String {
    let v: Value = res.json().await.unwrap_or_default();
    v["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_held_on_a_row_lock_past_its_deadline_is_never_applied() {
    let app = TestApp::spawn_with(options()).await;
    let acme = app.tenant("Acme").await;
    let id = create(&acme, &app.email("held"), true).await;

    // Another transaction holds the person's row, longer than the command timeout.
    let holder = hold_row(&app, &id).await;
    let started = Instant::now();
    let res = patch(&acme, &id, &set_active(false)).await;
    assert_eq!(res.status(), 503);
    assert!(
        started.elapsed() >= DEADLINE,
        "answered before the deadline"
    );
    let text = detail(res).await;
    assert!(text.contains("not applied"), "{text}");

    holder.rollback().await.expect("release the row");
    // The worker now gets the row, finds the deadline passed and rolls back.
    app.wait_count(
        "SELECT count(*) FROM audit_log WHERE action = 'command.expired'",
        1,
        Duration::from_secs(15),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = user(&acme, &id).await;
    assert_eq!(after["active"], true, "a change answered 503 was applied");
    assert_eq!(after["meta"]["version"], "W/\"1\"");
    app.assert_none("SELECT count(*) FROM outbox WHERE routing_key = 'user.deactivated'")
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactivation_parked_by_a_database_outage_never_undoes_a_later_deactivation() {
    let mut app = TestApp::spawn_with(Options {
        worker: false,
        ..options()
    })
    .await;
    let worker_db = app.start_worker_with_own_db().await;
    let acme = app.tenant("Acme").await;
    let id = create(&acme, &app.email("flip"), false).await;

    // The database goes away for the worker alone: the reactivation is retried in
    // process, then parked in a retry queue; the ingress answers 503 at its deadline.
    worker_db.down();
    let res = patch(&acme, &id, &set_active(true)).await;
    assert_eq!(res.status(), 503);
    worker_db.restore();

    // Okta goes on: the person is deactivated (already inactive: 200).
    let res = patch(&acme, &id, &set_active(false)).await;
    assert_eq!(res.status(), 200);

    // The parked reactivation comes back after its deadline and is dropped.
    app.wait_count(
        "SELECT count(*) FROM audit_log WHERE action = 'command.expired'",
        1,
        Duration::from_secs(20),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(user(&acme, &id).await["active"], false);
    app.assert_none("SELECT count(*) FROM outbox WHERE routing_key = 'user.reactivated'")
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_redelivered_after_a_worker_died_is_not_applied_after_its_503() {
    let mut app = TestApp::spawn_with(options()).await;
    let acme = app.tenant("Acme").await;
    let id = create(&acme, &app.email("redelivered"), true).await;

    let holder = hold_row(&app, &id).await;
    let pending = {
        let scim = acme.scim.clone();
        let id = id.clone();
        tokio::spawn(async move {
            scim.send_json(Method::PATCH, &format!("/Users/{id}"), &set_active(false))
                .await
                .status()
        })
    };
    // The worker has the deactivation and waits on the row; it dies.
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.kill_workers();
    assert_eq!(pending.await.expect("request"), 503);
    holder.rollback().await.expect("release the row");

    // A new worker takes the returned command (expired) and then a newer change.
    app.start_worker().await;
    let res = patch(
        &acme,
        &id,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Engineer"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    app.wait_count(
        "SELECT count(*) FROM audit_log WHERE action = 'command.expired'",
        1,
        Duration::from_secs(15),
    )
    .await;
    let after = user(&acme, &id).await;
    assert_eq!(after["active"], true, "the 503'd deactivation was applied");
    assert_eq!(after["title"], "Engineer");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_channel_fails_is_never_called_unchanged_when_applied() {
    let app = TestApp::spawn_with(Options {
        command_timeout: Duration::from_secs(5),
        ..Options::default()
    })
    .await;
    let acme = app.tenant("Acme").await;
    let names: Vec<String> = (0..120).map(|i| app.email(&format!("amb{i}"))).collect();
    let mut calls = Vec::new();
    for chunk in names.chunks(30) {
        for name in chunk {
            let scim = acme.scim.clone();
            let body = create_user_body(name, "Amb", "Iguous");
            let name = name.clone();
            calls.push(tokio::spawn(async move {
                let res = scim.post_user(&body).await;
                let status = res.status().as_u16();
                (name, status, detail(res).await)
            }));
        }
        // The ingress's broker connection drops while these are being published.
        tokio::time::sleep(Duration::from_millis(30)).await;
        app.amqp_proxy.cut();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.expect("request"));
    }
    // Let anything still queued finish.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut created = 0;
    for (name, status, detail) in &answers {
        let exists = app
            .count(&format!(
                "SELECT count(*) FROM users WHERE user_name = '{name}'"
            ))
            .await
            == 1;
        created += i32::from(exists);
        match status {
            201 => assert!(exists, "{name}: 201 but not stored"),
            503 => assert!(!exists, "{name}: 503 ({detail}) but applied"),
            other => panic!("{name}: unexpected {other} {detail}"),
        }
    }
    assert!(created > 0, "nothing got through at all");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_reaches_the_commands_exchange() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let exchange = common::amqp::Topology::from_settings(&app.settings).commands_exchange();
    let Tap {
        conn,
        channel,
        queue,
    } = Tap::bind(&app.settings_amqp_direct(), &exchange, "#").await;

    let name = app.email("secretive");
    let id = create(&acme, &name, true).await;
    let mut put = create_user_body(&name, "Dana", "Reyes");
    put["id"] = json!(id);
    let res = acme
        .scim
        .send_json(Method::PUT, &format!("/Users/{id}"), &put)
        .await;
    assert_eq!(res.status(), 200);
    for body in [
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "value": {"password": PASSWORD_PLACEHOLDER}}]}),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "password", "value": PASSWORD_PLACEHOLDER},
                              {"op": "replace", "path": "title", "value": "Lead"}]}),
    ] {
        assert_eq!(patch(&acme, &id, &body).await.status(), 200);
    }
    assert_eq!(user(&acme, &id).await["title"], "Lead");

    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "truth-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("4 commands on the exchange")
            .expect("a delivery")
            .expect("delivery");
        let _ = delivery.ack(BasicAckOptions::default()).await;
        let envelope: Value = serde_json::from_slice(&delivery.data).expect("JSON");
        seen.push(envelope["type"].as_str().unwrap_or_default().to_owned());
        let text = String::from_utf8_lossy(&delivery.data).to_lowercase();
        assert!(
            !text.contains(&PASSWORD_PLACEHOLDER.to_lowercase()) && !text.contains("\"password\""),
            "a password on the commands exchange: {text}"
        );
    }
    assert_eq!(
        seen,
        ["user.create", "user.replace", "user.patch", "user.patch"]
    );
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_outbox_row_is_kept_and_counted_never_marked_published() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    app.db
        .execute_raw(stmt(
            "INSERT INTO outbox (event_id, org_id, routing_key, envelope) \
             VALUES (gen_random_uuid(), $1::uuid, 'user.created', '{\"not\": \"an envelope\"}')",
            [acme.org_id.clone().into()],
        ))
        .await
        .expect("a broken outbox row");
    // Events behind it still go out.
    create(&acme, &app.email("after"), true).await;
    app.wait_count(
        "SELECT count(*) FROM outbox WHERE routing_key = 'user.created' AND published_at IS NOT NULL",
        1,
        Duration::from_secs(10),
    )
    .await;
    app.wait_count(
        "SELECT count(*) FROM outbox WHERE unreadable_at IS NOT NULL",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox WHERE envelope ? 'not' AND published_at IS NOT NULL"
        )
        .await,
        0,
        "an unreadable row was marked published"
    );
    app.stop().await;
}
