//! Reads that both the ingress (for GETs) and the worker (for replies) make: a group's
//! members and the groups of users.

use super::stmt;
use crate::scim::model::MemberRef;
use sea_orm::{ConnectionTrait, DbErr, Value};
use std::collections::HashMap;
use uuid::Uuid;

fn uuid_array(ids: &[Uuid]) -> Value {
    Value::Array(
        sea_orm::sea_query::ArrayType::Uuid,
        Some(Box::new(
            ids.iter().map(|i| Value::Uuid(Some(*i))).collect(),
        )),
    )
}

/// The members of a group, in the order they were added, with a display name.
pub async fn group_members(
    conn: &impl ConnectionTrait,
    group_id: Uuid,
) -> Result<Vec<MemberRef>, DbErr> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT u.id, COALESCE(u.display_name, u.user_name) AS display FROM group_members m \
             JOIN users u ON u.id = m.user_id WHERE m.group_id = $1 ORDER BY m.added_at, u.id",
            [group_id.into()],
        ))
        .await?;
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
    let rows = conn
        .query_all_raw(stmt(
            "SELECT m.user_id, g.id, g.display_name FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.user_id = ANY($1) ORDER BY lower(g.display_name), g.id",
            [uuid_array(user_ids)],
        ))
        .await?;
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
    let rows = conn
        .query_all_raw(stmt(
            "SELECT id FROM users WHERE org_id = $1 AND id = ANY($2)",
            [org_id.into(), uuid_array(ids)],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "id")).collect()
}

/// The org's mapping, in its saved order; the default mapping when it never saved one.
pub async fn org_mapping(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Vec<crate::mapping::Mapping>, DbErr> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT field, scim_attribute, policy FROM field_mappings WHERE org_id = $1 ORDER BY position",
            [org_id.into()],
        ))
        .await?;
    mappings(&rows)
}

/// `org_mapping`, or `None` when there is no such org: one query where a command must
/// also know the org exists.
pub async fn existing_org_mapping(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Option<Vec<crate::mapping::Mapping>>, DbErr> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT m.field, m.scim_attribute, m.policy FROM orgs o \
             LEFT JOIN field_mappings m ON m.org_id = o.id WHERE o.id = $1 ORDER BY m.position",
            [org_id.into()],
        ))
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    mappings(&rows).map(Some)
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
