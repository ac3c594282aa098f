//! The SCIM resources' reads by id, and the members of a page of groups. Every Okta and
//! Entra lookup and every import page goes through these (the measured hot path,
//! docs/performance.md), so each is one statement: by primary key, or `= ANY` of the
//! page's ids.

use super::page::Table;
use common::{
    db::{reads::org_row, uuid_array},
    scim::model::MemberRef,
};
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Expr, ExprTrait, Func, JoinType, Order, PgFunc, Query, SelectStatement},
};
use std::collections::HashMap;
use uuid::Uuid;

/// The org's row `id` in `table` (`users` or `groups`), if it has one: by primary key.
pub async fn by_id<M: FromQueryResult>(
    db: &impl ConnectionTrait,
    table: &Table,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<M>, DbErr> {
    let row = db.query_one(&org_row(table.name, org_id, id)).await?;
    row.map(|r| M::from_query_result(&r, "")).transpose()
}

/// The members of each of `group_ids`, in the order they were added, with a display
/// name: one query for a whole page of groups (as `user_groups` is for users).
pub async fn group_members(
    db: &impl ConnectionTrait,
    group_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<MemberRef>>, DbErr> {
    let mut out: HashMap<Uuid, Vec<MemberRef>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(out);
    }
    let rows = db.query_all(&group_members_query(group_ids)).await?;
    for r in rows {
        out.entry(r.try_get("", "group_id")?)
            .or_default()
            .push(MemberRef {
                id: r.try_get("", "id")?,
                display: r.try_get("", "display")?,
            });
    }
    Ok(out)
}

/// `group_id`, member `id` and `display` (display name, else userName) of the groups'
/// members, oldest membership first.
fn group_members_query(group_ids: &[Uuid]) -> SelectStatement {
    Query::select()
        .columns([("m", "group_id"), ("u", "id")])
        .expr_as(
            Func::coalesce([
                Expr::col(("u", "display_name")),
                Expr::col(("u", "user_name")),
            ]),
            "display",
        )
        .from_as("group_members", "m")
        .join_as(
            JoinType::InnerJoin,
            "users",
            "u",
            Expr::col(("u", "id")).equals(("m", "user_id")),
        )
        .and_where(Expr::col(("m", "group_id")).eq(PgFunc::any(uuid_array(group_ids))))
        .order_by(("m", "added_at"), Order::Asc)
        .order_by(("u", "id"), Order::Asc)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn reads_by_id_and_by_a_page_of_groups() {
        let (sql, values) = org_row("groups", Uuid::nil(), Uuid::nil()).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT * FROM "groups" WHERE "org_id" = $1 AND "id" = $2"#
        );
        assert_eq!(values.0.len(), 2);
        let (sql, values) =
            group_members_query(&[Uuid::nil(), Uuid::nil()]).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "m"."group_id", "u"."id", COALESCE("u"."display_name", "u"."user_name") AS "display" FROM "group_members" AS "m" INNER JOIN "users" AS "u" ON "u"."id" = "m"."user_id" WHERE "m"."group_id" = ANY($1) ORDER BY "m"."added_at" ASC, "u"."id" ASC"#
        );
        assert_eq!(values.0.len(), 1);
    }
}
