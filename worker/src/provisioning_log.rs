//! The provisioning log's writer: consumes the ingress's `provisioning_log.entries`
//! messages from `<p>.provisioning-log` and stores each message's entries in one statement
//! (a redelivered message inserts nothing twice: the entries' ids are unique), and prunes
//! entries older than `PROVISIONING_LOG_RETENTION_DAYS`.

use crate::gc::{ago, seconds};
use common::{
    amqp::{
        Topology,
        consume::{ConsumeOptions, Ended, ack, consume_until, requeue},
        link::Link,
    },
    db::{redact, stmt},
    messages::{Envelope, PROVISIONING_LOG, ProvisioningLogEntries},
    metrics::{PROVISIONING_LOG_STORED, ROWS_PRUNED},
};
use lapin::{message::Delivery, options::BasicRejectOptions};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr,
    sea_query::{DeleteStatement, Expr, ExprTrait, Query},
};
use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};
use tokio::sync::watch;

/// How often the prune runs (and once at start).
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Rows deleted per statement, so a prune never holds long locks.
const PRUNE_CHUNK: u64 = 5000;

/// Consumes the provisioning-log queue until `stop` turns true, on connections from
/// `link` (a lost one is waited for, as the command consumer replaces it).
pub async fn consume(
    link: Link,
    topology: Topology,
    db: DatabaseConnection,
    mut stop: watch::Receiver<bool>,
) {
    let prefix = common::metrics::prefix_of(&topology);
    let queue = topology.provisioning_log_queue();
    loop {
        if *stop.borrow() {
            return;
        }
        let conn = link.current();
        let mut stopped = stop.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        tokio::pin!(shutdown);
        let (db, prefix) = (db.clone(), prefix.clone());
        let own_user: Arc<str> = conn.status().username().into();
        let ended = consume_until(
            &conn,
            &topology,
            ConsumeOptions {
                queue: &queue,
                tag_prefix: "provisioning-log",
                // One batch at a time: the log must not take database connections from
                // the commands.
                prefetch: 4,
                concurrency: 1,
                consuming: Arc::new(AtomicBool::new(false)),
                watch: Vec::new(),
            },
            shutdown.as_mut(),
            move |delivery| handle(db.clone(), prefix.clone(), own_user.clone(), delivery),
        )
        .await;
        match ended {
            Ok(Ended::Shutdown) => return,
            Ok(Ended::Lost) => {}
            Err(e) => tracing::warn!(error = %e, "consuming the provisioning log failed"),
        }
        // The command consumer replaces a lost connection; wait a moment for it.
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn handle(db: DatabaseConnection, prefix: String, own_user: Arc<str>, delivery: Delivery) {
    // Only Roster's own ingress writes an org's log (the broker vouches for `user_id`).
    let sender = delivery.properties.user_id().as_ref().map(|u| u.as_str());
    let decoded = match decode(&delivery.data) {
        Ok(_) if sender != Some(&*own_user) => Err(format!(
            "published by {sender:?}, not by Roster's broker user"
        )),
        other => other,
    };
    let entries = match decoded {
        Ok(e) => e,
        Err(reason) => {
            // Nobody awaits these; a refused one goes to the dead-letter queue.
            tracing::warn!(reason = %reason, "provisioning-log message refused; dead-lettered");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    match store(&db, &entries).await {
        Ok(n) => {
            metrics::counter!(PROVISIONING_LOG_STORED, "prefix" => prefix).increment(n);
            if let Err(e) = ack(&delivery).await {
                tracing::debug!(error = %e, "provisioning-log ack failed; it will be stored again, once");
            }
        }
        Err(e) => {
            // Back to the queue after a pause; the delivery limit bounds how often.
            tracing::warn!(error = %redact(&e), "storing provisioning-log entries failed; requeued");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = requeue(&delivery).await;
        }
    }
}

fn decode(data: &[u8]) -> Result<ProvisioningLogEntries, String> {
    let env = Envelope::from_bytes(data).map_err(|e| e.to_string())?;
    if env.kind != PROVISIONING_LOG {
        return Err(format!("unexpected type {:?}", env.kind));
    }
    serde_json::from_value(env.payload).map_err(|e| format!("payload: {e}"))
}

/// Inserts the entries in one statement; returns how many were new.
async fn store(db: &DatabaseConnection, batch: &ProvisioningLogEntries) -> Result<u64, DbErr> {
    if batch.entries.is_empty() {
        return Ok(0);
    }
    // Written by hand: a record-set function with a column list and a `FOR KEY SHARE` CTE
    // feeding an INSERT, which sea-query cannot express; it has one parameter.
    // One statement for the batch: the entries as one JSON array, turned into rows. Entries
    // of an org removed while they were on the way are dropped; the key-share lock makes
    // them wait for a removal under way (`org::delete_org` locks the org's row).
    let rows = serde_json::to_value(&batch.entries).unwrap_or_default();
    let result = db
        .execute_raw(stmt(
            "WITH t AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(id uuid, org_id uuid, \
                  at timestamptz, method text, path text, resource_type text, resource_id uuid, \
                  status smallint, detail text, duration_ms int, correlation_id text)), \
             live AS (SELECT id FROM orgs WHERE id IN (SELECT org_id FROM t) FOR KEY SHARE) \
             INSERT INTO provisioning_log (id, org_id, at, method, path, resource_type, resource_id, \
                 status, detail, duration_ms, correlation_id) \
             SELECT t.id, t.org_id, t.at, t.method, t.path, t.resource_type, t.resource_id, \
                    t.status, t.detail, t.duration_ms, t.correlation_id \
             FROM t JOIN live ON live.id = t.org_id \
             ON CONFLICT (id) DO NOTHING",
            [rows.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Deletes entries older than the retention every `interval` (and once at start), until
/// `stop` turns true; counts what it deleted in `roster_rows_pruned_total{table=…}`.
pub async fn prune(
    db: DatabaseConnection,
    retention: Duration,
    prefix: String,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match prune_once(&db, retention).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(rows = n, "provisioning log pruned");
                metrics::counter!(ROWS_PRUNED, "table" => "provisioning_log", "prefix" => prefix.clone())
                    .increment(n);
            }
            Err(e) => tracing::warn!(error = %redact(&e), "pruning the provisioning log failed"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One prune pass: deletes in chunks until nothing older than `retention` is left.
pub async fn prune_once(db: &DatabaseConnection, retention: Duration) -> Result<u64, DbErr> {
    let delete = prune_chunk(retention);
    let mut total = 0;
    loop {
        let n = db.execute(&delete).await?.rows_affected();
        total += n;
        if n < PRUNE_CHUNK {
            return Ok(total);
        }
    }
}

/// Deletes up to `PRUNE_CHUNK` entries older than `retention`.
fn prune_chunk(retention: Duration) -> DeleteStatement {
    let secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let old = Query::select()
        .column("id")
        .from("provisioning_log")
        .and_where(Expr::col("at").lt(ago(seconds(secs as f64))))
        .limit(PRUNE_CHUNK)
        .to_owned();
    Query::delete()
        .from_table("provisioning_log")
        .and_where(Expr::col("id").in_subquery(old))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn a_prune_deletes_one_chunk_of_old_entries() {
        let (sql, values) = prune_chunk(Duration::from_secs(86400)).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"DELETE FROM "provisioning_log" WHERE "id" IN (SELECT "id" FROM "provisioning_log" WHERE "at" < (now() - make_interval(secs => $1)) LIMIT $2)"#
        );
        assert_eq!(values.0.len(), 2);
    }
}
