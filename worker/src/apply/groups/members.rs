//! A group's members as sets: checked against the org's users, diffed, and written only
//! where they change (a PATCH that names its members reads and writes only those rows).

use super::super::Tx;
use common::{
    db::{reads::existing_users, uuid_array},
    messages::Reply,
    scim::{
        filter::{CompValue, CompareOp, Filter},
        patch::{OpKind, PatchOp, PatchPath},
    },
};
use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{
        DeleteStatement, Expr, ExprTrait, Func, InsertStatement, OnConflict, Order, PgFunc, Query,
    },
};
use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

/// Members that are not users of the org are refused, naming them.
pub(super) async fn check_members(
    tx: &Tx<'_>,
    org_id: Uuid,
    members: &[Uuid],
) -> Result<Option<Reply>, DbErr> {
    let found: HashSet<Uuid> = existing_users(tx, org_id, members)
        .await?
        .into_iter()
        .collect();
    let missing: Vec<String> = members
        .iter()
        .filter(|m| !found.contains(m))
        .map(Uuid::to_string)
        .collect();
    Ok((!missing.is_empty()).then(|| {
        Reply::error(
            400,
            Some("invalidValue"),
            format!("no such users: {}", missing.join(", ")),
        )
    }))
}

/// Inserts the memberships in one statement (STYLE.md item 16).
pub(super) async fn add_members(
    tx: &Tx<'_>,
    org_id: Uuid,
    group_id: Uuid,
    members: &[Uuid],
) -> Result<(), DbErr> {
    if !members.is_empty() {
        tx.execute(&insert(org_id, group_id, members)).await?;
    }
    Ok(())
}

pub(super) async fn remove_members(
    tx: &Tx<'_>,
    group_id: Uuid,
    members: &[Uuid],
) -> Result<(), DbErr> {
    if !members.is_empty() {
        tx.execute(&delete(group_id, members)).await?;
    }
    Ok(())
}

/// `members` added to the group, one row each from one `uuid[]` parameter however many
/// they are; those already in it are left as they are.
fn insert(org_id: Uuid, group_id: Uuid, members: &[Uuid]) -> InsertStatement {
    let rows = Query::select()
        .expr(Expr::val(group_id))
        .column("u")
        .expr(Expr::val(org_id))
        .from_function(Func::cust("UNNEST").arg(uuid_array(members)), "u")
        .to_owned();
    Query::insert()
        .into_table("group_members")
        .columns(["group_id", "user_id", "org_id"])
        .select_from(rows)
        .expect("three columns, three values")
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned()
}

/// `members` removed from the group.
fn delete(group_id: Uuid, members: &[Uuid]) -> DeleteStatement {
    Query::delete()
        .from_table("group_members")
        .and_where(Expr::col("group_id").eq(group_id))
        .and_where(Expr::col("user_id").eq(PgFunc::any(uuid_array(members))))
        .to_owned()
}

/// Which members a change may touch: all of them (a PUT, a replace of the list), or only
/// those it names (see [`named_members`]).
pub(super) enum Scope {
    All,
    Only(Vec<Uuid>),
}

/// The group's member ids within `scope`, in the order they were added (the order
/// `group_members` lists them in).
pub(super) async fn member_ids(
    tx: &Tx<'_>,
    group_id: Uuid,
    scope: &Scope,
) -> Result<Vec<Uuid>, DbErr> {
    let mut q = Query::select()
        .column("user_id")
        .from("group_members")
        .and_where(Expr::col("group_id").eq(group_id))
        .order_by("added_at", Order::Asc)
        .order_by("user_id", Order::Asc)
        .to_owned();
    match scope {
        Scope::All => {}
        Scope::Only(ids) if ids.is_empty() => return Ok(Vec::new()),
        Scope::Only(ids) => {
            q.and_where(Expr::col("user_id").eq(PgFunc::any(uuid_array(ids))));
        }
    }
    let rows = tx.query_all(&q).await?;
    rows.iter().map(|r| r.try_get("", "user_id")).collect()
}

/// The member ids a PATCH can touch when it touches members only by naming them: Okta's
/// `add` to `members`, `remove` of `members[value eq "…"]`, and Entra's `remove` of
/// `members` with a value list. `None` when some operation may touch members it does not
/// name (a replace of the list, a remove of all, another filter, a pathless operation that
/// mentions members): then the whole list is needed. Names that are not ids are left out:
/// no stored member (a canonical id) can match them.
pub(super) fn named_members(ops: &[PatchOp]) -> Option<Vec<Uuid>> {
    let mut named = Vec::new();
    for op in ops {
        let target = match &op.path {
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    return None;
                };
                if values
                    .keys()
                    .any(|k| k.to_ascii_lowercase().contains("members"))
                {
                    return None;
                }
                continue;
            }
            Some(PatchPath::Extension(_)) => continue,
            Some(PatchPath::Attr(t)) if !t.attr.eq_ignore_ascii_case("members") => continue,
            Some(PatchPath::Attr(t)) => t,
        };
        if target.extension.is_some() || target.sub.is_some() {
            return None;
        }
        match (op.op, &target.filter, &op.value) {
            (OpKind::Add, None, Some(v @ (Value::Array(_) | Value::Object(_))))
            | (OpKind::Remove, None, Some(v @ (Value::Array(_) | Value::Object(_)))) => {
                let list = match v {
                    Value::Array(list) => list.as_slice(),
                    one => std::slice::from_ref(one),
                };
                named.extend(
                    list.iter()
                        .filter_map(|m| m.get("value").and_then(Value::as_str))
                        .filter_map(|s| Uuid::parse_str(s.trim()).ok()),
                );
            }
            (
                OpKind::Remove,
                Some(Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value: CompValue::Str(s),
                }),
                _,
            ) if path.uri.is_none() && path.sub.is_none() && path.name == "value" => {
                named.extend(Uuid::parse_str(s.trim()).ok());
            }
            _ => return None,
        }
    }
    let mut seen = HashSet::with_capacity(named.len());
    named.retain(|id| seen.insert(*id));
    Some(named)
}

/// What a change does to a member list, as sets: who joins (in the new list's order) and
/// who leaves (in the old list's order).
pub(super) fn diff_members(before: &[Uuid], after: &[Uuid]) -> (Vec<Uuid>, Vec<Uuid>) {
    let (was, now): (HashSet<&Uuid>, HashSet<&Uuid>) =
        (before.iter().collect(), after.iter().collect());
    let added = after.iter().filter(|m| !was.contains(m)).copied().collect();
    let removed = before
        .iter()
        .filter(|m| !now.contains(m))
        .copied()
        .collect();
    (added, removed)
}

#[cfg(test)]
mod sql_tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn members_are_added_from_one_array_and_removed_by_one() {
        let ids = [Uuid::nil(), Uuid::max()];
        let (add, values) = insert(Uuid::nil(), Uuid::nil(), &ids).build(PostgresQueryBuilder);
        assert_eq!(
            add,
            r#"INSERT INTO "group_members" ("group_id", "user_id", "org_id") SELECT $1, "u", $2 FROM UNNEST($3) AS "u" ON CONFLICT  DO NOTHING"#
        );
        assert_eq!(values.0.len(), 3);
        let (remove, _) = delete(Uuid::nil(), &ids).build(PostgresQueryBuilder);
        assert_eq!(
            remove,
            r#"DELETE FROM "group_members" WHERE "group_id" = $1 AND "user_id" = ANY($2)"#
        );
    }
}
