//! Scaling and backpressure: four workers on one queue keep every user's changes in
//! order; concurrent creates of one userName make one user; past its in-flight bound, the
//! commands queue's bound and an org's rate the ingress refuses with `503`/`429` and
//! `Retry-After`, and serves normally once load drops.

use reqwest::Method;
use serde_json::{Value, json};
use std::{collections::HashMap, time::Duration};
use tests::{
    harness::{Options, TestApp},
    okta::create_user_body,
};

fn version(v: &Value) -> i64 {
    v["meta"]["version"]
        .as_str()
        .expect("version")
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .expect("number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_keep_each_users_changes_in_version_order() {
    let mut app = TestApp::spawn().await;
    for _ in 0..3 {
        app.start_worker().await;
    }
    let acme = app.tenant("Acme").await;
    app.admin(
        Method::PUT,
        "/admin/v1/settings",
        &acme.admin_key,
        Some(json!({"send_invites": false})),
    )
    .await;
    // Events as another service sees them: a queue of our own bound to user.*.
    let conn = common::amqp::connect(&app.settings_amqp_direct(), "scaling-test").await;
    let ch = conn.create_channel().await.expect("channel");
    let topology = common::amqp::Topology::from_settings(&app.settings);
    topology.declare(&ch).await.expect("topology");
    let q = ch
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("queue");
    ch.queue_bind(
        q.name().clone(),
        topology.events_exchange().as_str().into(),
        "user.*".into(),
        Default::default(),
        Default::default(),
    )
    .await
    .expect("bind");

    let mut ids = Vec::new();
    for i in 0..20 {
        let res = acme
            .scim
            .post_user(&create_user_body(&app.email(&format!("s{i}")), "S", "T"))
            .await;
        assert_eq!(res.status(), 201);
        ids.push(
            res.json::<Value>().await.expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // 480 more calls, 24 per user, all users at once and each user's calls concurrent too.
    let mut tasks = tokio::task::JoinSet::new();
    for (u, id) in ids.iter().enumerate() {
        for k in 0..24 {
            let (okta, id) = (acme.scim.clone(), id.clone());
            tasks.spawn(async move {
                let path = format!("/Users/{id}");
                let res = match k % 3 {
                    0 => {
                        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "value": {"active": k % 2 == 0}}]});
                        okta.send_json(Method::PATCH, &path, &ops).await
                    }
                    _ => {
                        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": format!("t{u}-{k}")}]});
                        okta.send_json(Method::PATCH, &path, &ops).await
                    }
                };
                assert_eq!(res.status(), 200);
                (id, res.json::<Value>().await.expect("JSON"))
            });
        }
    }
    let mut replies: HashMap<String, Vec<Value>> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (id, body) = r.expect("call");
        replies.entry(id).or_default().push(body);
    }
    assert_eq!(replies.values().map(Vec::len).sum::<usize>(), 480);

    for id in &ids {
        let mut mine = replies.remove(id).expect("replies");
        mine.sort_by_key(version);
        // Replies that changed something have distinct versions; the final state is the
        // state of the highest version, as if the calls ran one by one in that order.
        let versions: Vec<i64> = mine.iter().map(version).collect();
        let last = mine.last().expect("a reply");
        let now: Value = acme.scim.get_user(id).await.json().await.expect("JSON");
        assert_eq!(version(&now), *versions.last().expect("version"), "{id}");
        assert_eq!(now["title"], last["title"]);
        assert_eq!(now["active"], last["active"]);
        let changed = app
            .count(&format!(
                "SELECT count(*) FROM outbox WHERE envelope->'payload'->>'user_id' = '{id}'"
            ))
            .await;
        assert_eq!(changed, version(&now), "one event per version for {id}");
    }

    // Events arrive in version order per user.
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "scaling".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("consume");
    let expected: i64 = app.count("SELECT count(*) FROM outbox").await;
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut seen = 0;
    while seen < expected {
        use futures_util::StreamExt;
        let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("events keep coming")
            .expect("stream")
            .expect("delivery");
        let env: Value = serde_json::from_slice(&d.data).expect("JSON");
        let (user, v) = (
            env["payload"]["user_id"].as_str().expect("user").to_owned(),
            env["payload"]["version"].as_i64().expect("v"),
        );
        let prev = last.insert(user.clone(), v).unwrap_or(0);
        assert!(v > prev, "user {user}: version {v} after {prev}");
        seen += 1;
    }
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_of_one_user_name_make_one_user() {
    let mut app = TestApp::spawn().await;
    app.start_worker().await;
    let acme = app.tenant("Acme").await;
    let name = app.email("same.person");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let okta = acme.scim.clone();
        let variant: String = name
            .chars()
            .enumerate()
            .map(|(j, c)| {
                if (i >> (j % 6)) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        tasks.spawn(async move {
            okta.post_user(&create_user_body(&variant, "S", "P"))
                .await
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_bounds_the_ingress_refuses_then_recovers() {
    let mut app = TestApp::spawn_with(Options {
        worker: false,
        command_timeout: Duration::from_secs(3),
        max_in_flight: 3,
        commands_queue_max_length: 5,
        ..Options::default()
    })
    .await;
    app.start_worker().await;
    let acme = app.tenant("Acme").await;
    app.stop_worker().await;

    // In flight: three commands wait for replies; more are refused at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let okta = acme.scim.clone();
        let body = create_user_body(&app.email(&format!("b{i}")), "B", "P");
        tasks.spawn(async move {
            let res = okta.post_user(&body).await;
            let retry_after = res.headers().get("retry-after").is_some();
            (
                res.status().as_u16(),
                retry_after,
                res.json::<Value>().await.expect("SCIM JSON"),
            )
        });
    }
    let mut refused_at_once = 0;
    let mut timed_out = 0;
    while let Some(r) = tasks.join_next().await {
        let (status, retry_after, body) = r.expect("task");
        assert_eq!(status, 503);
        assert!(retry_after);
        assert_eq!(body["status"], "503");
        let detail = body["detail"].as_str().expect("detail");
        if detail.contains("could not be queued") {
            refused_at_once += 1;
        } else {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 3, "exactly the in-flight bound waited");
    assert_eq!(refused_at_once, 5);

    // The queue holds three commands; the broker takes a few more (bound 5; quorum
    // queues let one more in), then refuses, and the ingress says nothing was queued.
    let mut accepted = 0;
    let mut refused = false;
    for i in 0..12 {
        let res = acme
            .scim
            .post_user(&create_user_body(&app.email(&format!("q{i}")), "Q", "P"))
            .await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.expect("JSON");
        if body["detail"]
            .as_str()
            .expect("detail")
            .contains("could not be queued")
        {
            refused = true;
            break;
        }
        accepted += 1;
    }
    assert!(
        refused,
        "the broker refused commands past the queue bound (took {accepted})"
    );
    assert!(
        accepted <= 4,
        "about three more fit under the bound, not {accepted}"
    );
    let queued = 3 + accepted;

    // Load drops: a worker drains the queue and the ingress serves normally.
    app.start_worker().await;
    assert_eq!(
        app.wait_count(
            "SELECT count(*) FROM users",
            queued,
            Duration::from_secs(30)
        )
        .await,
        queued
    );
    let res = acme
        .scim
        .post_user(&create_user_body(&app.email("normal"), "N", "P"))
        .await;
    assert_eq!(res.status(), 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_over_its_rate_gets_429_and_others_do_not() {
    let app = TestApp::spawn_with(Options {
        scim_rate_limit: 5,
        ..Options::default()
    })
    .await;
    let busy = app.tenant("Busy").await;
    let calm = app.tenant("Calm").await;
    let mut limited = 0;
    for _ in 0..30 {
        let res = busy
            .scim
            .request(Method::GET, "/Users?count=1")
            .send()
            .await
            .expect("GET");
        if res.status() == 429 {
            limited += 1;
            assert_eq!(res.headers()["retry-after"], "1");
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .expect("ct")
                    .starts_with("application/scim+json")
            );
            assert_eq!(res.json::<Value>().await.expect("JSON")["status"], "429");
        } else {
            assert_eq!(res.status(), 200);
        }
    }
    assert!(
        limited >= 15,
        "the burst is 10; most of 30 quick calls are limited ({limited})"
    );
    assert_eq!(
        calm.scim
            .request(Method::GET, "/Users")
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        busy.scim
            .request(Method::GET, "/Users")
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
    app.stop().await;
}
