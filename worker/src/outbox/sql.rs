//! The relay's statements, built with sea-query.

use super::RELAY_LOCK;
use common::db::sql::now;
use sea_orm::sea_query::{
    Expr, ExprTrait, Func, Order, PgFunc, Query, SelectStatement, UpdateStatement,
};
use uuid::Uuid;

/// The relay's lock, if no other relay holds it (released at the transaction's end); and,
/// for the rest of the transaction, neither bitmap nor sequential scans, so that
/// [`unpublished`] is a plain scan of `outbox_unpublished` whatever PostgreSQL knows of
/// the table.
///
/// Marking events published leaves their old row versions in `outbox_unpublished` until
/// vacuum (after a fifth of the table has changed). A bitmap scan visits every one of them
/// on every drain, and a sequential scan every row; a plan cached while the outbox was
/// small (a sequential scan) serves until the table is next analysed. A plain index scan
/// marks the entries of dead versions as it passes them, so the next drain skips them
/// (docs/performance.md, "The relay's scan").
pub fn try_lock() -> SelectStatement {
    let off = |setting: &str| Func::cust("set_config").arg(setting).arg("off").arg(true);
    Query::select()
        .expr_as(
            Func::cust("pg_try_advisory_xact_lock").arg(RELAY_LOCK),
            "locked",
        )
        .expr(off("enable_bitmapscan"))
        .expr(off("enable_seqscan"))
        .to_owned()
}

/// The oldest `limit` events not yet published nor set aside, in id order; each envelope
/// as its JSON text.
pub fn unpublished(limit: u64) -> SelectStatement {
    Query::select()
        .columns(["id", "routing_key"])
        .expr_as(Expr::col("envelope").cast_as("text"), "envelope")
        .from("outbox")
        .and_where(Expr::col("published_at").is_null())
        .and_where(Expr::col("unreadable_at").is_null())
        .order_by("id", Order::Asc)
        .limit(limit)
        .to_owned()
}

/// Stamps `column` (`published_at`, `unreadable_at`) of the events `ids` with now.
pub(super) fn mark(column: &'static str, ids: &[i64]) -> UpdateStatement {
    Query::update()
        .table("outbox")
        .value(column, now())
        .and_where(Expr::col("id").eq(PgFunc::any(bigints(ids))))
        .to_owned()
}

/// Which of `people` have an invite not yet sent.
pub(super) fn unsent_invites(people: &[Uuid]) -> SelectStatement {
    common::db::reads::unsent_invites_of(people)
        .column("user_id")
        .to_owned()
}

/// A `bigint[]` parameter.
fn bigints(ids: &[i64]) -> sea_orm::Value {
    sea_orm::Value::Array(
        sea_orm::sea_query::ArrayType::BigInt,
        Some(Box::new(
            ids.iter()
                .map(|i| sea_orm::Value::BigInt(Some(*i)))
                .collect(),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn the_relay_takes_the_oldest_unpublished_readable_events_under_its_lock() {
        let (lock, _) = try_lock().build(PostgresQueryBuilder);
        assert_eq!(
            lock,
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked", set_config($2, $3, $4), set_config($5, $6, $7)"#
        );
        let (batch, _) = unpublished(200).build(PostgresQueryBuilder);
        assert_eq!(
            batch,
            r#"SELECT "id", "routing_key", CAST("envelope" AS text) AS "envelope" FROM "outbox" WHERE "published_at" IS NULL AND "unreadable_at" IS NULL ORDER BY "id" ASC LIMIT $1"#
        );
        let (marked, _) = mark("published_at", &[1, 2]).build(PostgresQueryBuilder);
        assert_eq!(
            marked,
            r#"UPDATE "outbox" SET "published_at" = now() WHERE "id" = ANY($1)"#
        );
        let (invites, _) = unsent_invites(&[Uuid::nil()]).build(PostgresQueryBuilder);
        assert_eq!(
            invites,
            r#"SELECT "user_id" FROM "invites" WHERE "user_id" = ANY($1) AND "sent_at" IS NULL"#
        );
    }
}
