//! The dead-letter queue as an operator meets it (`worker dlq …`, docs/dead-letters.md):
//! undecodable commands land there with their reason while the worker keeps consuming;
//! `list` and `show` leave it as they found it; `replay` puts messages back on their route,
//! and a replayed command has one effect however often it is replayed; `purge` empties it.

use common::{
    amqp::{Publisher, Raw, Topology, publish::PublishOptions},
    messages::{Command, CreateUser, Envelope, Reply},
    scim::model::UserInput,
};
use lapin::{
    BasicProperties, Channel, Connection,
    options::{BasicGetOptions, BasicNackOptions},
    types::AMQPValue,
};
use serde_json::Value;
use std::time::{Duration, Instant};
use tests::{harness::TestApp, okta::create_user_body};
use uuid::Uuid;
use worker::dlq::{self, DlqCommand, DlqError};

/// Runs `worker dlq <args>` as `main` does and returns what it printed.
async fn cli(conn: &Connection, topology: &Topology, args: &[&str]) -> Result<String, DlqError> {
    let cmd = DlqCommand::parse(args)?;
    let mut out = Vec::new();
    dlq::run(conn, topology, &cmd, &mut out).await?;
    let text = String::from_utf8(out).expect("UTF-8 output");
    println!("$ worker dlq {}\n{text}", args.join(" "));
    Ok(text)
}

/// Waits until the dead-letter queue holds `n` ready messages; returns the last depth.
async fn wait_depth(conn: &Connection, topology: &Topology, n: u32) -> u32 {
    let start = Instant::now();
    loop {
        let depth = dlq::depth(conn, topology).await.expect("depth");
        if depth == n || start.elapsed() > Duration::from_secs(20) {
            return depth;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ids(conn: &Connection, topology: &Topology) -> Vec<String> {
    let listing = dlq::list(conn, topology, 100).await.expect("list");
    listing.messages.into_iter().map(|m| m.id).collect()
}

/// The ids in the dead-letter queue in the broker's order (not sorted by failure time, as
/// `list` is): read all, then returned one by one in that order.
async fn queue_order(conn: &Connection, topology: &Topology) -> Vec<String> {
    let channel = conn.create_channel().await.expect("channel");
    let queue = topology.dead_letter_queue();
    let (mut ids, mut tags) = (Vec::new(), Vec::new());
    loop {
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get");
        let Some(m) = got else { break };
        let d = m.delivery;
        ids.push(dlq::DeadLetter::of(&d.properties, &d.data).id);
        tags.push(d.delivery_tag);
    }
    for tag in tags {
        let requeue = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        channel.basic_nack(tag, requeue).await.expect("nack");
    }
    // The broker puts nacked messages back asynchronously: wait until they are all there
    // again, so the next read sees the whole queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("passive declare");
        if q.message_count() as usize >= ids.len() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    channel.close(200, "read".into()).await.expect("close");
    ids
}

/// The `x-roster-failed-at` header (to the nanosecond) of the first message with `id`.
async fn failed_at(conn: &Connection, topology: &Topology, id: &str) -> Option<String> {
    let shown = dlq::show(conn, topology, id).await.expect("show")?;
    let headers = shown.properties.headers().clone().unwrap_or_default();
    match headers.inner().get(dlq::FAILED_AT_HEADER) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// An exclusive queue of the test's own, to read the worker's replies.
pub(crate) struct Replies {
    channel: Channel,
    pub(crate) queue: String,
}

impl Replies {
    pub(crate) async fn declare(conn: &Connection) -> Self {
        let channel = conn.create_channel().await.expect("channel");
        let queue = tests::events::exclusive_queue(&channel)
            .await
            .expect("reply queue");
        Self { channel, queue }
    }

    pub(crate) async fn next(&self, correlation_id: &str) -> Reply {
        let start = Instant::now();
        loop {
            let got = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get");
            if let Some(m) = got {
                let cid = m.delivery.properties.correlation_id().clone();
                assert_eq!(cid.as_ref().map(|c| c.as_str()), Some(correlation_id));
                return serde_json::from_slice(&m.delivery.data).expect("a reply");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no reply to {correlation_id}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) fn create_user(org: Option<Uuid>, user_name: &str, correlation_id: &str) -> Envelope {
    let input = UserInput::from_json(create_user_body(user_name, "Dee", "Ell")).expect("a User");
    Command::CreateUser(CreateUser {
        resource: Value::Object(input.resource),
    })
    .into_envelope(org, correlation_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_replayed_and_purged() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let org: Uuid = acme.org_id.parse().expect("org id");
    let topology = Topology::from_settings(&app.settings);
    let conn = common::amqp::connect(app.settings.amqp_url.expose(), "dlq-test").await;
    let publisher = Publisher::open(&conn).await.expect("publisher");
    let replies = Replies::declare(&conn).await;
    let commands = topology.commands_exchange();
    let to_commands = |mandatory| PublishOptions {
        mandatory,
        ..Default::default()
    };
    assert_eq!(wait_depth(&conn, &topology, 0).await, 0);

    // (a) a body that is not JSON, without any AMQP properties. Each lands before the
    // next is sent, so the queue's order is a, b, c.
    let junk = b"this is not json {".as_slice();
    publisher
        .publish_raw(Raw {
            exchange: &commands,
            routing_key: "user.create",
            body: junk,
            props: BasicProperties::default().with_delivery_mode(2),
            mandatory: true,
        })
        .await
        .expect("(a) published");
    assert_eq!(
        wait_depth(&conn, &topology, 1).await,
        1,
        "(a) dead-lettered"
    );
    // (b) a schema version this worker does not know.
    let mut b = create_user(Some(org), &app.email("b"), "corr-b");
    b.schema_version = 99;
    publisher
        .publish(&commands, "user.create", &b, to_commands(true))
        .await
        .expect("(b) published");
    assert_eq!(
        wait_depth(&conn, &topology, 2).await,
        2,
        "(b) dead-lettered"
    );
    // (c) a command type nobody knows.
    let mut c = create_user(Some(org), &app.email("c"), "corr-c");
    c.kind = "user.explode".into();
    publisher
        .publish(&commands, "user.explode", &c, to_commands(true))
        .await
        .expect("(c) published");
    assert_eq!(
        wait_depth(&conn, &topology, 3).await,
        3,
        "(c) dead-lettered"
    );
    // (d) a valid create for an org that does not exist: answered, not dead-lettered.
    let d = create_user(Some(Uuid::new_v4()), &app.email("d"), "corr-d");
    let d_id = d.id.to_string();
    publisher
        .publish(
            &commands,
            "user.create",
            &d,
            PublishOptions {
                reply_to: Some(&replies.queue),
                correlation_id: Some(&d_id),
                mandatory: true,
                headers: Vec::new(),
            },
        )
        .await
        .expect("(d) published");
    assert_eq!(replies.next(&d_id).await.status(), 404, "(d) is answered");

    // list: exactly a, b, c, oldest first, with reasons naming the problem.
    let a_id = dlq::message_id(None, junk);
    let (b_id, c_id) = (b.id.to_string(), c.id.to_string());
    let listing = dlq::list(&conn, &topology, 100).await.expect("list");
    assert_eq!(listing.total, 3);
    let got: Vec<&str> = listing.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got, [a_id.as_str(), b_id.as_str(), c_id.as_str()]);
    let [ma, mb, mc] = &listing.messages[..] else {
        panic!("three messages")
    };
    assert!(a_id.starts_with("body-"), "{a_id}");
    assert!(ma.reason.contains("envelope"), "{}", ma.reason);
    assert_eq!(ma.kind, None);
    assert!(mb.reason.contains("schema_version 99"), "{}", mb.reason);
    assert_eq!(mb.kind.as_deref(), Some("user.create"));
    assert_eq!(mb.org_id.as_deref(), Some(acme.org_id.as_str()));
    assert!(mc.reason.contains("unknown command type"), "{}", mc.reason);
    assert!(mc.reason.contains("user.explode"), "{}", mc.reason);
    for (m, key) in [
        (ma, "user.create"),
        (mb, "user.create"),
        (mc, "user.explode"),
    ] {
        let route = m.route.as_ref().expect("a route");
        assert_eq!(
            (route.exchange.as_str(), route.routing_key.as_str()),
            (commands.as_str(), key)
        );
        assert!(m.failed_at.is_some());
    }
    let text = cli(&conn, &topology, &["list"]).await.expect("dlq list");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("ID "), "{text}");
    assert!(lines[1].starts_with(&a_id), "{text}");
    assert!(
        lines[2].starts_with(&b_id) && lines[2].contains("schema_version 99"),
        "{text}"
    );
    assert!(
        lines[3].starts_with(&c_id) && lines[3].contains("user.explode"),
        "{text}"
    );
    assert!(lines[4].starts_with("3 dead-lettered message(s)"), "{text}");

    // Reading leaves the queue as it was: a partial read and `show`s do not reorder it.
    let two = cli(&conn, &topology, &["list", "--limit", "2"])
        .await
        .expect("list --limit");
    assert!(two.contains("2 of 3 dead-lettered"), "{two}");
    let shown = cli(&conn, &topology, &["show", &b_id])
        .await
        .expect("show (b)");
    assert!(
        shown.contains("\"schema_version\": 99"),
        "pretty JSON: {shown}"
    );
    assert!(
        shown.contains("x-roster-error: undecodable message: schema_version 99"),
        "{shown}"
    );
    assert!(
        shown.contains("x-roster-original-routing-key: user.create"),
        "{shown}"
    );
    let shown = cli(&conn, &topology, &["show", &a_id])
        .await
        .expect("show (a)");
    assert!(shown.contains("not JSON):\nthis is not json {"), "{shown}");
    assert!(matches!(
        cli(&conn, &topology, &["show", "no-such-id"]).await,
        Err(DlqError::NotFound(_))
    ));
    assert_eq!(
        queue_order(&conn, &topology).await,
        [a_id.as_str(), b_id.as_str(), c_id.as_str()],
        "the broker's order after reads"
    );
    assert_eq!(dlq::depth(&conn, &topology).await.expect("depth"), 3);

    // replay (c): it goes back to the commands exchange, is still undecodable, and lands
    // here again, freshly dead-lettered.
    let before = failed_at(&conn, &topology, &c_id)
        .await
        .expect("(c) is there");
    let out = cli(&conn, &topology, &["replay", &c_id])
        .await
        .expect("replay (c)");
    assert!(
        out.contains(&format!("replayed {c_id} → {commands} → user.explode")),
        "{out}"
    );
    assert!(out.contains("1 message(s) replayed, 0 skipped"), "{out}");
    let start = Instant::now();
    loop {
        let now = failed_at(&conn, &topology, &c_id).await;
        if now.as_ref().is_some_and(|t| *t != before) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "(c) never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // By failure time: (c) is now the newest.
    assert_eq!(
        ids(&conn, &topology).await,
        [a_id.as_str(), b_id.as_str(), c_id.as_str()]
    );

    // A valid command dead-lettered (as if its database had been down too long) is applied
    // once by its replay, and not again when a second copy is replayed.
    let user_name = app.email("replayed");
    let v = create_user(Some(org), &user_name, "corr-v");
    let v_id = v.id.to_string();
    let dlx = topology.dead_letter_exchange();
    let dead_letter = || {
        publisher.publish(
            &dlx,
            "user.create",
            &v,
            PublishOptions {
                reply_to: Some(&replies.queue),
                correlation_id: Some(&v_id),
                mandatory: true,
                headers: vec![
                    (dlq::ERROR_HEADER, "database unavailable (simulated)".into()),
                    (dlq::ORIGINAL_EXCHANGE_HEADER, commands.clone()),
                    (dlq::ORIGINAL_ROUTING_KEY_HEADER, "user.create".into()),
                    (
                        dlq::FAILED_AT_HEADER,
                        "2026-01-02T03:04:05.000006+00:00".into(),
                    ),
                ],
            },
        )
    };
    let users = format!("SELECT count(*) FROM users WHERE user_name = '{user_name}'");
    let mut first_id = None;
    for round in 1..=2 {
        dead_letter().await.expect("dead-lettered by hand");
        assert_eq!(wait_depth(&conn, &topology, 4).await, 4);
        let out = cli(&conn, &topology, &["replay", &v_id])
            .await
            .expect("replay");
        assert!(
            out.contains("1 message(s) replayed, 0 skipped"),
            "round {round}: {out}"
        );
        let Reply::Ok { status, body } = replies.next(&v_id).await else {
            panic!("round {round}: the replayed create failed")
        };
        assert_eq!(status, 201, "round {round}");
        let id = body["id"].as_str().expect("user id").to_owned();
        assert_eq!(
            first_id.get_or_insert_with(|| id.clone()),
            &id,
            "the stored reply"
        );
        assert_eq!(app.count(&users).await, 1, "round {round}: one user");
        assert_eq!(wait_depth(&conn, &topology, 3).await, 3);
    }
    let processed = format!("SELECT count(*) FROM processed_commands WHERE command_id = '{v_id}'");
    assert_eq!(app.count(&processed).await, 1);
    let events = format!(
        "SELECT count(*) FROM outbox WHERE routing_key = 'user.created' \
         AND envelope->'payload'->>'user_name' = '{user_name}'"
    );
    assert_eq!(app.count(&events).await, 1, "one user.created event");

    // replay --all replays what was there when it started (not the copies that come back).
    let out = cli(&conn, &topology, &["replay", "--all"])
        .await
        .expect("replay --all");
    assert!(out.contains("3 message(s) replayed, 0 skipped"), "{out}");
    assert_eq!(
        wait_depth(&conn, &topology, 3).await,
        3,
        "all three came back"
    );
    let mut back = ids(&conn, &topology).await;
    back.sort();
    let mut expected = vec![a_id.clone(), b_id.clone(), c_id.clone()];
    expected.sort();
    assert_eq!(back, expected);

    // purge: refused without --yes (and a mistyped flag is a usage error, not a purge),
    // then empties the queue.
    assert!(matches!(
        cli(&conn, &topology, &["purge"]).await,
        Err(DlqError::PurgeNotConfirmed)
    ));
    assert!(matches!(
        cli(&conn, &topology, &["purge", "-y"]).await,
        Err(DlqError::Usage(_))
    ));
    assert_eq!(dlq::depth(&conn, &topology).await.expect("depth"), 3);
    let out = cli(&conn, &topology, &["purge", "--yes"])
        .await
        .expect("purge");
    assert!(out.starts_with("purged 3 message(s)"), "{out}");
    assert_eq!(dlq::depth(&conn, &topology).await.expect("depth"), 0);
    let out = cli(&conn, &topology, &["list"]).await.expect("list");
    assert!(out.ends_with("is empty\n"), "{out}");

    // The worker kept consuming throughout.
    let res = acme
        .scim
        .post_user(&create_user_body(&app.email("after"), "Af", "Ter"))
        .await;
    assert_eq!(res.status(), 201);
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

/// Many messages (more than the 32 below which Erlang maps iterate in key order): partial
/// lists and `show`s leave them in the broker's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_long_dead_letter_queue_keeps_its_order() {
    let settings = common::Settings::from_env().expect("settings");
    let prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let topology = Topology::new(&prefix, 20, Some(Duration::from_secs(300)));
    let conn = common::amqp::connect(settings.amqp_url.expose(), "dlq-order-test").await;
    let publisher = Publisher::open(&conn).await.expect("publisher");
    assert_eq!(
        cli(&conn, &topology, &["list"]).await.expect("list"),
        format!("{prefix}.dead-letter is empty\n")
    );
    let mut sent = Vec::new();
    for i in 0..40 {
        let id = format!("m{i:02}");
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(id.as_str().into());
        publisher
            .publish_raw(Raw {
                exchange: &topology.dead_letter_exchange(),
                routing_key: "user.create",
                body: b"{}",
                props,
                mandatory: true,
            })
            .await
            .expect("published");
        sent.push(id);
    }
    assert_eq!(wait_depth(&conn, &topology, 40).await, 40);
    cli(&conn, &topology, &["list", "--limit", "3"])
        .await
        .expect("list");
    cli(&conn, &topology, &["show", "m07"]).await.expect("show");
    cli(&conn, &topology, &["show", "m39"]).await.expect("show");
    // Without failure times, `list` keeps the queue's order too.
    assert_eq!(ids(&conn, &topology).await, sent);
    assert_eq!(queue_order(&conn, &topology).await, sent);
    let out = cli(&conn, &topology, &["purge", "--yes"])
        .await
        .expect("purge");
    assert_eq!(
        out,
        format!("purged 40 message(s) from {prefix}.dead-letter\n")
    );
    let _ = conn.close(200, "done".into()).await;
}

/// A command the database refuses for good (here a CHECK constraint added by hand) is set
/// aside in the dead-letter queue with the reason, and Okta's call is answered `500` at
/// once instead of waiting out the command timeout. Nothing is changed; once the cause is
/// removed, a replay applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_database_failure_answers_500_at_once_and_is_never_applied_later() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let topology = Topology::from_settings(&app.settings);
    let conn = common::amqp::connect(app.settings.amqp_url.expose(), "dlq-test").await;
    app.db
        .execute_unprepared(
            "ALTER TABLE users ADD CONSTRAINT refuses_some CHECK (user_name NOT LIKE 'refused%')",
        )
        .await
        .expect("adding the constraint");
    let name = app.email("refused");
    let started = Instant::now();
    let res = acme
        .scim
        .post_user(&create_user_body(&name, "Ref", "Used"))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.expect("SCIM error JSON");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dead-letter queue")),
        "{body}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}, not at once (the command timeout is 15 s)"
    );
    app.assert_none("SELECT count(*) FROM users").await;
    assert_eq!(wait_depth(&conn, &topology, 1).await, 1, "kept for replay");
    let listing = dlq::list(&conn, &topology, 10).await.expect("list");
    assert!(
        listing.messages[0].reason.contains("refuses_some"),
        "the reason names the constraint: {}",
        listing.messages[0].reason
    );

    app.db
        .execute_unprepared("ALTER TABLE users DROP CONSTRAINT refuses_some")
        .await
        .expect("dropping the constraint");
    // The caller was told 500, "nothing applied, ever": a replay, even within the
    // command's deadline, finds the stored answer and changes nothing.
    cli(&conn, &topology, &["replay", "--all"])
        .await
        .expect("replay");
    assert_eq!(wait_depth(&conn, &topology, 0).await, 0);
    let sql = format!("SELECT count(*) FROM users WHERE user_name = '{name}'");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.count(&sql).await,
        0,
        "a create answered 500 was applied"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'command.failed'")
            .await,
        1
    );
    // Okta sends the create again, as a new request: applied once.
    let res = acme
        .scim
        .post_user(&create_user_body(&name, "Ref", "Used"))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(app.count(&sql).await, 1);
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}
