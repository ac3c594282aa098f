//! Data has a lifetime (docs/data-lifecycle.md): a deleted person leaves no trace in any
//! text or JSON column of any table (found through information_schema, so new tables are
//! covered too); the tables stay within their retention windows under load while a
//! redelivered command inside the window still gets its stored reply; the org's policy
//! erases deactivated people; and an org the operator removes leaves nothing carrying its
//! id, while another org's Okta lifecycle runs on undisturbed.

use crate::{
    auth::Page,
    dead_letters::{Replies, create_user},
};
use common::amqp::{Publisher, Topology, publish::PublishOptions};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tests::{
    events::Tap,
    harness::{Options, TestApp},
    okta::{ScimClient, create_user_body},
};
use uuid::Uuid;

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// Creates a user with Okta's body (`201`); its id.
async fn created_id(okta: &ScimClient, user_name: &str, given: &str, family: &str) -> String {
    ok_json(
        okta.post_user(&create_user_body(user_name, given, family))
            .await,
        201,
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The operator's `PUT /admin/v1/orgs/{org}/retention {"activity_days": days}`, answered `200`.
async fn set_activity_days(app: &TestApp, org: &str, days: u32) {
    let path = format!("/admin/v1/orgs/{org}/retention");
    let body = json!({"activity_days": days});
    let res = app
        .admin(Method::PUT, &path, &app.operator_token, Some(body))
        .await;
    ok_json(res, 200).await;
}

async fn ok_json(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body = res.text().await.expect("body");
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// A stack whose worker prunes every `gc` (and with `windows`, if given, in seconds).
async fn spawn(gc: Duration, windows: Option<Duration>) -> TestApp {
    let mut app = TestApp::spawn_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    app.settings.gc_interval = gc;
    if let Some(w) = windows {
        app.settings.outbox_retention = w;
        app.settings.processed_commands_retention = w;
        app.settings.activity_retention = w;
        app.settings.invite_retention = w;
    }
    app.start_worker().await;
    app
}

/// Every `(table, column)` of the public schema whose type is in `types` (all types when
/// empty), from information_schema: a table added later is searched too.
async fn columns(app: &TestApp, text_only: bool) -> Vec<(String, String)> {
    let filter = if text_only {
        "AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY')"
    } else {
        ""
    };
    let rows = app
        .db
        .query_all_raw(common::db::stmt(
            &format!(
                "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name <> 'seaql_migrations' {filter} \
                 ORDER BY table_name, column_name"
            ),
            [],
        ))
        .await
        .expect("information_schema");
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "t").expect("table"),
                r.try_get::<String>("", "c").expect("column"),
            )
        })
        .collect()
}

/// `table.column (n rows)` for every column whose text contains `needle` (any case).
async fn hits(app: &TestApp, needle: &str, text_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (t, c) in columns(app, text_only).await {
        let n = app
            .count(&format!(
                "SELECT count(*) FROM \"{t}\" WHERE strpos(lower(\"{c}\"::text), lower('{needle}')) > 0"
            ))
            .await;
        if n > 0 {
            out.push(format!("{t}.{c} ({n} rows)"));
        }
    }
    out
}

/// Waits up to `limit` for `needle` to be in no column; returns what is left.
async fn wait_gone(app: &TestApp, needle: &str, text_only: bool, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let left = hits(app, needle, text_only).await;
        if left.is_empty() || start.elapsed() > limit {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn tables_of(hits: &[String]) -> Vec<&str> {
    hits.iter().filter_map(|h| h.split('.').next()).collect()
}

async fn activity(app: &TestApp, key: &str) -> Vec<Value> {
    let res = app
        .admin(Method::GET, "/admin/v1/activity?limit=200", key, None)
        .await;
    ok_json(res, 200).await.as_array().expect("a list").clone()
}

/// A queue of the test's own on the events exchange, to see `user.deleted` go out.
async fn deleted_events(app: &TestApp) -> Tap {
    let exchange = Topology::from_settings(&app.settings).events_exchange();
    Tap::bind(&app.settings_amqp_direct(), &exchange, "user.deleted").await
}

/// The `user_id`s of the `user.deleted` events on the queue now.
async fn drain_deleted(channel: &lapin::Channel, queue: &str) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(m) = channel
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
    {
        let env: Value = serde_json::from_slice(&m.delivery.data).expect("JSON");
        ids.push(env["payload"]["user_id"].as_str().expect("id").to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_person_leaves_no_trace_in_any_table() {
    let app = spawn(Duration::from_millis(500), None).await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    // Held to the end: the queue goes with its connection.
    let Tap {
        conn: _conn,
        channel: events,
        queue,
    } = deleted_events(&app).await;
    let marker = format!("zq{}", &Uuid::new_v4().simple().to_string()[..12]);

    // Someone who stays, in the same group.
    let keep_name = app.email("keeper-kim");
    let keep = created_id(okta, &keep_name, "Kim", "Keeper").await;

    // The person: the marker in their name, email and a custom field, then updated,
    // grouped, re-created by a retry (a 409 naming them), deactivated and deleted.
    let user_name = app.email(&format!("pat.{marker}"));
    let body = create_user_body(&user_name, &format!("Pat{marker}"), "Lee");
    let id = ok_json(okta.post_user(&body).await, 201).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/Users/{id}");
    let mut full = ok_json(okta.get_user(&id).await, 200).await;
    full["title"] = json!(format!("Head of {marker}"));
    ok_json(okta.send_json(Method::PUT, &path, &full).await, 200).await;
    let edit = json!({"fields": {"custom.badge": format!("badge-{marker}")}});
    let res = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/people/{id}"),
            &acme.admin_key,
            Some(edit),
        )
        .await;
    ok_json(res, 200).await;
    let group = json!({"displayName": "Platform", "members": [
        {"value": id, "display": format!("Pat{marker} Lee")}, {"value": keep}]});
    let group = ok_json(okta.send_json(Method::POST, "/Groups", &group).await, 201).await;
    let group_id = group["id"].as_str().expect("group id").to_owned();
    ok_json(okta.post_user(&body).await, 409).await;
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    ok_json(okta.send_json(Method::PATCH, &path, &off).await, 200).await;

    // A second person, deleted through the directory API with the admin key.
    let other_name = app.email(&format!("sam.{marker}"));
    let other = created_id(okta, &other_name, "Sam", &format!("Ray{marker}")).await;

    // The search can fail: before the deletes the marker is all over the database.
    let before = hits(&app, &marker, true).await;
    for table in [
        "users",
        "outbox",
        "processed_commands",
        "audit_log",
        "invites",
    ] {
        assert!(
            tables_of(&before).contains(&table),
            "the marker should be in {table} before the delete: {before:?}"
        );
    }

    let res = okta.delete(&path).await;
    assert_eq!(res.status(), 204);
    let res = app
        .admin_delete(&format!("/api/v1/people/{other}"), &acme.admin_key)
        .await;
    assert_eq!(res.status(), 204, "the directory API deletes");
    let again = app
        .admin_delete(&format!("/api/v1/people/{other}"), &acme.admin_key)
        .await;
    assert_eq!(again.status(), 404, "a second delete finds no one");

    // The rows they owned went with the delete itself.
    for table in ["users", "invites", "group_members"] {
        let n = app
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE {} IN ('{id}', '{other}')",
                if table == "users" {
                    "id::text"
                } else {
                    "user_id::text"
                }
            ))
            .await;
        assert_eq!(n, 0, "{table} keeps nothing of theirs after the delete");
    }
    // The rest within the documented bound (a minute; seconds with this GC_INTERVAL).
    let started = Instant::now();
    let left = wait_gone(&app, &marker, true, Duration::from_secs(60)).await;
    assert!(left.is_empty(), "the marker is still in {left:?}");
    println!(
        "erased everywhere {:?} after the deletes",
        started.elapsed()
    );
    app.assert_none("SELECT count(*) FROM erasures").await;

    // Integrators learnt of both deletes first.
    let deleted = drain_deleted(&events, &queue).await;
    assert!(
        deleted.contains(&id) && deleted.contains(&other),
        "both user.deleted events went out: {deleted:?}"
    );

    // The activity log keeps what happened, without the person.
    let log = activity(&app, &acme.admin_key).await;
    let gone = log
        .iter()
        .find(|a| a["action"] == "user.deleted" && a["resource_id"] == id.as_str())
        .expect("the SCIM delete is in the activity log");
    assert_eq!(gone["actor"], "scim");
    assert_eq!(gone["detail"], json!({}));
    let by_admin = log
        .iter()
        .find(|a| a["action"] == "user.deleted" && a["resource_id"] == other.as_str())
        .expect("the directory delete is in the activity log");
    assert_eq!(by_admin["actor"], "admin");

    // Everyone else is intact: the keeper, their events, their activity, the group.
    let kim = ok_json(okta.get_user(&keep).await, 200).await;
    assert_eq!(kim["userName"], keep_name.as_str());
    assert!(
        app.count(&format!(
            "SELECT count(*) FROM outbox WHERE envelope::text LIKE '%{keep_name}%'"
        ))
        .await
            > 0,
        "the keeper's events stay"
    );
    assert!(
        app.count(&format!(
            "SELECT count(*) FROM audit_log WHERE detail::text LIKE '%{keep_name}%'"
        ))
        .await
            > 0,
        "the keeper's activity stays"
    );
    let g = ok_json(
        okta.request(Method::GET, &format!("/Groups/{group_id}"))
            .send()
            .await
            .expect("GET group"),
        200,
    )
    .await;
    let members: Vec<&str> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(members, [keep.as_str()]);
    app.stop().await;
}

/// The oldest row's age in `table` by `column` (seconds; 0 when empty), and the row count.
async fn age(app: &TestApp, table: &str, column: &str, and: &str) -> (f64, i64) {
    let row = app
        .db
        .query_one_raw(common::db::stmt(
            &format!(
                "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min({column})), 0)::float8 AS age, count(*) AS n \
                 FROM {table} WHERE {column} IS NOT NULL {and}"
            ),
            [],
        ))
        .await
        .expect("age")
        .expect("a row");
    (
        row.try_get("", "age").expect("age"),
        row.try_get("", "n").expect("n"),
    )
}

fn pruned_total(metrics: &str, prefix: &str, table: &str) -> f64 {
    let series = format!("roster_rows_pruned_total{{table=\"{table}\",prefix=\"{prefix}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_stay_within_their_windows_under_load() {
    let window = Duration::from_secs(4);
    let app = spawn(Duration::from_millis(300), Some(window)).await;
    let acme = app.tenant("Acme").await;
    // Another org whose activity the operator keeps a day: its entries outlive the window.
    let (keepco, _) = app.create_org("Keepco").await;
    set_activity_days(&app, &keepco, 1).await;
    let others = format!("AND org_id IS DISTINCT FROM '{keepco}'");
    let org: Uuid = acme.org_id.parse().expect("org id");

    // A steady profile push: people created, then pushed again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for lane in 0..3 {
        let okta = acme.scim.clone();
        let stop = stop.clone();
        let domain = app.domain.clone();
        load.push(tokio::spawn(async move {
            let mut done = 0u32;
            let mut ids = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if ids.len() < 5 {
                    let name = format!("load{lane}-{done}@{domain}");
                    let res = okta
                        .post_user(&create_user_body(&name, "Load", "Test"))
                        .await;
                    assert_eq!(res.status(), 201);
                    let v: Value = res.json().await.expect("JSON");
                    ids.push(v["id"].as_str().expect("id").to_owned());
                } else {
                    let id = &ids[done as usize % ids.len()];
                    let push = patch(
                        json!([{"op": "replace", "path": "title", "value": format!("T{done}")}]),
                    );
                    let res = okta
                        .send_json(Method::PATCH, &format!("/Users/{id}"), &push)
                        .await;
                    assert_eq!(res.status(), 200);
                }
                done += 1;
            }
            done
        }));
    }

    // Meanwhile a command redelivered inside the window gets its stored reply, once.
    let conn = common::amqp::connect(&app.settings_amqp_direct(), "retention-test").await;
    let publisher = Publisher::open(&conn).await.expect("publisher");
    let replies = Replies::declare(&conn).await;
    let topology = Topology::from_settings(&app.settings);
    let env = create_user(Some(org), &app.email("redelivered"), "corr-redelivered");
    let cid = env.id.to_string();
    let exchange = topology.commands_exchange();
    let send = || {
        publisher.publish(
            &exchange,
            "user.create",
            &env,
            PublishOptions {
                reply_to: Some(&replies.queue),
                correlation_id: Some(&cid),
                mandatory: true,
                headers: Vec::new(),
            },
        )
    };
    send().await.expect("published");
    let first = replies.next(&cid).await;
    assert_eq!(first.status(), 201);
    tokio::time::sleep(window / 2).await;
    send().await.expect("published again");
    assert_eq!(
        replies.next(&cid).await,
        first,
        "the stored reply, inside the window"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM users WHERE user_name = '{}'",
            app.email("redelivered")
        ))
        .await,
        1,
        "one effect"
    );

    // An invite accepted now (as the invite page's button would record it) goes after the
    // window; the pending ones stay.
    let sent = app
        .wait_count(
            "SELECT count(*) FROM invites WHERE sent_at IS NOT NULL",
            2,
            Duration::from_secs(15),
        )
        .await;
    assert!(sent >= 2, "invites were sent ({sent})");
    app.db
        .execute_unprepared(
            "UPDATE invites SET accepted_at = now() WHERE id = \
             (SELECT id FROM invites WHERE sent_at IS NOT NULL ORDER BY id LIMIT 1)",
        )
        .await
        .expect("accepting an invite");
    // An invite not sent, whose link the mailer registered (with an expiry) before a send
    // that did not happen: still pending, so it stays whatever its expiry.
    let unsent = app
        .db
        .query_one_raw(common::db::stmt(
            "UPDATE invites SET sent_at = NULL, expires_at = now() - interval '1 hour' \
             WHERE id = (SELECT id FROM invites WHERE accepted_at IS NULL ORDER BY id LIMIT 1) \
             RETURNING id::text",
            [],
        ))
        .await
        .expect("an unsent invite with a link")
        .expect("a pending invite")
        .try_get::<String>("", "id")
        .expect("its id");

    // The tables stay within their windows (plus a pass and a busy machine's slack).
    // Rows go at the first pass after they expire; a busy machine delays passes.
    let slack = 5.0;
    let limit = window.as_secs_f64() + slack;
    let watched = [
        ("outbox", "published_at"),
        ("processed_commands", "processed_at"),
        ("audit_log", "created_at"),
    ];
    let started = Instant::now();
    let mut oldest = [0.0f64; 3];
    let mut most = [0i64; 3];
    while started.elapsed() < Duration::from_secs(16) {
        for (i, (table, column)) in watched.iter().enumerate() {
            let and = if *table == "audit_log" {
                others.as_str()
            } else {
                ""
            };
            let (a, n) = age(&app, table, column, and).await;
            oldest[i] = oldest[i].max(a);
            most[i] = most[i].max(n);
            assert!(
                a <= limit,
                "{table} holds a row {a:.1} s old; the window is {window:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut requests = 0;
    for l in load {
        requests += l.await.expect("load lane");
    }
    println!("{requests} requests; oldest rows seen {oldest:?} s; most rows {most:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM invites WHERE accepted_at IS NOT NULL")
            .await,
        0,
        "the accepted invite was pruned"
    );
    assert!(
        app.count("SELECT count(*) FROM invites WHERE accepted_at IS NULL")
            .await
            > 0,
        "pending invites stay"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM invites WHERE id = '{unsent}'"
        ))
        .await,
        1,
        "an unsent invite stays, though its link's expiry passed"
    );
    assert!(requests > 30, "the load ran ({requests} requests)");
    for (i, (table, _)) in watched.iter().enumerate() {
        assert!(most[i] > 0, "{table} was never written to");
        assert!(oldest[i] > 0.5, "{table} was seen holding rows for a while");
    }
    let metrics = app.metrics_text().await;
    for table in watched.iter().map(|(t, _)| *t).chain(["invites"]) {
        assert!(
            pruned_total(&metrics, &app.settings.amqp_prefix, table) > 0.0,
            "roster_rows_pruned_total counts {table}"
        );
    }

    // Past the window the redelivered command's id is gone: why the real window must
    // outlast every redelivery and replay (docs/data-lifecycle.md).
    let gone = app
        .wait_count(
            &format!("SELECT count(*) FROM processed_commands WHERE command_id = '{cid}'"),
            0,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(gone, 0, "the id was pruned past the window");

    // `worker gc --dry-run` says what would go and changes nothing; `worker gc` prunes it.
    let _ = conn.close(200, "done".into()).await;
    let mut app = app;
    app.stop_worker().await;
    tokio::time::sleep(window + Duration::from_secs(1)).await;
    let gc = worker::gc::Gc {
        db: app.db.clone(),
        ctx: worker::apply::ApplyContext {
            scim_base: format!("{}/scim/v2", app.base),
            prefix: app.settings.amqp_prefix.clone(),
        },
        windows: worker::gc::Windows::from_settings(&app.settings),
        prefix: app.settings.amqp_prefix.clone(),
    };
    let kept = format!("SELECT count(*) FROM audit_log WHERE org_id = '{keepco}'");
    let keepco_entries = app.count(&kept).await;
    assert!(
        keepco_entries >= 2,
        "the org's own window keeps its activity ({keepco_entries})"
    );
    let prunable = format!("SELECT count(*) FROM audit_log WHERE TRUE {others}");
    let before = app.count(&prunable).await;
    assert!(before > 0);
    let mut out = Vec::new();
    worker::gc::cli(&gc, true, &mut out).await.expect("dry run");
    let text = String::from_utf8(out).expect("UTF-8");
    println!("$ worker gc --dry-run\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains("audit_log:"))
        .expect("an audit_log line");
    assert_eq!(
        line.split_whitespace().next(),
        Some(before.to_string().as_str()),
        "{line}"
    );
    assert!(text.contains("outbox:") && text.contains("invites:") && text.contains("erasures:"));
    assert_eq!(app.count(&prunable).await, before);
    let mut out = Vec::new();
    worker::gc::cli(&gc, false, &mut out).await.expect("gc");
    println!("$ worker gc\n{}", String::from_utf8_lossy(&out));
    app.assert_none(&prunable).await;
    assert_eq!(app.count(&kept).await, keepco_entries, "Keepco's stay");
    app.assert_none("SELECT count(*) FROM processed_commands")
        .await;
    app.assert_none("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_policy_erases_people_deactivated_long_enough() {
    let app = spawn(Duration::from_millis(300), None).await;
    let acme = app.tenant("Acme").await;
    let key = &acme.admin_key;
    let okta = &acme.scim;

    // The policy, in the admin API (bad values refused by name, nothing changed).
    let settings = ok_json(
        app.admin(Method::GET, "/admin/v1/settings", key, None)
            .await,
        200,
    )
    .await;
    assert_eq!(settings["deactivated_people"], json!({"policy": "keep"}));
    for bad in [
        json!({"deactivated_people": {"policy": "erase", "after_days": 0}}),
        json!({"deactivated_people": {"policy": "shred"}}),
    ] {
        let res = app.put_settings(key, bad.clone()).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    let erase = json!({"deactivated_people": {"policy": "erase", "after_days": 30}});
    let set = ok_json(app.put_settings(key, erase.clone()).await, 200).await;
    assert_eq!(set["deactivated_people"], erase["deactivated_people"]);
    let got = ok_json(
        app.admin(Method::GET, "/admin/v1/settings", key, None)
            .await,
        200,
    )
    .await;
    assert_eq!(got["deactivated_people"], erase["deactivated_people"]);

    // Two deactivated people; one deactivated 31 days ago (the clock, moved in the data).
    let mut ids = Vec::new();
    for local in ["old", "recent"] {
        let v = ok_json(
            okta.post_user(&create_user_body(&app.email(local), "De", "Activated"))
                .await,
            201,
        )
        .await;
        let id = v["id"].as_str().expect("id").to_owned();
        let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
        ok_json(
            okta.send_json(Method::PATCH, &format!("/Users/{id}"), &off)
                .await,
            200,
        )
        .await;
        ids.push(id);
    }
    let deactivated_at = app
        .count(&format!(
            "SELECT count(*) FROM users WHERE id IN ('{}', '{}') AND deactivated_at IS NOT NULL",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(deactivated_at, 2, "deactivation is recorded");
    app.db
        .execute_unprepared(&format!(
            "UPDATE users SET deactivated_at = now() - interval '31 days' WHERE id = '{}'",
            ids[0]
        ))
        .await
        .expect("backdating");

    let left = app
        .wait_count(
            &format!("SELECT count(*) FROM users WHERE id = '{}'", ids[0]),
            0,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(left, 0, "erased by the policy");
    let res = okta.get_user(&ids[0]).await;
    assert_eq!(res.status(), 404);
    ok_json(okta.get_user(&ids[1]).await, 200).await;
    let log = activity(&app, key).await;
    let erased = log
        .iter()
        .find(|a| a["action"] == "user.deleted" && a["resource_id"] == ids[0].as_str())
        .expect("the erasure is in the activity log");
    assert_eq!(erased["actor"], "retention");
    assert!(
        log.iter().any(|a| a["action"] == "settings.updated"
            && a["detail"]["deactivated_people"]["after_days"] == 30),
        "the policy change is in the activity log"
    );
    let left = wait_gone(&app, &app.email("old"), true, Duration::from_secs(30)).await;
    assert!(left.is_empty(), "the erased person is still in {left:?}");

    // Back to keeping: nobody else goes.
    let keep = json!({"deactivated_people": {"policy": "keep"}});
    ok_json(app.put_settings(key, keep).await, 200).await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE users SET deactivated_at = now() - interval '400 days' WHERE id = '{}'",
            ids[1]
        ))
        .await
        .expect("backdating");
    tokio::time::sleep(Duration::from_secs(2)).await;
    ok_json(okta.get_user(&ids[1]).await, 200).await;

    // The same choice on the admin page.
    let page = Page::from(&app, [127, 0, 0, 61]);
    let (cookie, html) = page.signed_in(key).await;
    assert!(
        html.contains("id=\"deactivated-keep\"") && html.contains("name=\"erase_after_days\""),
        "the page offers the choice"
    );
    let res = page
        .submit(
            "/admin/settings",
            &cookie,
            &html,
            &[
                ("send_invites", "on"),
                ("deactivated_people", "erase"),
                ("erase_after_days", "14"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let got = ok_json(
        app.admin(Method::GET, "/admin/v1/settings", key, None)
            .await,
        200,
    )
    .await;
    assert_eq!(
        got["deactivated_people"],
        json!({"policy": "erase", "after_days": 14})
    );
    let (_, html) = page.get(Some(&cookie)).await;
    assert!(
        html.contains("value=\"14\""),
        "the page shows the saved window"
    );
    let keep = json!({"deactivated_people": {"policy": "keep"}});
    ok_json(app.put_settings(key, keep).await, 200).await;

    // The operator's per-org activity window.
    let path = format!("/admin/v1/orgs/{}/retention", acme.org_id);
    let r = ok_json(
        app.admin(Method::GET, &path, &app.operator_token, None)
            .await,
        200,
    )
    .await;
    assert_eq!(r["activity_days"], Value::Null);
    assert_eq!(r["default_activity_days"], 400);
    let r = ok_json(
        app.admin(
            Method::PUT,
            &path,
            &app.operator_token,
            Some(json!({"activity_days": 90})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(r["activity_days"], 90);
    let bad = app
        .admin(
            Method::PUT,
            &path,
            &app.operator_token,
            Some(json!({"activity_days": 0})),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let not_operator = app.admin(Method::GET, &path, key, None).await;
    assert_eq!(not_operator.status(), 401);
    assert_eq!(
        app.count(&format!(
            "SELECT activity_retention_days::bigint FROM orgs WHERE id = '{}'",
            acme.org_id
        ))
        .await,
        90
    );
    app.stop().await;
}

/// One Okta lifecycle, as Okta drives it: create, GET, profile push, deactivate,
/// reactivate, delete. Panics on any unexpected answer.
async fn okta_lifecycle(okta: &ScimClient, user_name: &str) {
    let created = okta
        .post_user(&create_user_body(user_name, "Gil", "Globex"))
        .await;
    assert_eq!(created.status(), 201, "create");
    let v: Value = created.json().await.expect("JSON");
    let id = v["id"].as_str().expect("id").to_owned();
    let path = format!("/Users/{id}");
    let mut got: Value = okta.get_user(&id).await.json().await.expect("GET");
    got["title"] = json!("Engineer");
    let put = okta.send_json(Method::PUT, &path, &got).await;
    assert_eq!(put.status(), 200, "profile push");
    for active in [false, true] {
        let p = patch(json!([{"op": "replace", "value": {"active": active}}]));
        let res = okta.send_json(Method::PATCH, &path, &p).await;
        assert_eq!(res.status(), 200, "active = {active}");
    }
    let res = okta.delete(&path).await;
    assert_eq!(res.status(), 204, "delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_org_leaves_nothing_of_it_and_disturbs_no_other() {
    let app = spawn(Duration::from_millis(500), None).await;
    let acme = app.tenant("Acme").await;
    let globex = app.tenant("Globex").await;
    let org = acme.org_id.clone();

    // Acme has people, a group, a mapping, an integration, activity and events.
    let mut people = Vec::new();
    for local in ["ann", "bob"] {
        let v = ok_json(
            acme.scim
                .post_user(&create_user_body(&app.email(local), "Ac", "Me"))
                .await,
            201,
        )
        .await;
        people.push(v["id"].as_str().expect("id").to_owned());
    }
    let group = json!({"displayName": "Acme team", "members": [{"value": people[0]}]});
    ok_json(
        acme.scim.send_json(Method::POST, "/Groups", &group).await,
        201,
    )
    .await;
    let integration = ok_json(
        app.admin(
            Method::POST,
            "/admin/v1/integrations",
            &acme.admin_key,
            Some(json!({"name": "HR"})),
        )
        .await,
        201,
    )
    .await;
    tests::harness::record_secret(integration["credential"].as_str().expect("credential"));
    set_activity_days(&app, &org, 30).await;

    // Its integration's commands are applied while the org exists.
    let conn = common::amqp::connect(&app.settings_amqp_direct(), "org-removal-test").await;
    let publisher = Publisher::open(&conn).await.expect("publisher");
    let replies = Replies::declare(&conn).await;
    let topology = Topology::from_settings(&app.settings);
    let exchange = topology.commands_exchange();
    let credential = integration["credential"]
        .as_str()
        .expect("credential")
        .to_owned();
    let by_integration = |local: &str| {
        let mut env = create_user(Some(org.parse().expect("uuid")), &app.email(local), local);
        env.credential = Some(credential.clone());
        env
    };
    let send = |env: common::messages::Envelope| {
        let publisher = &publisher;
        let exchange = &exchange;
        let queue = replies.queue.clone();
        async move {
            let cid = env.id.to_string();
            publisher
                .publish(
                    exchange,
                    "user.create",
                    &env,
                    PublishOptions {
                        reply_to: Some(&queue),
                        correlation_id: Some(&cid),
                        mandatory: true,
                        headers: Vec::new(),
                    },
                )
                .await
                .expect("published");
            cid
        }
    };
    let cid = send(by_integration("hr-before")).await;
    assert_eq!(
        replies.next(&cid).await.status(),
        201,
        "the integration works"
    );

    // The search can fail: Acme's id is in many tables now.
    let before = hits(&app, &org, false).await;
    for table in [
        "orgs",
        "users",
        "outbox",
        "processed_commands",
        "audit_log",
        "scim_tokens",
    ] {
        assert!(
            tables_of(&before).contains(&table),
            "Acme's id should be in {table}: {before:?}"
        );
    }

    // Globex's Okta runs its lifecycle throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let okta = globex.scim.clone();
    let domain = app.domain.clone();
    let flag = stop.clone();
    let globex_run = tokio::spawn(async move {
        let mut rounds = 0u32;
        while !flag.load(Ordering::Relaxed) || rounds < 2 {
            okta_lifecycle(&okta, &format!("gil{rounds}@{domain}")).await;
            rounds += 1;
        }
        rounds
    });
    // Acme's Okta keeps writing until the removal, so commands of the org are in flight
    // while it happens: none may leave a row behind.
    let okta = acme.scim.clone();
    let domain = app.domain.clone();
    let acme_run = tokio::spawn(async move {
        let mut created = 0u32;
        loop {
            let name = format!("acme{created}@{domain}");
            let res = okta
                .post_user(&create_user_body(&name, "In", "Flight"))
                .await;
            match res.status().as_u16() {
                201 => created += 1,
                // The removal committed while the command was queued or applied.
                404 | 401 => return created,
                other => panic!("Acme's create answered {other}"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Only the operator removes an org.
    let res = app
        .admin_delete(&format!("/admin/v1/orgs/{org}"), &acme.admin_key)
        .await;
    assert_eq!(res.status(), 401, "an admin key cannot remove its org");
    let res = app
        .admin_delete(&format!("/admin/v1/orgs/{org}"), &app.operator_token)
        .await;
    assert_eq!(res.status(), 204);

    let in_flight = acme_run.await.expect("Acme's writes");
    assert!(in_flight > 0, "Acme was writing when it was removed");

    // Its credentials are dead at once.
    let res = acme
        .scim
        .request(Method::GET, "/Users")
        .send()
        .await
        .expect("GET /Users");
    assert_eq!(res.status(), 401, "its SCIM token");
    let res = app
        .admin(Method::GET, "/admin/v1/settings", &acme.admin_key, None)
        .await;
    assert_eq!(res.status(), 401, "its admin key");
    let res = app
        .admin_delete(&format!("/admin/v1/orgs/{org}"), &app.operator_token)
        .await;
    assert_eq!(res.status(), 404, "removed once");

    // Its integration credential is dead, and a command of the org still queued is
    // refused; neither leaves a row.
    let cid = send(by_integration("hr-after")).await;
    assert_eq!(
        replies.next(&cid).await.status(),
        401,
        "the integration credential"
    );
    let late = create_user(
        Some(org.parse().expect("uuid")),
        &app.email("late"),
        "corr-late",
    );
    let cid = send(late).await;
    assert_eq!(replies.next(&cid).await.status(), 404, "a queued command");
    let _ = conn.close(200, "done".into()).await;

    // Nothing carrying Acme's id remains, in any column of any table.
    let left = hits(&app, &org, false).await;
    assert!(left.is_empty(), "Acme's id is still in {left:?}");
    let left = hits(&app, &app.email("ann"), true).await;
    assert!(left.is_empty(), "Acme's people are still in {left:?}");

    // Globex never noticed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let rounds = globex_run
        .await
        .expect("Globex's lifecycle ran without a failure");
    println!("Globex ran {rounds} lifecycles meanwhile");
    let n = app
        .count(&format!(
            "SELECT count(*) FROM audit_log WHERE org_id = '{}'",
            globex.org_id
        ))
        .await;
    assert!(
        n >= i64::from(rounds) * 5,
        "Globex's activity is intact ({n})"
    );
    okta_lifecycle(&globex.scim, &app.email("after")).await;
    app.stop().await;
}
