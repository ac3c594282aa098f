//! The outbox relay: publishes events written by command transactions to the events
//! exchange with confirms, in id order, then marks them published. One relay drains at a
//! time across all workers (a transaction-scoped advisory lock), which keeps each user's
//! events in version order; a crash between publish and mark re-publishes (at least once).
//! The events of people with an invite pending also go to the mailer's queue (a `BCC`
//! header with `INVITE_ROUTE`); no other event does. It also samples the outbox's lag for
//! the metrics, at most once a second.

use common::{
    amqp::{
        Publisher, Raw, Topology,
        publish::{confirmed, envelope_ref_properties},
        topology::INVITE_ROUTE,
    },
    db::{is_transient, redact, stmt},
    messages::{envelope::EnvelopeRef, events},
    metrics::{EVENTS_PUBLISHED, OUTBOX_LAG, OUTBOX_PENDING, OUTBOX_UNREADABLE, prefix_of},
};
use lapin::{
    BasicProperties,
    types::{AMQPValue, LongString},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

pub mod sql;
use sql::{mark, try_lock, unpublished, unsent_invites};

const BATCH: usize = 200;
const RELAY_LOCK: i64 = 7_262_810_514;
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the lag gauges are refreshed (at most).
const LAG_SAMPLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Db(String),
    #[error("broker: {0}")]
    Publish(#[from] common::amqp::PublishError),
}

/// Runs until `shutdown` turns true, waking on `notify` (a command committed) or every
/// half second (another worker's commits).
pub async fn relay(
    db: DatabaseConnection,
    publisher: Publisher,
    topology: Topology,
    notify: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    unreadable: Arc<AtomicU64>,
) {
    let mut failures = 0u32;
    let prefix = prefix_of(&topology);
    let mut sampled: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if sampled.is_none_or(|at| at.elapsed() >= LAG_SAMPLE) {
            sample_lag(&db, &prefix, &unreadable).await;
            sampled = Some(Instant::now());
        }
        match drain_once(&db, &publisher, &topology).await {
            Ok(n) if n == BATCH => {
                failures = 0;
                continue;
            }
            Ok(_) => {
                failures = 0;
                tokio::select! {
                    () = notify.notified() => {},
                    () = tokio::time::sleep(IDLE_POLL) => {},
                    _ = shutdown.changed() => {},
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                tracing::warn!(error = %common::secret::redact_urls(&e.to_string()), retry_in_ms = wait.as_millis() as u64, "outbox relay failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {},
                    _ = shutdown.changed() => {},
                }
            }
        }
    }
}

/// Publishes up to one batch; returns how many were published.
pub async fn drain_once(
    db: &DatabaseConnection,
    publisher: &Publisher,
    topology: &Topology,
) -> Result<usize, RelayError> {
    let db_err = |e: sea_orm::DbErr| {
        if !is_transient(&e) {
            tracing::error!(error = %redact(&e), "outbox relay database error");
        }
        RelayError::Db(redact(&e))
    };
    let tx = db.begin().await.map_err(db_err)?;
    let locked: bool = tx
        .query_one(&try_lock())
        .await
        .map_err(db_err)?
        .map(|r| r.try_get("", "locked"))
        .transpose()
        .map_err(db_err)?
        .unwrap_or(false);
    if !locked {
        return Ok(0);
    }
    let rows = tx
        .query_all(&unpublished(BATCH as u64))
        .await
        .map_err(db_err)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let exchange = topology.events_exchange();
    let mut ids = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    let mut texts = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get("", "id").map_err(db_err)?;
        let key: String = row.try_get("", "routing_key").map_err(db_err)?;
        // The stored JSON as text: checked as an `Envelope` and published as it is, so
        // each event is parsed once and never serialised again.
        let text: String = row.try_get("", "envelope").map_err(db_err)?;
        texts.push((id, key, text));
    }
    let mut events = Vec::with_capacity(texts.len());
    for (id, key, text) in &texts {
        let Ok(envelope) = EnvelopeRef::parse(text) else {
            // Kept for an operator (docs/operations.md), never marked published: losing
            // an event silently would leave integrators out of step for good.
            tracing::error!(outbox_id = id, "unreadable outbox row set aside");
            unreadable.push(*id);
            continue;
        };
        ids.push(*id);
        events.push((key.as_str(), text.as_bytes(), envelope));
    }
    let inviting = pending_invites(&tx, &events).await.map_err(db_err)?;
    let mut pending = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    for (key, body, envelope) in &events {
        let mut props = envelope_ref_properties(envelope);
        if invitee(envelope).is_some_and(|u| inviting.contains(&u)) {
            props = to_the_mailer(props);
        }
        pending.push(
            publisher
                .send_raw(Raw {
                    exchange: &exchange,
                    routing_key: key,
                    body,
                    props,
                    mandatory: false,
                })
                .await?,
        );
        kinds.push(envelope.kind.clone().into_owned());
    }
    // A confirm that never comes (a connection lost mid-batch) must not hold the relay
    // lock forever: `confirmed` gives up after `CONFIRM_TIMEOUT`, the transaction rolls
    // back, and the batch is published again later.
    for p in pending {
        confirmed(p).await?;
    }
    tx.execute(&mark("published_at", &ids))
        .await
        .map_err(db_err)?;
    if !unreadable.is_empty() {
        tx.execute(&mark("unreadable_at", &unreadable))
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    let prefix = prefix_of(topology);
    for kind in kinds {
        metrics::counter!(EVENTS_PUBLISHED, "type" => kind, "prefix" => prefix.clone())
            .increment(1);
    }
    Ok(rows.len())
}

/// The person a `user.created` or `user.reactivated` event is about: the events that can
/// send an invite.
fn invitee(envelope: &EnvelopeRef<'_>) -> Option<Uuid> {
    if envelope.kind != events::USER_CREATED && envelope.kind != events::USER_REACTIVATED {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Person {
        user_id: Option<Uuid>,
    }
    serde_json::from_str::<Person>(envelope.payload.get())
        .ok()?
        .user_id
}

/// Which of the events' people have an invite pending (written in the transaction that
/// wrote the event, so committed before it is relayed): only their events go to the
/// mailer.
async fn pending_invites(
    tx: &sea_orm::DatabaseTransaction,
    events: &[(&str, &[u8], EnvelopeRef<'_>)],
) -> Result<HashSet<Uuid>, sea_orm::DbErr> {
    let people: Vec<Uuid> = events.iter().filter_map(|(_, _, e)| invitee(e)).collect();
    if people.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = tx.query_all(&unsent_invites(&people)).await?;
    rows.iter().map(|r| r.try_get("", "user_id")).collect()
}

/// Adds the mailer's route (`INVITE_ROUTE`) as a `BCC` header: the broker routes the event
/// to the mailer's queue as well, and removes the header before delivery.
fn to_the_mailer(props: BasicProperties) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(
        "BCC".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString(LongString::from(INVITE_ROUTE))].into()),
    );
    props.with_headers(headers)
}

/// Sets `roster_outbox_lag_seconds` (age of the oldest unpublished readable event, 0 when
/// none), `roster_outbox_pending` and `roster_outbox_unreadable` (also kept in
/// `unreadable` for `/readyz`). A failed query leaves the last values (the relay logs
/// errors).
async fn sample_lag(db: &DatabaseConnection, prefix: &str, unreadable: &AtomicU64) {
    let row = db
        .query_one_raw(stmt(
            "SELECT count(*) FILTER (WHERE unreadable_at IS NULL) AS pending, \
             count(*) FILTER (WHERE unreadable_at IS NOT NULL) AS unreadable, \
             COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) \
                      FILTER (WHERE unreadable_at IS NULL)), 0)::float8 AS lag \
             FROM outbox WHERE published_at IS NULL",
            [],
        ))
        .await;
    let Ok(Some(row)) = row else {
        return;
    };
    let (Ok(pending), Ok(lag), Ok(bad)) = (
        row.try_get::<i64>("", "pending"),
        row.try_get::<f64>("", "lag"),
        row.try_get::<i64>("", "unreadable"),
    ) else {
        return;
    };
    metrics::gauge!(OUTBOX_LAG, "prefix" => prefix.to_owned()).set(lag.max(0.0));
    metrics::gauge!(OUTBOX_PENDING, "prefix" => prefix.to_owned()).set(pending as f64);
    metrics::gauge!(OUTBOX_UNREADABLE, "prefix" => prefix.to_owned()).set(bad as f64);
    unreadable.store(u64::try_from(bad).unwrap_or_default(), Ordering::Relaxed);
}
