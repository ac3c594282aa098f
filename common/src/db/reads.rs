//! Reads that both the ingress (for GETs) and the worker (for replies) make: a group's
//! members and the groups of users; and the join of people with their org that both
//! build queries on.

use super::{
    entities::{field_mapping, group, group_member, org, user},
    uuid_array,
};
use crate::scim::model::MemberRef;
use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Expr, ExprTrait, Func, JoinType, Order, PgFunc, Query, SelectStatement},
};
use std::collections::HashMap;
use uuid::Uuid;

/// The members of a group, in the order they were added, with a display name.
pub async fn group_members(
    conn: &impl ConnectionTrait,
    group_id: Uuid,
) -> Result<Vec<MemberRef>, DbErr> {
    let rows = conn.query_all(&group_members_query(group_id)).await?;
    rows.iter()
        .map(|r| {
            Ok(MemberRef {
                id: r.try_get("", "id")?,
                display: r.try_get("", "display")?,
            })
        })
        .collect()
}

/// The groups (id, displayName) of each of `user_ids`.
pub async fn user_groups(
    conn: &impl ConnectionTrait,
    user_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Uuid, String)>>, DbErr> {
    let mut out: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    if user_ids.is_empty() {
        return Ok(out);
    }
    let rows = conn.query_all(&user_groups_query(user_ids)).await?;
    for r in rows {
        out.entry(r.try_get("", "user_id")?)
            .or_default()
            .push((r.try_get("", "id")?, r.try_get("", "display_name")?));
    }
    Ok(out)
}

/// Which of `ids` are users of the org.
pub async fn existing_users(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = conn.query_all(&existing_users_query(org_id, ids)).await?;
    rows.iter().map(|r| r.try_get("", "id")).collect()
}

/// The org's mapping, in its saved order; the default mapping when it never saved one.
pub async fn org_mapping(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Vec<crate::mapping::Mapping>, DbErr> {
    let rows = conn.query_all(&org_mapping_query(org_id)).await?;
    mappings(&rows)
}

/// `org_mapping`, or `None` when there is no such org: one query where a command must
/// also know the org exists.
pub async fn existing_org_mapping(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Option<Vec<crate::mapping::Mapping>>, DbErr> {
    // One statement: on the measured create path (docs/performance.md, "Fewer round trips").
    let rows = conn.query_all(&existing_org_mapping_query(org_id)).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    mappings(&rows).map(Some)
}

/// `SELECT … FROM users AS u JOIN orgs AS o ON o.id = u.org_id`: people with their org's
/// settings, for the caller to add what it selects and where.
pub fn users_with_their_org() -> SelectStatement {
    Query::select()
        .from_as("users", "u")
        .join_as(
            JoinType::InnerJoin,
            "orgs",
            "o",
            Expr::col(("o", "id")).equals(("u", "org_id")),
        )
        .to_owned()
}

/// `SELECT * FROM <table> WHERE org_id = … AND id = …`: the org's row `id` of a SCIM
/// resource table (`users`, `groups`), read by the ingress and locked by the worker.
pub fn org_row(table: &'static str, org_id: Uuid, id: Uuid) -> SelectStatement {
    Query::select()
        .column(sea_orm::sea_query::Asterisk)
        .from(table)
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Expr::col("id").eq(id))
        .to_owned()
}

/// `SELECT … FROM invites WHERE` one of `people`'s `AND sent_at IS NULL`: invites not yet
/// sent, for the caller to add what it selects (the outbox relay routes by them, the
/// mailer registers their links).
pub fn unsent_invites_of(people: &[Uuid]) -> SelectStatement {
    Query::select()
        .from("invites")
        .and_where(Expr::col("user_id").eq(PgFunc::any(uuid_array(people))))
        .and_where(Expr::col("sent_at").is_null())
        .to_owned()
}

/// `SELECT … FROM invites AS i JOIN users AS u ON u.id = i.user_id`: invites with the
/// person each is for, for the caller to add what it selects and where.
pub fn invites_with_their_person() -> SelectStatement {
    Query::select()
        .from_as("invites", "i")
        .join_as(
            JoinType::InnerJoin,
            "users",
            "u",
            Expr::col(("u", "id")).equals(("i", "user_id")),
        )
        .to_owned()
}

fn group_members_query(group_id: Uuid) -> SelectStatement {
    use group_member::{Column as M, Entity as Members};
    use user::{Column as U, Entity as Users};
    Query::select()
        .column((Users, U::Id))
        .expr_as(
            Func::coalesce([
                Expr::col((Users, U::DisplayName)),
                Expr::col((Users, U::UserName)),
            ]),
            "display",
        )
        .from(Members)
        .inner_join(
            Users,
            Expr::col((Users, U::Id)).equals((Members, M::UserId)),
        )
        .and_where(Expr::col((Members, M::GroupId)).eq(group_id))
        .order_by((Members, M::AddedAt), Order::Asc)
        .order_by((Users, U::Id), Order::Asc)
        .to_owned()
}

fn user_groups_query(user_ids: &[Uuid]) -> SelectStatement {
    use group::{Column as G, Entity as Groups};
    use group_member::{Column as M, Entity as Members};
    Query::select()
        .column((Members, M::UserId))
        .column((Groups, G::Id))
        .column((Groups, G::DisplayName))
        .from(Members)
        .inner_join(
            Groups,
            Expr::col((Groups, G::Id)).equals((Members, M::GroupId)),
        )
        .and_where(Expr::col((Members, M::UserId)).eq(PgFunc::any(uuid_array(user_ids))))
        .order_by_expr(
            Func::lower(Expr::col((Groups, G::DisplayName))).into(),
            Order::Asc,
        )
        .order_by((Groups, G::Id), Order::Asc)
        .to_owned()
}

fn existing_users_query(org_id: Uuid, ids: &[Uuid]) -> SelectStatement {
    use user::{Column as U, Entity as Users};
    Query::select()
        .column(U::Id)
        .from(Users)
        .and_where(Expr::col(U::OrgId).eq(org_id))
        .and_where(Expr::col(U::Id).eq(PgFunc::any(uuid_array(ids))))
        .to_owned()
}

fn org_mapping_query(org_id: Uuid) -> SelectStatement {
    use field_mapping::{Column as F, Entity as Mappings};
    Query::select()
        .columns([F::Field, F::ScimAttribute, F::Policy])
        .from(Mappings)
        .and_where(Expr::col(F::OrgId).eq(org_id))
        .order_by(F::Position, Order::Asc)
        .to_owned()
}

/// The org's row joined with its mappings in their order: no row when there is no such
/// org, one row of NULLs when it has no mappings.
fn existing_org_mapping_query(org_id: Uuid) -> SelectStatement {
    use field_mapping::{Column as F, Entity as Mappings};
    use org::{Column as O, Entity as Orgs};
    Query::select()
        .columns([
            (Mappings, F::Field),
            (Mappings, F::ScimAttribute),
            (Mappings, F::Policy),
        ])
        .from(Orgs)
        .left_join(
            Mappings,
            Expr::col((Mappings, F::OrgId)).equals((Orgs, O::Id)),
        )
        .and_where(Expr::col((Orgs, O::Id)).eq(org_id))
        .order_by((Mappings, F::Position), Order::Asc)
        .to_owned()
}

/// Field mappings from rows of `field, scim_attribute, policy` (a row whose `field` is
/// NULL, an org without mappings of a LEFT JOIN, is skipped); the defaults when none.
fn mappings(rows: &[sea_orm::QueryResult]) -> Result<Vec<crate::mapping::Mapping>, DbErr> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(field) = r.try_get::<Option<String>>("", "field")? else {
            continue;
        };
        let policy: String = r.try_get("", "policy")?;
        out.push(crate::mapping::Mapping {
            field,
            scim_attribute: r.try_get("", "scim_attribute")?,
            policy: crate::mapping::Policy::parse(&policy).ok_or_else(|| {
                DbErr::Custom(format!("unknown policy {policy:?} in field_mappings"))
            })?,
        });
    }
    if out.is_empty() {
        return Ok(crate::mapping::defaults());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DbBackend, Statement};

    fn sql(q: &SelectStatement) -> Statement {
        DbBackend::Postgres.build(q)
    }

    /// The statements, as PostgreSQL receives them: the same as the hand-written ones they
    /// replace, with quoted names.
    #[test]
    fn reads_send_the_sql_they_always_sent() {
        let id = Uuid::nil();
        let s = sql(&group_members_query(id));
        assert_eq!(
            s.sql,
            r#"SELECT "users"."id", COALESCE("users"."display_name", "users"."user_name") AS "display" FROM "group_members" INNER JOIN "users" ON "users"."id" = "group_members"."user_id" WHERE "group_members"."group_id" = $1 ORDER BY "group_members"."added_at" ASC, "users"."id" ASC"#
        );
        assert_eq!(s.values.map(|v| v.0.len()), Some(1));
        assert_eq!(
            sql(&user_groups_query(&[id, id])).sql,
            r#"SELECT "group_members"."user_id", "groups"."id", "groups"."display_name" FROM "group_members" INNER JOIN "groups" ON "groups"."id" = "group_members"."group_id" WHERE "group_members"."user_id" = ANY($1) ORDER BY LOWER("groups"."display_name") ASC, "groups"."id" ASC"#
        );
        assert_eq!(
            sql(&existing_users_query(id, &[id])).sql,
            r#"SELECT "id" FROM "users" WHERE "org_id" = $1 AND "id" = ANY($2)"#
        );
        assert_eq!(
            sql(&org_mapping_query(id)).sql,
            r#"SELECT "field", "scim_attribute", "policy" FROM "field_mappings" WHERE "org_id" = $1 ORDER BY "position" ASC"#
        );
        assert_eq!(
            sql(&existing_org_mapping_query(id)).sql,
            r#"SELECT "field_mappings"."field", "field_mappings"."scim_attribute", "field_mappings"."policy" FROM "orgs" LEFT JOIN "field_mappings" ON "field_mappings"."org_id" = "orgs"."id" WHERE "orgs"."id" = $1 ORDER BY "field_mappings"."position" ASC"#
        );
        assert_eq!(
            sql(users_with_their_org().column(("u", "id"))).sql,
            r#"SELECT "u"."id" FROM "users" AS "u" INNER JOIN "orgs" AS "o" ON "o"."id" = "u"."org_id""#
        );
    }
}
