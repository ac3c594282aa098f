//! Faults caused for real (DESIGN invariants 3–5, 9): a worker crash mid-batch, every
//! broker connection dropped under load, a database outage, an SMTP outage, and SIGTERM
//! under load. Each service reaches its dependencies through a per-test proxy, so a fault
//! touches this test only. The client behaves as Okta does: on a 503 it looks the user up
//! with its filter, and creates again only if the user is not there.

use reqwest::Method;
use serde_json::Value;
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};
use tests::{
    harness::{Options, TestApp},
    okta::{ScimClient, create_user_body},
};

/// How one Okta create ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// `201` with this id.
    Created(String),
    /// `409`: the userName exists.
    Conflict,
}

/// Okta's create: POST; on 503, look up by filter, and POST again only if absent. A `503`
/// means "not applied, and never will be" (docs/reliability.md): finding the user after one,
/// or a `409` for the retry, is a failure.
pub(crate) async fn okta_create(okta: &ScimClient, user_name: &str) -> Outcome {
    let body = create_user_body(user_name, "Fault", "Test");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answered_503 = false;
    loop {
        let res = okta.post_user(&body).await;
        match res.status().as_u16() {
            201 => {
                return Outcome::Created(
                    res.json::<Value>().await.expect("JSON")["id"]
                        .as_str()
                        .expect("id")
                        .to_owned(),
                );
            }
            409 => {
                assert!(
                    !answered_503,
                    "{user_name}: 409 on the retry, so a create answered 503 was applied"
                );
                return Outcome::Conflict;
            }
            503 => answered_503 = true,
            other => panic!("unexpected {other} creating {user_name}"),
        }
        assert!(Instant::now() < deadline, "{user_name} never got through");
        // Okta retries later and first checks whether the user exists.
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let res = okta
                .request(Method::GET, "/Users")
                .query(&[("filter", format!("userName eq \"{user_name}\""))])
                .send()
                .await
                .expect("GET");
            if res.status() == 200 {
                let found: Value = res.json().await.expect("JSON");
                assert_eq!(
                    found["totalResults"], 0,
                    "{user_name}: found after a 503, so a create answered 503 was applied"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{user_name}: lookups kept failing"
            );
        }
    }
}

/// Runs `names` as concurrent Okta creates, at most `parallel` at once. Tests inject
/// their fault once the database shows the load under way.
pub(crate) async fn load(
    okta: &ScimClient,
    names: Vec<String>,
    parallel: usize,
) -> Vec<(String, Outcome)> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let (okta, sem) = (okta.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let outcome = okta_create(&okta, &name).await;
            (name, outcome)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.expect("create task"));
    }
    out
}

/// The invariants after any fault: every acknowledged user exists exactly once, every
/// 409 is a true duplicate, nothing exists that was not asked for, and no write is
/// partial (one row, one `user.created` event, one audit entry per user).
pub(crate) async fn assert_consistent(app: &TestApp, results: &[(String, Outcome)]) {
    let asked: HashSet<String> = results.iter().map(|(n, _)| n.to_lowercase()).collect();
    let rows = app.count("SELECT count(*) FROM users").await;
    assert_eq!(rows as usize, asked.len(), "each userName exactly once");
    let mut ids = HashSet::new();
    for (name, outcome) in results {
        match outcome {
            Outcome::Created(id) => {
                ids.insert(id.clone());
                let n = app.count(&format!("SELECT count(*) FROM users WHERE id = '{id}' AND lower(user_name) = lower('{name}')")).await;
                assert_eq!(n, 1, "{name} ({id}) was acknowledged but is missing");
            }
            Outcome::Conflict => {
                let n = app
                    .count(&format!(
                        "SELECT count(*) FROM users WHERE lower(user_name) = lower('{name}')"
                    ))
                    .await;
                assert_eq!(n, 1, "409 for {name}, which does not exist");
            }
        }
    }
    let names: Vec<String> = {
        use sea_orm::ConnectionTrait;
        let rows = app
            .db
            .query_all_raw(common::db::stmt(
                "SELECT lower(user_name) AS n FROM users",
                [],
            ))
            .await
            .expect("users");
        rows.iter()
            .map(|r| r.try_get::<String>("", "n").expect("name"))
            .collect()
    };
    assert!(
        names.iter().all(|n| asked.contains(n)),
        "a user exists that was never asked for"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE routing_key = 'user.created'")
            .await,
        rows,
        "one event per user"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'user.created'")
            .await,
        rows,
        "one audit entry per user"
    );
    app.assert_none("SELECT count(*) FROM processed_commands WHERE command_type = 'user.create' AND reply IS NULL").await;
}

/// Waits for every invite to be sent, then checks MailDev holds exactly one per person.
pub(crate) async fn assert_one_invite_each(app: &TestApp, timeout: Duration) {
    let users = app.count("SELECT count(*) FROM users").await;
    let sent = app
        .wait_count(
            "SELECT count(*) FROM invites WHERE sent_at IS NOT NULL",
            users,
            timeout,
        )
        .await;
    assert_eq!(sent, users, "every person's invite is sent");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut per_address: HashMap<String, usize> = HashMap::new();
    for mail in app.maildev.all().await {
        let domain = format!("@{}", app.domain);
        for to in mail
            .to
            .iter()
            .map(|t| t.to_lowercase())
            .filter(|t| t.ends_with(&domain))
        {
            *per_address.entry(to).or_default() += 1;
        }
    }
    assert_eq!(
        per_address.len() as i64,
        users,
        "one address per person reached"
    );
    let doubled: Vec<_> = per_address.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "more than one invite: {doubled:?}");
}

/// After a broker fault: the worker and the mailer each consume with one connection. A
/// replaced connection that lapin's recovery brought back would be a second consumer,
/// holding a prefetch of deliveries nothing reads (its invites would never go out).
pub(crate) async fn assert_one_consumer_each(app: &TestApp) {
    let topology = common::amqp::Topology::from_settings(&app.settings);
    for queue in [topology.commands_queue(), topology.mailer_queue()] {
        let start = Instant::now();
        let mut n = app.consumers(&queue).await;
        while n != 1 && start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            n = app.consumers(&queue).await;
        }
        assert_eq!(n, 1, "consumers on {queue}");
    }
}

/// The stack the load tests run: a worker, and a short command timeout so that faults
/// show as 503s the client retries.
async fn fault_stack() -> TestApp {
    TestApp::spawn_with(Options {
        worker: true,
        command_timeout: Duration::from_secs(5),
        ..Options::default()
    })
    .await
}

/// Waits until the database holds at least `n` users: the load is under way.
pub(crate) async fn until_users(app: &TestApp, n: i64) {
    let start = Instant::now();
    while app.count("SELECT count(*) FROM users").await < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "load did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn names(app: &TestApp, n: usize, prefix: &str) -> Vec<String> {
    (0..n)
        .map(|i| app.email(&format!("{prefix}{i:03}")))
        .collect()
}

/// Transactions of more than one command the worker committed so far (group commit), from
/// the process's `roster_command_batch_size` histogram of this stack's prefix.
fn multi_command_batches(app: &TestApp) -> f64 {
    let prefix = common::metrics::prefix_of(&common::amqp::Topology::from_settings(&app.settings));
    let text = common::metrics::render(&common::metrics::install());
    let series = |name: &str, label: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(&format!("prefix=\"{prefix}\"")))
            .filter(|l| l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    series("roster_command_batch_size_count", "")
        - series("roster_command_batch_size_bucket", "le=\"1\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_batch_loses_and_doubles_nothing() {
    let mut app = fault_stack().await;
    let acme = app.tenant("Acme").await;
    // 280 people; 20 of them sent twice at once: exactly one create wins each.
    let mut batch = names(&app, 280, "crash");
    let twins: Vec<String> = batch[..20].iter().map(|n| n.to_uppercase()).collect();
    batch.extend(twins);
    let okta = acme.scim.clone();
    let load = tokio::spawn(async move { load(&okta, batch, 32).await });
    until_users(&app, 60).await;
    // The worker is applying commands in batches (group commit) when it dies: killed while
    // one is open, its commands are neither lost nor applied twice, and each is answered
    // once — by its commit, or by a redelivery that finds its id, or by a 503 it never
    // contradicts.
    let start = Instant::now();
    while multi_command_batches(&app) < 1.0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker never applied more than one command in a transaction"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.kill_workers();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.start_worker().await;
    let results = load.await.expect("load");
    assert_eq!(results.len(), 300);
    let conflicts = results
        .iter()
        .filter(|(_, o)| *o == Outcome::Conflict)
        .count();
    assert!(conflicts >= 20, "each duplicate is a 409 (got {conflicts})");
    assert_consistent(&app, &results).await;
    assert_one_invite_each(&app, Duration::from_secs(90)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_connections_dropped_under_load_lose_nothing_and_recover() {
    let app = fault_stack().await;
    let acme = app.tenant("Acme").await;
    let okta = acme.scim.clone();
    let batch = names(&app, 120, "broker");
    let load = tokio::spawn(async move { load(&okta, batch, 16).await });
    until_users(&app, 20).await;
    app.cut_broker_connections();
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.cut_broker_connections();
    let results = load.await.expect("load");
    assert_consistent(&app, &results).await;
    // Recovered unaided: ready, and a new create is answered 201.
    let start = Instant::now();
    loop {
        let ready = app
            .http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ingress never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = app.email("after-recovery");
    assert!(matches!(
        okta_create(&acme.scim, &after).await,
        Outcome::Created(_)
    ));
    assert_one_invite_each(&app, Duration::from_secs(90)).await;
    assert_one_consumer_each(&app).await;
    app.stop().await;
}

/// A partition RabbitMQ notices late: the services' side of every connection drops while
/// the broker keeps its side for 30 s, and with it the ingress's exclusive reply queue
/// (lapin's recovery cannot declare it again while it is held) and the deliveries the
/// worker and mailer had not acknowledged. The services must answer creates again, with
/// the worker's reply, on connections of their own well before the broker lets go; and
/// once it does, nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_the_broker_notices_late_loses_nothing_and_recovers() {
    let app = fault_stack().await;
    let acme = app.tenant("Acme").await;
    let okta = acme.scim.clone();
    let batch = names(&app, 60, "partition");
    let load = tokio::spawn(async move { load(&okta, batch, 12).await });
    until_users(&app, 10).await;
    let hold = Duration::from_secs(30);
    let severed = Instant::now();
    app.sever_broker_connections(hold);
    // A create answered by the worker (201, not found by Okta's lookup after a 503: reads
    // do not need the broker) while the broker still holds the old connections.
    let mut during = Vec::new();
    loop {
        let name = app.email(&format!("during{:02}", during.len()));
        let outcome = okta_create(&acme.scim, &name).await;
        let answered = matches!(outcome, Outcome::Created(_));
        during.push((name, outcome));
        if answered {
            break;
        }
        assert!(
            severed.elapsed() < hold,
            "no create was answered while the broker held the old connections"
        );
    }
    assert!(
        severed.elapsed() < hold,
        "a create was answered only after the broker let go of the old connections ({:?})",
        severed.elapsed()
    );
    let mut results = load.await.expect("load");
    results.extend(during);
    // Once the broker lets go, what the old connections held is delivered again.
    tokio::time::sleep((hold + Duration::from_secs(3)).saturating_sub(severed.elapsed())).await;
    assert_consistent(&app, &results).await;
    assert_one_invite_each(&app, Duration::from_secs(90)).await;
    assert_one_consumer_each(&app).await;
    app.stop().await;
}

/// Someone deletes the events exchange (a cleanup by hand gone wrong): the worker's next
/// event publish makes the broker close that channel (404), and lapin does not reopen a
/// channel the broker closed. The worker must notice, reconnect, declare its topology
/// again (the exchange and the mailer queue's binding), and publish what waited in the
/// outbox: the invites still go out, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_events_exchange_is_declared_again_and_no_event_waits_forever() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let conn = lapin::Connection::connect(
        &app.settings_amqp_direct(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("connecting to RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    let exchange = common::amqp::Topology::from_settings(&app.settings).events_exchange();
    channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await
        .expect("deleting the events exchange");
    for p in names(&app, 3, "exchange") {
        assert!(matches!(
            okta_create(&acme.scim, &p).await,
            Outcome::Created(_)
        ));
    }
    assert_eq!(
        app.wait_count(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            0,
            Duration::from_secs(60)
        )
        .await,
        0,
        "events still wait in the outbox"
    );
    assert_one_invite_each(&app, Duration::from_secs(60)).await;
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

/// RabbitMQ down for longer than lapin's recovery is given (a restart that takes 15 s):
/// each service replaces its connection, and once the broker is back both that fresh
/// connection and lapin's recovery of the replaced one connect. The replaced one must
/// not stay: with its consumer subscribed again it would hold a prefetch of commands or
/// invites that nothing processes. Nothing is lost; every invite goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_past_the_recovery_grace_leaves_no_stale_consumer() {
    let app = fault_stack().await;
    let acme = app.tenant("Acme").await;
    let okta = acme.scim.clone();
    let batch = names(&app, 80, "outage");
    let load = tokio::spawn(async move { load(&okta, batch, 12).await });
    until_users(&app, 10).await;
    app.broker_down();
    tokio::time::sleep(common::amqp::link::RECOVERY_GRACE + Duration::from_secs(5)).await;
    app.broker_restored();
    let results = load.await.expect("load");
    assert_consistent(&app, &results).await;
    assert_one_invite_each(&app, Duration::from_secs(90)).await;
    assert_one_consumer_each(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_delays_commands_without_partial_writes() {
    let app = fault_stack().await;
    let acme = app.tenant("Acme").await;
    let okta = acme.scim.clone();
    let batch = names(&app, 60, "db");
    let load = tokio::spawn(async move { load(&okta, batch, 12).await });
    until_users(&app, 10).await;
    app.db_proxy.down();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(during.status(), 503, "readiness reports the database");
    app.db_proxy.restore();
    let results = load.await.expect("load");
    assert_consistent(&app, &results).await;
    assert_one_invite_each(&app, Duration::from_secs(90)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_outage_delays_invites_and_sends_each_once() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    app.smtp_proxy.down();
    let people = names(&app, 5, "smtp");
    for p in &people {
        assert!(matches!(
            okta_create(&acme.scim, p).await,
            Outcome::Created(_)
        ));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    for p in &people {
        assert!(
            app.maildev.to(p).await.is_empty(),
            "mail got through an SMTP outage"
        );
    }
    app.assert_none("SELECT count(*) FROM invites WHERE sent_at IS NOT NULL")
        .await;
    app.smtp_proxy.restore();
    assert_one_invite_each(&app, Duration::from_secs(60)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_or_returns_what_it_held() {
    let mut app = fault_stack().await;
    let acme = app.tenant("Acme").await;
    let okta = acme.scim.clone();
    let batch = names(&app, 100, "term");
    let load = tokio::spawn(async move { load(&okta, batch, 16).await });
    until_users(&app, 25).await;
    // As SIGTERM: stop consuming, finish what it holds, exit cleanly (asserted by stop).
    app.stop_worker().await;
    app.start_worker().await;
    let results = load.await.expect("load");
    assert_consistent(&app, &results).await;
    assert_one_invite_each(&app, Duration::from_secs(90)).await;
    app.stop().await;
}
