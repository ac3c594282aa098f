//! The org chart's statements. A link and its cycle check are one statement (a recursive
//! `WITH` whose update links only when the check passes). Those every create runs — the
//! value locks and the links of the reports waiting for a manager — are hand-written in
//! `hot_sql`.

use common::{
    db::sql::cte,
    org_chart::{self, MatchKey},
};
use sea_orm::sea_query::{
    CommonTableExpression, Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement,
    TableRef, UnionType, UpdateStatement, WithClause, WithQuery,
};
use uuid::Uuid;

/// `up (id, manager_id)`: the person `start` selects, then their manager, and theirs, up
/// the chart (a recursive `WITH` term).
fn up(mut start: SelectStatement) -> CommonTableExpression {
    let next = Query::select()
        .columns([("u", "id"), ("u", "manager_id")])
        .from_as("users", "u")
        .join(
            JoinType::InnerJoin,
            "up",
            Expr::col(("u", "id")).equals(("up", "manager_id")),
        )
        .to_owned();
    start.union(UnionType::Distinct, next);
    cte("up", start).columns(["id", "manager_id"]).to_owned()
}

/// The person's link and the value it came from, both cleared.
pub(super) fn clear_link(org_id: Uuid, user_id: Uuid) -> UpdateStatement {
    Query::update()
        .table("users")
        .value("manager_id", Expr::null())
        .value("manager_ref", Expr::null())
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Expr::col("id").eq(user_id))
        .to_owned()
}

/// Takes the org's chart lock (until commit).
pub(super) fn lock_chart(org_id: Uuid) -> SelectStatement {
    let key = Expr::cust_with_exprs(
        "hashtextextended('roster.org_chart:' || $1::text, 0)",
        [Expr::val(org_id)],
    );
    Query::select()
        .expr(Func::cust("pg_advisory_xact_lock").arg(key))
        .to_owned()
}

/// The first person of the org matching `raw` by the keys in order (`NULL` if none).
pub(super) fn candidate(org_id: Uuid, keys: &[MatchKey], raw: &str) -> Expr {
    let mut firsts: Vec<Expr> = org_chart::applicable(keys, raw)
        .into_iter()
        .map(|k| {
            let matches = match k {
                MatchKey::Id => Expr::col("id").eq(Uuid::parse_str(raw).unwrap_or_default()),
                MatchKey::ExternalId => Expr::col("external_id").eq(raw),
                MatchKey::Email => Func::lower(Expr::col("email")).eq(Func::lower(raw)),
                MatchKey::UserName => Func::lower(Expr::col("user_name")).eq(Func::lower(raw)),
                MatchKey::EmployeeNumber => Expr::cust("profile->>'employee_number'").eq(raw),
            };
            Query::select()
                .column("id")
                .from("users")
                .and_where(Expr::col("org_id").eq(org_id))
                .and_where(matches)
                .order_by("id", Order::Asc)
                .limit(1)
                .to_owned()
                .into()
        })
        .collect();
    match firsts.len() {
        0 => Expr::null().cast_as("uuid"),
        1 => firsts.remove(0),
        _ => Func::coalesce(firsts).into(),
    }
}

/// Links `user_id` to `candidate`, found for `raw`, unless that closes a cycle; one row:
/// the candidate (`manager_id`), whether it would (`cycle`), and its `manager_user_name`.
pub(super) fn link_own(org_id: Uuid, user_id: Uuid, raw: &str, candidate: Expr) -> WithQuery {
    let cand = Query::select().expr_as(candidate, "id").to_owned();
    let first = Query::select()
        .columns([("u", "id"), ("u", "manager_id")])
        .from_as("users", "u")
        .join(
            JoinType::InnerJoin,
            "cand",
            Expr::col(("u", "id")).equals(("cand", "id")),
        )
        .to_owned();
    let above = Query::select()
        .expr(Expr::cust("1"))
        .from("up")
        .and_where(Expr::col(("up", "id")).eq(user_id))
        .to_owned();
    let decision = Query::select()
        .column(("cand", "id"))
        .expr_as(Expr::exists(above), "cycle")
        .from("cand")
        .to_owned();
    let linked = Query::update()
        .table("users")
        .value("manager_id", Expr::col(("d", "id")))
        .value("manager_ref", raw)
        .from(TableRef::from("decision").alias("d"))
        .and_where(Expr::col(("users", "org_id")).eq(org_id))
        .and_where(Expr::col(("users", "id")).eq(user_id))
        .and_where(Expr::col(("d", "cycle")).not())
        .returning_col(("users", "id"))
        .to_owned();
    let result = Query::select()
        .expr_as(Expr::col(("d", "id")), "manager_id")
        .column(("d", "cycle"))
        .expr_as(Expr::col(("m", "user_name")), "manager_user_name")
        .from_as("decision", "d")
        .join_as(
            JoinType::LeftJoin,
            "users",
            "m",
            Expr::col(("m", "id")).equals(("d", "id")),
        )
        .to_owned();
    WithClause::new()
        .recursive(true)
        .cte(cte("cand", cand))
        .cte(up(first))
        .cte(cte("decision", decision))
        .cte(cte("linked", linked))
        .to_owned()
        .query(result)
}

#[cfg(test)]
mod tests;
