//! The outbox relay: publishes events written by command transactions to the events
//! exchange with confirms, in id order, then marks them published. One relay drains at a
//! time across all workers (a transaction-scoped advisory lock), which keeps each user's
//! events in version order; a crash between publish and mark re-publishes (at least once).
//! It also samples the outbox's lag for the metrics, at most once a second.

use common::{
    amqp::{
        Publisher, Topology,
        publish::{confirmed, envelope_properties},
    },
    db::{is_transient, redact, stmt},
    messages::Envelope,
    metrics::{EVENTS_PUBLISHED, OUTBOX_LAG, OUTBOX_PENDING, prefix_of},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{Notify, watch};

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
) {
    let mut failures = 0u32;
    let prefix = prefix_of(&topology);
    let mut sampled: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if sampled.is_none_or(|at| at.elapsed() >= LAG_SAMPLE) {
            sample_lag(&db, &prefix).await;
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
        .query_one_raw(stmt(
            "SELECT pg_try_advisory_xact_lock($1) AS locked",
            [RELAY_LOCK.into()],
        ))
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
        .query_all_raw(stmt(
            "SELECT id, routing_key, envelope FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
            [(BATCH as i64).into()],
        ))
        .await
        .map_err(db_err)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let exchange = topology.events_exchange();
    let mut ids = Vec::with_capacity(rows.len());
    let mut pending = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get("", "id").map_err(db_err)?;
        let key: String = row.try_get("", "routing_key").map_err(db_err)?;
        let json: serde_json::Value = row.try_get("", "envelope").map_err(db_err)?;
        ids.push(id);
        let Ok(envelope) = serde_json::from_value::<Envelope>(json) else {
            tracing::error!(outbox_id = id, "unreadable outbox row skipped");
            continue;
        };
        pending.push(
            publisher
                .send_raw(
                    &exchange,
                    &key,
                    &envelope.to_bytes(),
                    envelope_properties(&envelope),
                    false,
                )
                .await?,
        );
        kinds.push(envelope.kind);
    }
    // A confirm that never comes (a connection lost mid-batch) must not hold the relay
    // lock forever: `confirmed` gives up after `CONFIRM_TIMEOUT`, the transaction rolls
    // back, and the batch is published again later.
    for p in pending {
        confirmed(p).await?;
    }
    tx.execute_raw(stmt(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1)",
        [sea_orm::Value::Array(
            sea_orm::sea_query::ArrayType::BigInt,
            Some(Box::new(
                ids.iter()
                    .map(|i| sea_orm::Value::BigInt(Some(*i)))
                    .collect(),
            )),
        )],
    ))
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    let prefix = prefix_of(topology);
    for kind in kinds {
        metrics::counter!(EVENTS_PUBLISHED, "type" => kind, "prefix" => prefix.clone())
            .increment(1);
    }
    Ok(rows.len())
}

/// Sets `roster_outbox_lag_seconds` (age of the oldest unpublished event, 0 when none) and
/// `roster_outbox_pending`. A failed query leaves the last values (the relay logs errors).
async fn sample_lag(db: &DatabaseConnection, prefix: &str) {
    let row = db
        .query_one_raw(stmt(
            "SELECT count(*) AS pending, \
             COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS lag \
             FROM outbox WHERE published_at IS NULL",
            [],
        ))
        .await;
    let Ok(Some(row)) = row else {
        return;
    };
    let (Ok(pending), Ok(lag)) = (
        row.try_get::<i64>("", "pending"),
        row.try_get::<f64>("", "lag"),
    ) else {
        return;
    };
    metrics::gauge!(OUTBOX_LAG, "prefix" => prefix.to_owned()).set(lag.max(0.0));
    metrics::gauge!(OUTBOX_PENDING, "prefix" => prefix.to_owned()).set(pending as f64);
}
