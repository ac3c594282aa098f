//! The SCIM resources' reads by id, and the members of a page of groups. Every Okta and
//! Entra lookup and every import page goes through these (the measured hot path,
//! docs/performance.md), so their SQL stays hand-written: one statement each, by primary
//! key or `= ANY` of the page's ids.

use common::{
    db::{
        entities::{group, user},
        stmt,
    },
    scim::model::MemberRef,
};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use std::collections::HashMap;
use uuid::Uuid;

/// The org's user `id`, if it has one.
pub async fn user(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<user::Model>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT * FROM users WHERE org_id = $1 AND id = $2",
            [org_id.into(), id.into()],
        ))
        .await?;
    row.map(|r| user::Model::from_query_result(&r, ""))
        .transpose()
}

/// The org's group `id`, if it has one.
pub async fn group(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<group::Model>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT * FROM groups WHERE org_id = $1 AND id = $2",
            [org_id.into(), id.into()],
        ))
        .await?;
    row.map(|r| group::Model::from_query_result(&r, ""))
        .transpose()
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
    let ids = common::db::uuid_array(group_ids);
    let rows = db
        .query_all_raw(stmt(
            "SELECT m.group_id, u.id, COALESCE(u.display_name, u.user_name) AS display \
             FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = ANY($1) ORDER BY m.added_at, u.id",
            [ids],
        ))
        .await?;
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
