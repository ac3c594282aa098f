//! Fragments of PostgreSQL that sea-query's builders cannot spell, for statements built with
//! sea-query: each takes its operands as expressions, so a statement's placeholders are
//! still numbered by the builder, never by hand. (`$1` inside a fragment names the
//! fragment's own first operand.)

use sea_orm::{
    DbBackend, Statement,
    sea_query::{
        CommonTableExpression, Expr, PostgresQueryBuilder, QueryStatementWriter, SelectStatement,
        SubQueryStatement,
    },
};

/// `make_interval(secs => …)`: a window in seconds (PostgreSQL's named argument, which
/// sea-query's function calls cannot spell).
pub fn seconds(secs: impl Into<Expr>) -> Expr {
    Expr::cust_with_exprs("make_interval(secs => $1)", [secs.into()])
}

/// `make_interval(mins => …)`: a window in minutes.
pub fn minutes(mins: impl Into<Expr>) -> Expr {
    Expr::cust_with_exprs("make_interval(mins => $1)", [mins.into()])
}

/// `make_interval(days => …)`: a window in days.
pub fn days(days: impl Into<Expr>) -> Expr {
    Expr::cust_with_exprs("make_interval(days => $1)", [days.into()])
}

/// `now() - <interval>`: the moment a window reaches back to.
pub fn ago(interval: Expr) -> Expr {
    Expr::cust_with_exprs("now() - $1", [interval])
}

/// `now()`.
pub fn now() -> Expr {
    Expr::cust("now()")
}

/// `ARRAY(…)` of the strings of a JSON array, in the array's order (a `text[]` from a
/// `jsonb` list; `WITH ORDINALITY` keeps the order, which the builders cannot spell).
pub fn text_array(json: impl Into<Expr>) -> Expr {
    Expr::cust_with_exprs(
        "ARRAY(SELECT k FROM jsonb_array_elements_text($1) WITH ORDINALITY AS t (k, n) ORDER BY n)",
        [json.into()],
    )
}

/// `name AS (statement)`, for a `WITH` clause (the statement may write: PostgreSQL runs a
/// data-modifying part once, whatever reads it).
pub fn cte(name: &str, statement: impl Into<SubQueryStatement>) -> CommonTableExpression {
    CommonTableExpression::new()
        .table_name(name.to_owned())
        .query(statement)
        .to_owned()
}

/// Asserts that `statement` renders as `sql` with `values` bound parameters: for the tests
/// that pin a statement's SQL.
#[track_caller]
pub fn assert_sql(statement: &impl QueryStatementWriter, sql: &str, values: usize) {
    let (built, bound) = statement.build(PostgresQueryBuilder);
    assert_eq!(built, sql);
    assert_eq!(bound.0.len(), values, "{built}");
}

/// `query` rendered for PostgreSQL, with `FOR KEY SHARE OF <table>` added after its own
/// locking clause: sea-query writes one locking clause a statement. The clause binds no
/// value, so the builder's numbering holds.
pub fn and_key_share(query: &SelectStatement, table: &str) -> Statement {
    let mut statement = DbBackend::Postgres.build(query);
    statement
        .sql
        .push_str(&format!(r#" FOR KEY SHARE OF "{table}""#));
    statement
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{ExprTrait, Query};

    #[test]
    fn fragments_take_the_builders_numbering() {
        let q = Query::select()
            .expr(Expr::val(7))
            .from("t")
            .and_where(Expr::col("at").lt(ago(minutes(5))))
            .and_where(Expr::col("id").eq(uuid::Uuid::nil()))
            .to_owned();
        let (sql, values) = q.build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT $1 FROM "t" WHERE "at" < (now() - make_interval(mins => $2)) AND "id" = $3"#
        );
        assert_eq!(values.0.len(), 3);
    }
}
