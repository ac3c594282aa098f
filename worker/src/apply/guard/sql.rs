//! The guard's statements. Those that change several tables are one statement each
//! (data-modifying `WITH`), so they apply together or not at all.

use common::db::sql::{ago, cte, minutes, now};
use sea_orm::sea_query::{
    Asterisk, DeleteStatement, Expr, ExprTrait, Func, InsertStatement, LockType, OnConflict, Query,
    SelectStatement, UpdateStatement, WithClause, WithQuery,
};
use uuid::Uuid;

/// The org's guard row with `values` set.
fn guard_set<const N: usize>(org_id: Uuid, values: [(&'static str, Expr); N]) -> UpdateStatement {
    Query::update()
        .table("deprovision_guards")
        .values(values)
        .and_where(of_org(org_id))
        .to_owned()
}

/// Every row of the org in `table` removed.
fn all_of_org(table: &'static str, org_id: Uuid) -> DeleteStatement {
    Query::delete()
        .from_table(table)
        .and_where(of_org(org_id))
        .to_owned()
}

fn of_org(org_id: Uuid) -> Expr {
    Expr::col("org_id").eq(org_id)
}

fn count() -> Expr {
    Func::count(Expr::col(Asterisk)).into()
}

/// The org's guard row, locked (`FOR UPDATE`).
pub(super) fn locked_guard(org_id: Uuid) -> SelectStatement {
    Query::select()
        .columns([
            "enabled",
            "threshold_percent",
            "min_count",
            "window_minutes",
            "tripped_at",
            "rejected_until",
        ])
        .from("deprovision_guards")
        .and_where(of_org(org_id))
        .lock(LockType::Update)
        .to_owned()
}

/// The org's guard row with the defaults, if the org exists and has none.
pub(super) fn create_guard(org_id: Uuid) -> InsertStatement {
    Query::insert()
        .into_table("deprovision_guards")
        .columns(["org_id"])
        .select_from(
            Query::select()
                .column("id")
                .from("orgs")
                .and_where(Expr::col("id").eq(org_id))
                .to_owned(),
        )
        .expect("one column, one value")
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned()
}

/// What a deactivation or deletion is decided on: `now`, the person's hold (`decision`,
/// and `held`, whether there is one), the deprovisions counted within the window
/// (`recent`), and the org's active people (`active`).
pub(super) fn counts(org_id: Uuid, user_id: Uuid, window_minutes: i32) -> SelectStatement {
    let hold = |what: Expr| {
        Query::select()
            .expr(what)
            .from("deprovision_holds")
            .and_where(of_org(org_id))
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned()
    };
    let recent = Query::select()
        .expr(count())
        .from("deprovisions")
        .and_where(of_org(org_id))
        .and_where(Expr::col("at").gt(ago(minutes(window_minutes))))
        .to_owned();
    let active = Query::select()
        .expr(count())
        .from("users")
        .and_where(of_org(org_id))
        .and_where(Expr::col("active"))
        .to_owned();
    Query::select()
        .expr_as(now(), "now")
        .expr_as(hold(Expr::col("decision")), "decision")
        .expr_as(hold(count()), "held")
        .expr_as(recent, "recent")
        .expr_as(active, "active")
        .to_owned()
}

/// A rejection that ran out: cleared, and the holds it refused with it.
pub(super) fn rearm(org_id: Uuid) -> WithQuery {
    let guard = guard_set(org_id, [("rejected_until", Expr::null())]);
    let refused = Query::delete()
        .from_table("deprovision_holds")
        .and_where(of_org(org_id))
        .and_where(Expr::col("decision").eq("rejected"))
        .to_owned();
    WithClause::new()
        .cte(cte("g", guard))
        .to_owned()
        .query(refused)
}

/// A deactivation or deletion that passes: the person's hold goes, as do the rows that
/// fell out of the window, and it is counted if `counted`.
pub(super) fn pass(org_id: Uuid, user_id: Uuid, counted: bool, window_minutes: i32) -> WithQuery {
    let hold = Query::delete()
        .from_table("deprovision_holds")
        .and_where(of_org(org_id))
        .and_where(Expr::col("user_id").eq(user_id))
        .to_owned();
    let old = Query::delete()
        .from_table("deprovisions")
        .and_where(of_org(org_id))
        .and_where(Expr::col("at").lte(ago(minutes(window_minutes))))
        .to_owned();
    let count = Query::insert()
        .into_table("deprovisions")
        .columns(["org_id", "user_id"])
        .select_from(
            Query::select()
                .expr(Expr::val(org_id))
                .expr(Expr::val(user_id))
                .and_where(Expr::val(counted))
                .to_owned(),
        )
        .expect("two columns, two values")
        .to_owned();
    WithClause::new()
        .cte(cte("h", hold))
        .cte(cte("o", old))
        .to_owned()
        .query(count)
}

/// The person's hold, new or tried again (a `decision` given replaces the stored one).
pub(super) fn record_hold(
    org_id: Uuid,
    user_id: Uuid,
    action: &str,
    decision: Option<&str>,
) -> InsertStatement {
    let stored = |col: &'static str| Expr::col(("deprovision_holds", col));
    Query::insert()
        .into_table("deprovision_holds")
        .columns(["org_id", "user_id", "action", "decision"])
        .values_panic([
            org_id.into(),
            user_id.into(),
            action.into(),
            decision.map(str::to_owned).into(),
        ])
        .on_conflict(
            OnConflict::columns(["org_id", "user_id"])
                .update_column("action")
                .value("last_attempt_at", now())
                .value("attempts", stored("attempts").add(1))
                .value(
                    "decision",
                    Func::coalesce([Expr::col(("excluded", "decision")), stored("decision")]),
                )
                .to_owned(),
        )
        .to_owned()
}

pub(super) fn trip(org_id: Uuid) -> UpdateStatement {
    guard_set(org_id, [("tripped_at", now())])
}

/// What is held, approved: the guard no longer tripped, the count started again, and
/// the held people (`RETURNING user_id`) pass on their next retry.
pub(super) fn approve(org_id: Uuid) -> WithQuery {
    let guard = guard_set(org_id, [("tripped_at", Expr::null())]);
    let counted = all_of_org("deprovisions", org_id);
    WithClause::new()
        .cte(cte("g", guard))
        .cte(cte("d", counted))
        .to_owned()
        .query(decide_held(org_id, "approved"))
}

/// What is held, rejected: refused until the window from the trip has passed.
pub(super) fn reject(org_id: Uuid) -> WithQuery {
    let guard = guard_set(
        org_id,
        [
            ("tripped_at", Expr::null()),
            (
                "rejected_until",
                Expr::col("tripped_at").add(minutes(Expr::col("window_minutes"))),
            ),
        ],
    );
    WithClause::new()
        .cte(cte("g", guard))
        .to_owned()
        .query(decide_held(org_id, "rejected"))
}

/// The undecided holds given `decision`, `RETURNING user_id`.
fn decide_held(org_id: Uuid, decision: &str) -> UpdateStatement {
    Query::update()
        .table("deprovision_holds")
        .value("decision", decision)
        .and_where(of_org(org_id))
        .and_where(Expr::col("decision").is_null())
        .returning_col("user_id")
        .to_owned()
}

pub(super) fn uncount(org_id: Uuid, user_id: Uuid) -> DeleteStatement {
    Query::delete()
        .from_table("deprovisions")
        .and_where(of_org(org_id))
        .and_where(Expr::col("user_id").eq(user_id))
        .to_owned()
}

/// The guard switched off: nothing tripped, held, refused or counted.
pub(super) fn switch_off(org_id: Uuid) -> WithQuery {
    let guard = guard_set(
        org_id,
        [
            ("tripped_at", Expr::null()),
            ("rejected_until", Expr::null()),
        ],
    );
    let counted = all_of_org("deprovisions", org_id);
    let holds = all_of_org("deprovision_holds", org_id);
    WithClause::new()
        .cte(cte("g", guard))
        .cte(cte("d", counted))
        .to_owned()
        .query(holds)
}

/// The settings given (`None` keeps the stored one).
pub(super) fn update_settings(
    org_id: Uuid,
    enabled: Option<bool>,
    threshold_percent: Option<i32>,
    min_count: Option<i32>,
    window_minutes: Option<i32>,
) -> UpdateStatement {
    let given = |value: sea_orm::Value, col: &'static str| {
        Expr::from(Func::coalesce([Expr::val(value), Expr::col(col)]))
    };
    guard_set(
        org_id,
        [
            ("enabled", given(enabled.into(), "enabled")),
            (
                "threshold_percent",
                given(threshold_percent.into(), "threshold_percent"),
            ),
            ("min_count", given(min_count.into(), "min_count")),
            (
                "window_minutes",
                given(window_minutes.into(), "window_minutes"),
            ),
        ],
    )
}

#[cfg(test)]
mod tests;
