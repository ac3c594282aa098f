//! Metrics: the names every service records (Prometheus text, rendered by each service on
//! its own `/metrics`), their label conventions, and the one process-wide recorder.
//!
//! Conventions:
//! - Every name starts with `roster_`; counters end in `_total`, durations are histograms
//!   in seconds ending in `_seconds`.
//! - Every series carries `prefix`: the `AMQP_PREFIX` of the stack that recorded it
//!   (`roster` in production). Tests run many stacks in one process, which share the one
//!   recorder a process can have; `prefix` is how each test finds its own series.
//! - `type` is a command type (`user.create`) or an event type (`user.created`); `queue`
//!   is a queue's name without the prefix (`commands`, `mailer`, `dead-letter`); `status`
//!   is an HTTP status code; `outcome` is a reply's status class (`2xx`, `4xx`, `5xx`),
//!   `retried`, `requeued` or `dead_lettered`.
//! - HTTP metrics carry `route` (the matched route pattern, e.g. `/scim/v2/Users/{id}`, or
//!   `unmatched`), never the raw path, so ids do not explode the number of series.
//!
//! The list with meanings and the alerts worth setting is in `docs/operations.md`.

use crate::amqp::Topology;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{sync::OnceLock, time::Duration};

// Ingress: HTTP.
/// Counter `{method, route, status, prefix}`: HTTP requests answered.
pub const HTTP_REQUESTS: &str = "roster_http_requests_total";
/// Histogram `{method, route, status, prefix}`: time to answer an HTTP request.
pub const HTTP_REQUEST_DURATION: &str = "roster_http_request_duration_seconds";

// Ingress: commands sent and their replies.
/// Counter `{type, prefix}`: commands the broker accepted (confirmed).
pub const COMMANDS_PUBLISHED: &str = "roster_commands_published_total";
/// Counter `{type, prefix}`: commands the broker did not accept (nothing will happen).
pub const COMMANDS_REJECTED: &str = "roster_commands_rejected_total";
/// Counter `{type, status, prefix}`: replies received in time.
pub const COMMAND_REPLIES: &str = "roster_command_replies_total";
/// Counter `{type, prefix}`: accepted commands with no reply within `COMMAND_TIMEOUT_MS`.
pub const COMMAND_TIMEOUTS: &str = "roster_command_timeouts_total";

// Worker.
/// Counter `{type, outcome, prefix}`: command deliveries handled.
pub const COMMANDS_PROCESSED: &str = "roster_commands_processed_total";
/// Counter `{reason, prefix}`: commands the worker refused before applying them (each is
/// dead-lettered). `reason`: `credential` (unknown, revoked or another org's integration
/// credential), `unauthenticated` (no credential and not from Roster's broker user),
/// `not_public` (a type not open to integrations), `unknown_type`, `invalid` (an
/// undecodable envelope or payload).
pub const COMMANDS_REFUSED: &str = "roster_commands_refused_total";
/// Counter `{type, prefix}`: commands that reached their deadline (`apply_by`) unapplied —
/// slow, parked in a retry queue or redelivered too late — acknowledged without effect.
pub const COMMANDS_EXPIRED: &str = "roster_commands_expired_total";
/// Gauge `{prefix}`: outbox rows the relay cannot read (kept, never published; see
/// docs/operations.md).
pub const OUTBOX_UNREADABLE: &str = "roster_outbox_unreadable";
/// Histogram `{type, prefix}`: time to handle one command delivery (apply, reply, ack).
pub const COMMAND_DURATION: &str = "roster_command_duration_seconds";
/// Histogram `{prefix}`: commands a worker applied in one transaction (group commit,
/// `WORKER_BATCH_MAX`).
pub const COMMAND_BATCH_SIZE: &str = "roster_command_batch_size";
/// Counter `{type, prefix}`: events the outbox relay published (confirmed and marked).
pub const EVENTS_PUBLISHED: &str = "roster_events_published_total";
/// Gauge `{prefix}`: age of the oldest unpublished outbox event (0 when none).
pub const OUTBOX_LAG: &str = "roster_outbox_lag_seconds";
/// Gauge `{prefix}`: unpublished outbox events.
pub const OUTBOX_PENDING: &str = "roster_outbox_pending";
/// Gauge `{queue, prefix}`: messages ready in a queue, sampled by the worker.
pub const QUEUE_MESSAGES: &str = "roster_queue_messages";

// Worker: retention and erasure (docs/data-lifecycle.md).
/// Counter `{table, prefix}`: rows the background pruning removed (or, for a deleted
/// person's rows kept in other tables, scrubbed). `table` is the table's name.
pub const ROWS_PRUNED: &str = "roster_rows_pruned_total";
/// Gauge `{prefix}`: deleted people whose data is still to be scrubbed from other tables.
pub const ERASURES_PENDING: &str = "roster_erasures_pending";

// Worker and mailer: retries and dead letters.
/// Counter `{queue, prefix}`: messages sent to a broker-side retry queue.
pub const RETRIES: &str = "roster_retries_total";
/// Counter `{queue, prefix}`: messages a service dead-lettered (with a reason).
pub const DEAD_LETTERED: &str = "roster_dead_lettered_total";

// Mailer.
/// Counter `{prefix}`: invite emails sent.
pub const INVITES_SENT: &str = "roster_invites_sent_total";
/// Counter `{reason, prefix}`: invites that failed after in-process retries; `reason` is
/// `transient` (sent to a retry queue) or `permanent` (dead-lettered).
pub const INVITES_FAILED: &str = "roster_invites_failed_total";
/// Counter `{prefix}`: `user.created` events that needed no invite (invites off, already sent).
pub const INVITES_SKIPPED: &str = "roster_invites_skipped_total";
/// Histogram `{prefix}`: time the SMTP server took to accept one invite email (sends it
/// refused are counted by `INVITES_FAILED` instead).
pub const SMTP_SEND_DURATION: &str = "roster_smtp_send_duration_seconds";
/// Histogram `{prefix}`: time from a person's creation (the commit of their `user.created`
/// event) to their invite's send, in `INVITE_DELAY_BUCKETS`.
pub const INVITE_DELAY: &str = "roster_invite_delay_seconds";

// Ingress: employee sign-in (docs/sso.md).
/// Counter `{outcome, prefix}`: finished sign-ins; `outcome` is `signed_in` or the refusal's
/// code (`wrong_audience`, `not_in_directory`, `state_mismatch`, …).
pub const SIGN_INS: &str = "roster_sign_ins_total";

// The provisioning log and the mass-deprovisioning guard.
/// Counter `{prefix}`: provisioning-log entries the ingress could not hand on (its buffer
/// full, or the broker did not confirm); the SCIM requests themselves were answered.
pub const PROVISIONING_LOG_DROPPED: &str = "roster_provisioning_log_dropped_total";
/// Counter `{prefix}`: provisioning-log entries the worker stored.
pub const PROVISIONING_LOG_STORED: &str = "roster_provisioning_log_entries_total";
/// Counter `{prefix}`: times an org's mass-deprovisioning guard tripped.
pub const GUARD_TRIPS: &str = "roster_deprovision_guard_trips_total";
/// Counter `{action, prefix}`: deactivations and deletions the guard held or refused
/// (each attempt; Okta retries). `action`: `deactivate` or `delete`.
pub const GUARD_HELD: &str = "roster_deprovision_guard_held_total";

/// Histogram buckets for latencies in seconds: 5 ms to a minute (the command timeout is
/// 25 s by default, Okta waits 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

/// Histogram buckets for the time from a person's creation to their invite: 50 ms to an
/// hour, since an invite that waits for broker-side retries (`RETRY_DELAYS_MS`, up to a
/// minute each by default) or a mailer outage takes minutes.
pub const INVITE_DELAY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

/// Histogram buckets for commands per transaction: 1 to 256 (`WORKER_BATCH_MAX`).
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded in between scrapes, so memory stays bounded.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder on the first call and returns its handle; later
/// calls return the same handle (tests start many services in one process).
pub fn install() -> PrometheusHandle {
    HANDLE.get_or_init(build).clone()
}

/// The metrics of the whole process, in the Prometheus text format.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.render()
}

fn build() -> PrometheusHandle {
    let mut builder = PrometheusBuilder::new();
    let buckets = [
        (HTTP_REQUEST_DURATION, LATENCY_BUCKETS),
        (COMMAND_DURATION, LATENCY_BUCKETS),
        (COMMAND_BATCH_SIZE, BATCH_SIZE_BUCKETS),
        (SMTP_SEND_DURATION, LATENCY_BUCKETS),
        (INVITE_DELAY, INVITE_DELAY_BUCKETS),
    ];
    for (name, buckets) in buckets {
        builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets) {
            Ok(b) => b,
            // Only empty buckets are refused, and these are not empty.
            Err(_) => PrometheusBuilder::new(),
        };
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
    }
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread; histograms fold in at scrape time");
    }
    handle
}

/// The `# HELP` text of each counter, gauge and histogram (in seconds where so named).
const COUNTERS: &[(&str, &str)] = &[
    (HTTP_REQUESTS, "HTTP requests answered"),
    (COMMANDS_PUBLISHED, "Commands the broker accepted"),
    (
        PROVISIONING_LOG_DROPPED,
        "Provisioning-log entries the ingress could not hand on",
    ),
    (PROVISIONING_LOG_STORED, "Provisioning-log entries stored"),
    (GUARD_TRIPS, "Mass-deprovisioning guard trips"),
    (
        GUARD_HELD,
        "Deactivations and deletions held or refused by the guard",
    ),
    (COMMANDS_REJECTED, "Commands the broker did not accept"),
    (COMMAND_REPLIES, "Command replies received in time"),
    (COMMAND_TIMEOUTS, "Accepted commands with no reply in time"),
    (COMMANDS_PROCESSED, "Command deliveries handled by workers"),
    (
        COMMANDS_REFUSED,
        "Commands refused (not authorised or undecodable) and dead-lettered",
    ),
    (EVENTS_PUBLISHED, "Events published by the outbox relay"),
    (
        ROWS_PRUNED,
        "Rows pruned or scrubbed by the background pruning",
    ),
    (RETRIES, "Messages sent to a broker-side retry queue"),
    (DEAD_LETTERED, "Messages dead-lettered with a reason"),
    (INVITES_SENT, "Invite emails sent"),
    (
        INVITES_FAILED,
        "Invites that failed after in-process retries",
    ),
    (
        INVITES_SKIPPED,
        "events that reached the mailer but needed no invite",
    ),
    (SIGN_INS, "Employee sign-ins finished, by outcome"),
];
const GAUGES: &[(&str, &str)] = &[
    (OUTBOX_PENDING, "Unpublished outbox events"),
    (QUEUE_MESSAGES, "Messages ready in a queue"),
    (
        ERASURES_PENDING,
        "Deleted people whose data is still to be scrubbed",
    ),
];
const GAUGES_IN_SECONDS: &[(&str, &str)] =
    &[(OUTBOX_LAG, "Age of the oldest unpublished outbox event")];
const HISTOGRAMS_IN_SECONDS: &[(&str, &str)] = &[
    (HTTP_REQUEST_DURATION, "Time to answer an HTTP request"),
    (COMMAND_DURATION, "Time to handle one command delivery"),
    (
        SMTP_SEND_DURATION,
        "Time the SMTP server took to accept one invite",
    ),
    (
        INVITE_DELAY,
        "Time from a person's creation to their invite's send",
    ),
];

/// Tells the recorder what each metric is.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for &(name, help) in COUNTERS {
        describe_counter!(name, help);
    }
    for &(name, help) in GAUGES {
        describe_gauge!(name, help);
    }
    for &(name, help) in GAUGES_IN_SECONDS {
        describe_gauge!(name, metrics::Unit::Seconds, help);
    }
    for &(name, help) in HISTOGRAMS_IN_SECONDS {
        describe_histogram!(name, metrics::Unit::Seconds, help);
    }
}

/// The `prefix` label of a topology: its AMQP prefix.
pub fn prefix_of(topology: &Topology) -> String {
    let queue = topology.commands_queue();
    match queue.strip_suffix(".commands") {
        Some(p) => p.to_owned(),
        None => queue,
    }
}

/// The `queue` label of a queue name: the name without `<prefix>.`.
pub fn queue_label(prefix: &str, queue: &str) -> String {
    queue
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(queue)
        .to_owned()
}

/// The `outcome` (or status class) label of an HTTP-like status: `2xx`, `4xx`, `5xx` ….
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_strip_the_prefix() {
        let t = Topology::new("test-abc", 5, None);
        assert_eq!(prefix_of(&t), "test-abc");
        assert_eq!(queue_label("test-abc", &t.commands_queue()), "commands");
        assert_eq!(
            queue_label("test-abc", &t.dead_letter_queue()),
            "dead-letter"
        );
        assert_eq!(queue_label("test-abc", "elsewhere"), "elsewhere");
        assert_eq!(status_class(201), "2xx");
        assert_eq!(status_class(409), "4xx");
        assert_eq!(status_class(42), "other");
    }

    #[test]
    fn install_is_idempotent_and_renders_what_was_recorded() {
        let a = install();
        let b = install();
        metrics::counter!(INVITES_SENT, "prefix" => "unit-test-metrics").increment(2);
        metrics::histogram!(COMMAND_DURATION, "type" => "t", "prefix" => "unit-test-metrics")
            .record(0.02);
        for handle in [a, b] {
            let text = render(&handle);
            assert!(
                text.contains("roster_invites_sent_total{prefix=\"unit-test-metrics\"} 2"),
                "{text}"
            );
            assert!(
                text.contains("roster_command_duration_seconds_bucket{type=\"t\",prefix=\"unit-test-metrics\",le=\"0.025\"} 1"),
                "{text}"
            );
        }
    }
}
