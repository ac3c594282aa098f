//! The org chart's statements. A link and its cycle check are one statement (a recursive
//! `WITH` whose update links only when the check passes), and so are the links of all the
//! reports waiting for a manager.

use common::db::sql::cte;
use common::{
    db::sql::{any, now},
    org_chart::{self, MatchKey},
};
use sea_orm::sea_query::{
    CommonTableExpression, Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement,
    TableRef, UnionType, UpdateStatement, WithClause, WithQuery,
};
use serde_json::json;
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

/// `hashtextextended('<org>:<value>', 7262810515)`: the advisory lock key of a value in
/// the org.
fn value_key(org_id: Uuid, value: Expr) -> Expr {
    Expr::cust_with_exprs(
        "hashtextextended($1::text || ':' || $2, 7262810515)",
        [Expr::val(org_id), value],
    )
}

/// The lock keys of `values`, each with whether it is wanted `exclusive`: `h`, `x`.
fn value_keys(org_id: Uuid, values: &[String], exclusive: bool) -> SelectStatement {
    let elements =
        Func::cust("jsonb_array_elements_text").arg(Expr::val(json!(values)).cast_as("jsonb"));
    Query::select()
        .expr_as(value_key(org_id, Expr::col(("v", "value"))), "h")
        .expr_as(Expr::val(exclusive), "x")
        .from_function(elements, "v")
        .to_owned()
}

/// The org's `manager_match` as JSON (`keys`), after locking the values waited on
/// (shared) and arrived with (exclusive), a value in both exclusive, one at a time in
/// hash order (`locked`, their count).
pub(super) fn lock_values(
    org_id: Uuid,
    waits_on: &[String],
    arrives_with: &[String],
) -> SelectStatement {
    let values = value_keys(org_id, waits_on, false)
        .union(UnionType::All, value_keys(org_id, arrives_with, true))
        .to_owned();
    let per_key = Query::select()
        .column(("a", "h"))
        .expr_as(Func::cust("bool_or").arg(Expr::col(("a", "x"))), "x")
        .from_subquery(values, "a")
        .group_by_col(("a", "h"))
        .order_by(("a", "h"), Order::Asc)
        .to_owned();
    let key = || Expr::col(("s", "h"));
    let lock = Expr::case(
        Expr::col(("s", "x")),
        Func::cust("pg_advisory_xact_lock").arg(key()),
    )
    .finally(Func::cust("pg_advisory_xact_lock_shared").arg(key()));
    let locked = Query::select()
        .expr(Func::count(lock))
        .from_subquery(per_key, "s")
        .to_owned();
    Query::select()
        .expr_as(
            Func::cust("to_jsonb").arg(Expr::col(("o", "manager_match"))),
            "keys",
        )
        .expr_as(locked, "locked")
        .from_as("orgs", "o")
        .and_where(Expr::col(("o", "id")).eq(org_id))
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

/// `ARRAY(SELECT jsonb_array_elements_text(<values>::jsonb))`: `values` as a `text[]`.
fn text_array(values: &[String]) -> Expr {
    Expr::cust_with_exprs(
        "ARRAY(SELECT jsonb_array_elements_text($1::jsonb))",
        [Expr::val(json!(values))],
    )
}

/// People `r` of the org other than `user_id` waiting on a value among `all` (lowercased),
/// equal to one of `exact` (keys compared exactly) or, lowercased, to one of `folded` (the
/// others). The first test is the `users_waiting_manager` index.
pub(super) fn waiting(
    org_id: Uuid,
    user_id: Uuid,
    (all, exact, folded): &(Vec<String>, Vec<String>, Vec<String>),
) -> Expr {
    let r = |col: &'static str| Expr::col(("r", col));
    let lower_ref = || Func::lower(r("manager_ref"));
    r("org_id")
        .eq(org_id)
        .and(r("id").ne(user_id))
        .and(r("manager_id").is_null())
        .and(r("manager_ref").is_not_null())
        .and(any(lower_ref(), text_array(all)))
        .and(any(r("manager_ref"), text_array(exact)).or(any(lower_ref(), text_array(folded))))
}

/// Whether anyone is `waiting` (`found`).
pub(super) fn any_waiting(waiting: Expr) -> SelectStatement {
    let someone = Query::select()
        .expr(Expr::cust("1"))
        .from_as("users", "r")
        .and_where(waiting)
        .to_owned();
    Query::select()
        .expr_as(Expr::exists(someone), "found")
        .to_owned()
}

/// Links everyone `waiting` to `manager_id`, but those above the manager (a cycle), with a
/// new version. Rows: the linked (`linked` true, `id`, `version`, `user_name`), then those
/// left waiting (`linked` false, `id`, `user_name`, `manager_ref`).
pub(super) fn link_waiting(manager_id: Uuid, waiting: Expr) -> WithQuery {
    let manager = Query::select()
        .columns(["id", "manager_id"])
        .from("users")
        .and_where(Expr::col("id").eq(manager_id))
        .to_owned();
    let above = Query::select().column("id").from("up").to_owned();
    let cand = Query::select()
        .columns([("r", "id"), ("r", "user_name"), ("r", "manager_ref")])
        .expr_as(Expr::col(("r", "id")).in_subquery(above), "cycle")
        .from_as("users", "r")
        .and_where(waiting)
        .to_owned();
    let linked = Query::update()
        .table(TableRef::from("users").alias("u"))
        .value("manager_id", manager_id)
        .value("version", Expr::col(("u", "version")).add(1))
        .value("updated_at", now())
        .from("cand")
        .and_where(Expr::col(("u", "id")).equals(("cand", "id")))
        .and_where(Expr::col(("cand", "cycle")).not())
        .and_where(Expr::col(("u", "manager_id")).is_null())
        .and_where(Expr::col(("u", "manager_ref")).equals(("cand", "manager_ref")))
        .returning(Query::returning().columns([("u", "id"), ("u", "version"), ("u", "user_name")]))
        .to_owned();
    let left_waiting = Query::select()
        .expr(Expr::val(false))
        .column("id")
        .expr(Expr::null())
        .columns(["user_name", "manager_ref"])
        .from("cand")
        .and_where(Expr::col("cycle"))
        .to_owned();
    let result = Query::select()
        .expr_as(Expr::val(true), "linked")
        .columns(["id", "version", "user_name"])
        .expr_as(Expr::null().cast_as("text"), "manager_ref")
        .from("linked")
        .union(UnionType::All, left_waiting)
        .to_owned();
    WithClause::new()
        .recursive(true)
        .cte(up(manager))
        .cte(cte("cand", cand))
        .cte(cte("linked", linked))
        .to_owned()
        .query(result)
}

#[cfg(test)]
mod tests;
