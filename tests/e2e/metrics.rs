//! Metrics: after a known workload the counters equal the work done, HTTP series are keyed
//! by route pattern (never by id), and the worker's and mailer's `/metrics` answer.
//!
//! Every test stack runs in this one process and shares its one metrics recorder, so each
//! `/metrics` renders the series of every stack: this test reads only those labelled with
//! its own `prefix` (its AMQP prefix).

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::{harness::TestApp, okta::create_user_body};
use tokio::{net::TcpListener, sync::oneshot};

const WAIT: Duration = Duration::from_secs(30);

/// The sum of the samples of `name` whose labels include every pair in `labels`; `None`
/// when no series matches.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // Label values may hold braces (`/scim/v2/Users/{id}`): the set ends at the last `} `.
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => match r.rsplit_once("} ") {
                Some((set, value)) => (set, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        let set = format!(",{set}");
        if labels
            .iter()
            .all(|(k, v)| set.contains(&format!(",{k}=\"{v}\"")))
        {
            let v: f64 = value.trim().parse().expect("a number");
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    let res = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200, "GET {base}/metrics");
    let content_type = res.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    res.text().await.expect("text")
}

/// A service started beside the stack with a health port this test can reach.
struct Extra {
    base: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Extra {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("stops in time")
            .expect("no panic")
            .expect("clean exit");
    }
}

async fn health_port() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("health port");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    (l, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_the_work_done() {
    let app = TestApp::spawn().await;
    let prefix = app.settings.amqp_prefix.clone();
    let p = prefix.as_str();

    // The harness binds its services' health ports internally; a second worker and a
    // second mailer on ports of our own show that their `/metrics` answer. They share the
    // queues with the first ones: the counters below add both up.
    let (listener, worker_base) = health_port().await;
    let w = worker::Worker::connect(&app.settings).await;
    let (stop, rx) = oneshot::channel();
    let worker = Extra {
        base: worker_base,
        stop,
        task: tokio::spawn(w.run(listener, async move {
            let _ = rx.await;
        })),
    };
    let (listener, mailer_base) = health_port().await;
    let m = mailer::Mailer::connect(&app.settings)
        .await
        .expect("mailer");
    let (stop, rx) = oneshot::channel();
    let mailer = Extra {
        base: mailer_base,
        stop,
        task: tokio::spawn(m.run(listener, async move {
            let _ = rx.await;
        })),
    };

    // The workload: 5 creates, 1 duplicate, 1 unknown id, 2 deactivations, 1 unknown path.
    let acme = app.tenant("Metrics Co").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let res = acme
            .scim
            .post_user(&create_user_body(
                &app.email(&format!("m{i}")),
                "Pat",
                "Lee",
            ))
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("JSON");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let dup = acme
        .scim
        .post_user(&create_user_body(&app.email("m0"), "Pat", "Lee"))
        .await;
    assert_eq!(dup.status(), 409);
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(acme.scim.get_user(&unknown).await.status(), 404);
    let off = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]
    });
    for id in &ids[..2] {
        let res = acme
            .scim
            .send_json(Method::PATCH, &format!("/Users/{id}"), &off)
            .await;
        assert_eq!(res.status(), 200);
    }
    let nowhere = app
        .http
        .get(format!("{}/no/such/{unknown}", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(nowhere.status(), 404);

    assert_eq!(
        app.wait_count(
            "SELECT count(*) FROM invites WHERE sent_at IS NOT NULL",
            5,
            WAIT
        )
        .await,
        5
    );
    // The relay counts an event after marking it published, the mailer an invite after
    // recording it, and a worker a command after replying: each may trail by a moment.
    let start = Instant::now();
    let text = loop {
        let text = metrics_text(&app.http, &app.base).await;
        let settled = sample(&text, "roster_invites_sent_total", &[("prefix", p)]) == Some(5.0)
            && sample(
                &text,
                "roster_events_published_total",
                &[("type", "user.created"), ("prefix", p)],
            ) == Some(5.0)
            && sample(
                &text,
                "roster_commands_processed_total",
                &[("type", "user.patch"), ("prefix", p)],
            ) == Some(2.0)
            && sample(&text, "roster_outbox_lag_seconds", &[("prefix", p)]).is_some()
            && sample(&text, "roster_queue_messages", &[("prefix", p)]).is_some();
        if settled || start.elapsed() > WAIT {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mine: String = text
        .lines()
        .filter(|l| l.contains(&format!("prefix=\"{p}\"")))
        .collect::<Vec<_>>()
        .join("\n");
    let get = |name: &str, labels: &[(&str, &str)]| {
        let mut all = labels.to_vec();
        all.push(("prefix", p));
        sample(&text, name, &all)
    };

    // The ingress: commands out, replies in.
    let create = ("type", "user.create");
    let patch = ("type", "user.patch");
    assert_eq!(
        get("roster_commands_published_total", &[create]),
        Some(6.0),
        "{mine}"
    );
    assert_eq!(
        get("roster_command_replies_total", &[create, ("status", "201")]),
        Some(5.0),
        "{mine}"
    );
    assert_eq!(
        get("roster_command_replies_total", &[create, ("status", "409")]),
        Some(1.0),
        "{mine}"
    );
    assert_eq!(
        get("roster_command_replies_total", &[patch, ("status", "200")]),
        Some(2.0),
        "{mine}"
    );
    assert_eq!(get("roster_command_timeouts_total", &[]), None, "{mine}");
    assert_eq!(get("roster_commands_rejected_total", &[]), None, "{mine}");

    // The workers: what they applied, and how long it took.
    assert_eq!(
        get(
            "roster_commands_processed_total",
            &[create, ("outcome", "2xx")]
        ),
        Some(5.0),
        "{mine}"
    );
    assert_eq!(
        get(
            "roster_commands_processed_total",
            &[create, ("outcome", "4xx")]
        ),
        Some(1.0),
        "{mine}"
    );
    assert_eq!(
        get(
            "roster_commands_processed_total",
            &[patch, ("outcome", "2xx")]
        ),
        Some(2.0),
        "{mine}"
    );
    assert_eq!(
        get("roster_command_duration_seconds_count", &[create]),
        Some(6.0),
        "{mine}"
    );
    assert_eq!(get("roster_retries_total", &[]), None, "{mine}");
    assert_eq!(get("roster_dead_lettered_total", &[]), None, "{mine}");
    assert_eq!(
        get("roster_events_published_total", &[("type", "user.created")]),
        Some(5.0),
        "{mine}"
    );
    assert!(
        get("roster_outbox_lag_seconds", &[]).is_some(),
        "the outbox lag gauge is set: {mine}"
    );
    assert!(get("roster_outbox_pending", &[]).is_some(), "{mine}");
    for queue in ["commands", "mailer", "dead-letter"] {
        assert!(
            get("roster_queue_messages", &[("queue", queue)]).is_some(),
            "depth of {queue}: {mine}"
        );
    }

    // The mailers.
    assert_eq!(get("roster_invites_sent_total", &[]), Some(5.0), "{mine}");
    assert_eq!(get("roster_invites_failed_total", &[]), None, "{mine}");
    // Their latencies: one SMTP send and one creation-to-send delay per invite, each
    // within the test's wait (every sample in the `le="60"` bucket: none took a minute).
    for name in [
        "roster_smtp_send_duration_seconds",
        "roster_invite_delay_seconds",
    ] {
        assert_eq!(get(&format!("{name}_count"), &[]), Some(5.0), "{mine}");
        assert_eq!(
            get(&format!("{name}_bucket"), &[("le", "60")]),
            Some(5.0),
            "{name}: {mine}"
        );
        assert!(
            get(&format!("{name}_sum"), &[]).is_some_and(|s| s > 0.0),
            "{name}: {mine}"
        );
    }

    // HTTP, by route pattern.
    let users = ("route", "/scim/v2/Users");
    let user = ("route", "/scim/v2/Users/{id}");
    let http = |method: &str, route: (&str, &str), status: &str| {
        get(
            "roster_http_requests_total",
            &[("method", method), route, ("status", status)],
        )
    };
    assert_eq!(http("POST", users, "201"), Some(5.0), "{mine}");
    assert_eq!(http("POST", users, "409"), Some(1.0), "{mine}");
    assert_eq!(http("GET", user, "404"), Some(1.0), "{mine}");
    assert_eq!(http("PATCH", user, "200"), Some(2.0), "{mine}");
    assert_eq!(
        http("GET", ("route", "unmatched"), "404"),
        Some(1.0),
        "{mine}"
    );
    assert_eq!(
        get(
            "roster_http_request_duration_seconds_count",
            &[("method", "POST"), users]
        ),
        Some(6.0),
        "{mine}"
    );
    assert!(
        !mine.contains(&unknown) && !mine.contains(&ids[0]),
        "no id in a label: {mine}"
    );

    // The worker's and mailer's own `/metrics` render the same process's series.
    for base in [&worker.base, &mailer.base] {
        let theirs = metrics_text(&app.http, base).await;
        assert!(
            sample(&theirs, "roster_commands_processed_total", &[("prefix", p)]).is_some(),
            "{base}/metrics: {theirs}"
        );
    }
    let theirs = metrics_text(&app.http, &mailer.base).await;
    assert!(
        sample(
            &theirs,
            "roster_invite_delay_seconds_count",
            &[("prefix", p)]
        )
        .is_some(),
        "{}/metrics: {theirs}",
        mailer.base
    );

    worker.stop().await;
    mailer.stop().await;
    app.stop().await;
}
