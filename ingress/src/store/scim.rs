//! The SCIM resources' reads by id, and the members of a page of groups. Every Okta and
//! Entra lookup and every import page goes through these (the measured hot path,
//! docs/performance.md), so their SQL stays hand-written: one statement each, by primary
//! key or `= ANY` of the page's ids.

use super::page::Table;
use common::{db::stmt, scim::model::MemberRef};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use std::collections::HashMap;
use uuid::Uuid;

/// The org's row `id` in `table` (`users` or `groups`), if it has one: by primary key.
pub async fn by_id<M: FromQueryResult>(
    db: &impl ConnectionTrait,
    table: &Table,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<M>, DbErr> {
    let sql = format!("SELECT * FROM {} WHERE org_id = $1 AND id = $2", table.name);
    let row = db
        .query_one_raw(stmt(&sql, [org_id.into(), id.into()]))
        .await?;
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
