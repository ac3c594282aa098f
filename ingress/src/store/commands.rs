//! The fence of a command that got no reply (`commands`): whether it committed by its
//! deadline. Hand-written, because it is PostgreSQL's advisory lock and clock, which no
//! query builder states: the worker takes the same lock while it applies the command.

use chrono::{DateTime, Utc};
use common::db::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;

/// Waits for the command's lock (so a commit in progress finishes), then reads whether
/// PostgreSQL's clock has passed `apply_by` and the reply the command stored, if any.
pub async fn fence(
    db: &DatabaseConnection,
    command_id: Uuid,
    org_id: Option<Uuid>,
    apply_by: DateTime<Utc>,
) -> Result<(bool, Option<Value>), DbErr> {
    let tx = db.begin().await?;
    tx.execute_raw(stmt("SET LOCAL lock_timeout = '2s'", []))
        .await?;
    tx.query_one_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))::text AS locked",
        [command_id.into()],
    ))
    .await?;
    // A new statement, so a new snapshot: it sees a commit the lock waited for.
    let row = tx
        .query_one_raw(stmt(
            "SELECT clock_timestamp() > $2 AS passed, \
                    (SELECT reply FROM processed_commands \
                      WHERE command_id = $1 AND org_id IS NOT DISTINCT FROM $3) AS reply",
            [command_id.into(), apply_by.into(), org_id.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("fence".into()))?;
    tx.commit().await?;
    Ok((row.try_get("", "passed")?, row.try_get("", "reply")?))
}
