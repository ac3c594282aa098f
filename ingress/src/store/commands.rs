//! The fence of a command that got no reply (`commands`): whether it committed by its
//! deadline. It takes the command's advisory lock, the one the worker holds while it
//! applies the command (`roster_before_deadline`, m0005_deadlines.sql), then reads
//! PostgreSQL's clock.

use chrono::{DateTime, Utc};
use common::db::stmt;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait,
    sea_query::{BinOper, Expr, ExprTrait, Func, Query, SelectStatement},
};
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
    tx.query_one(&lock(command_id)).await?;
    // A new statement, so a new snapshot: it sees a commit the lock waited for.
    let row = tx
        .query_one(&outcome(command_id, org_id, apply_by))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("fence".into()))?;
    tx.commit().await?;
    Ok((row.try_get("", "passed")?, row.try_get("", "reply")?))
}

/// Takes the command's lock until the transaction ends, keyed as the worker keys it.
/// (The lock's `void` is read as text: `locked`.)
fn lock(command_id: Uuid) -> SelectStatement {
    let key = Func::cust("hashtextextended")
        .arg(Expr::val(command_id).cast_as("text"))
        .arg(Expr::cust("0"));
    Query::select()
        .expr_as(
            Func::cust("pg_advisory_xact_lock").arg(key).cast_as("text"),
            "locked",
        )
        .to_owned()
}

/// `passed`: whether PostgreSQL's clock is past `apply_by` (`clock_timestamp()`, not the
/// transaction's start); `reply`: the command's stored reply, if any.
fn outcome(command_id: Uuid, org_id: Option<Uuid>, apply_by: DateTime<Utc>) -> SelectStatement {
    let reply = Query::select()
        .column("reply")
        .from("processed_commands")
        .and_where(Expr::col("command_id").eq(command_id))
        .and_where(Expr::col("org_id").binary(BinOper::Custom("IS NOT DISTINCT FROM"), org_id))
        .to_owned();
    Query::select()
        .expr_as(Func::cust("clock_timestamp").gt(apply_by), "passed")
        .expr_as(reply, "reply")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn the_fence_takes_the_workers_lock_then_reads_the_clock_and_reply() {
        let (sql, values) = lock(Uuid::nil()).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT CAST(pg_advisory_xact_lock(hashtextextended(CAST($1 AS text), 0)) AS text) AS "locked""#
        );
        assert_eq!(values.0.len(), 1);
        let (id, by) = (Uuid::new_v4(), Utc::now());
        let (sql, values) = outcome(id, None, by).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT clock_timestamp() > $1 AS "passed", (SELECT "reply" FROM "processed_commands" WHERE "command_id" = $2 AND ("org_id" IS NOT DISTINCT FROM $3)) AS "reply""#
        );
        // No org binds a NULL, which IS NOT DISTINCT FROM matches.
        assert_eq!(
            values.0,
            vec![by.into(), id.into(), sea_orm::Value::Uuid(None)]
        );
    }
}
