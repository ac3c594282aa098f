//! Rows past their retention window: for each table, the `SELECT` of the keys that are
//! expired (the table aliased `t`), and the batched `DELETE … FOR UPDATE SKIP LOCKED`
//! that removes them.

use super::Windows;
pub(crate) use common::db::sql::{ago, days, seconds};
use sea_orm::sea_query::{
    DeleteStatement, Expr, ExprTrait, Func, JoinType, LockBehavior, LockType, Query,
    SelectStatement,
};
use std::time::Duration;

/// One kind of expired row: its table, what the dry run calls it, its key, and the
/// `SELECT` of the expired keys given the window in seconds.
pub(super) struct Target {
    pub table: &'static str,
    pub what: &'static str,
    key: &'static str,
    expired: fn(f64) -> SelectStatement,
}

pub(super) const TARGETS: [Target; 4] = [
    Target {
        table: "outbox",
        what: "published events older than OUTBOX_RETENTION",
        key: "id",
        expired: |secs| keys("outbox", "id", "published_at", secs),
    },
    Target {
        table: "processed_commands",
        what: "command ids and stored replies older than PROCESSED_COMMANDS_RETENTION",
        key: "command_id",
        expired: |secs| keys("processed_commands", "command_id", "processed_at", secs),
    },
    Target {
        table: "audit_log",
        what: "activity entries older than ACTIVITY_RETENTION or the org's own window",
        key: "id",
        expired: expired_activity,
    },
    Target {
        table: "invites",
        what: "invites accepted or expired longer ago than INVITE_RETENTION",
        key: "id",
        expired: expired_invites,
    },
];

impl Target {
    /// The window `windows` gives this table.
    pub fn window(&self, windows: &Windows) -> Duration {
        match self.table {
            "outbox" => windows.outbox,
            "processed_commands" => windows.processed_commands,
            "audit_log" => windows.activity,
            _ => windows.invites,
        }
    }

    /// The keys past `secs`, as a `SELECT` to count or to delete by.
    pub fn expired(&self, secs: f64) -> SelectStatement {
        (self.expired)(secs)
    }

    /// Deletes at most `limit` expired rows, skipping those another worker (or a command)
    /// holds.
    pub fn delete_batch(&self, secs: f64, limit: u64) -> DeleteStatement {
        let mut batch = self.expired(secs);
        batch.limit(limit).lock_with_tables_behavior(
            LockType::Update,
            ["t"],
            LockBehavior::SkipLocked,
        );
        Query::delete()
            .from_table(self.table)
            .and_where(Expr::col(self.key).in_subquery(batch))
            .to_owned()
    }
}

/// `SELECT t.<key> FROM <table> t WHERE t.<at> < now() - <secs> seconds`.
fn keys(table: &'static str, key: &'static str, at: &'static str, secs: f64) -> SelectStatement {
    Query::select()
        .column(("t", key))
        .from_as(table, "t")
        .and_where(Expr::col(("t", at)).lt(ago(seconds(secs))))
        .to_owned()
}

/// Activity entries past the org's own window, else `ACTIVITY_RETENTION`. The first
/// condition (the shortest window of all) lets the index on `created_at` do the work; the
/// second applies each org's own.
fn expired_activity(secs: f64) -> SelectStatement {
    let shortest = Expr::cust_with_exprs(
        "LEAST($1::float8, (SELECT min(activity_retention_days) FROM orgs) * 86400.0::float8)",
        [Expr::val(secs)],
    );
    let own = Func::coalesce([
        days(Expr::col(("o", "activity_retention_days"))),
        seconds(secs),
    ]);
    Query::select()
        .column(("t", "id"))
        .from_as("audit_log", "t")
        .join_as(
            JoinType::LeftJoin,
            "orgs",
            "o",
            Expr::col(("o", "id")).equals(("t", "org_id")),
        )
        .and_where(Expr::col(("t", "created_at")).lt(ago(seconds(shortest))))
        .and_where(Expr::col(("t", "created_at")).lt(ago(own.into())))
        .to_owned()
}

/// Invites accepted, or sent and expired unaccepted, longer ago than the window. An
/// unsent invite is pending whatever its `expires_at` (the mailer gives a link an expiry
/// before its mail leaves, and sets it again once the mail is out), so it stays.
fn expired_invites(secs: f64) -> SelectStatement {
    let ended = Func::coalesce([
        Expr::col(("t", "accepted_at")),
        Expr::col(("t", "expires_at")),
    ]);
    Query::select()
        .column(("t", "id"))
        .from_as("invites", "t")
        .and_where(Expr::expr(ended).lt(ago(seconds(secs))))
        .and_where(Expr::col(("t", "sent_at")).is_not_null())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::db::sql::assert_sql;

    #[test]
    fn a_batch_deletes_expired_keys_skipping_locked_rows() {
        assert_sql(
            &TARGETS[0].delete_batch(60.0, 500),
            r#"DELETE FROM "outbox" WHERE "id" IN (SELECT "t"."id" FROM "outbox" AS "t" WHERE "t"."published_at" < (now() - make_interval(secs => $1)) LIMIT $2 FOR UPDATE OF "t" SKIP LOCKED)"#,
            2,
        );
    }

    #[test]
    fn activity_honours_the_shortest_window_then_the_orgs_own() {
        assert_sql(
            &TARGETS[2].expired(86400.0),
            r#"SELECT "t"."id" FROM "audit_log" AS "t" LEFT JOIN "orgs" AS "o" ON "o"."id" = "t"."org_id" WHERE "t"."created_at" < (now() - make_interval(secs => LEAST($1::float8, (SELECT min(activity_retention_days) FROM orgs) * 86400.0::float8))) AND "t"."created_at" < (now() - COALESCE(make_interval(days => "o"."activity_retention_days"), make_interval(secs => $2)))"#,
            2,
        );
    }

    #[test]
    fn invites_end_when_accepted_else_when_they_expire() {
        assert_sql(
            &TARGETS[3].expired(1.0),
            r#"SELECT "t"."id" FROM "invites" AS "t" WHERE COALESCE("t"."accepted_at", "t"."expires_at") < (now() - make_interval(secs => $1)) AND "t"."sent_at" IS NOT NULL"#,
            1,
        );
    }
}
