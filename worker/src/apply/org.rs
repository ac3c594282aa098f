//! The operator's org lifecycle commands: removing an org with every row it owns, and
//! setting how long its activity entries are kept (docs/data-lifecycle.md).

use super::Tx;
use super::{Audit, audit};
use common::{
    db::stmt,
    messages::{DeleteOrg, Envelope, Reply, SetOrgRetention},
};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::{Value, json};
use uuid::Uuid;

/// The most days an org's activity may be kept.
pub const MAX_ACTIVITY_DAYS: u32 = 36_500;

/// Removes the org in one transaction: its outbox events (published or not: its
/// integrators go with it), its command ids and stored replies, its activity, and the org
/// row, whose cascade takes its tokens, admin key, integration credentials, people,
/// invites, groups, mappings and pending erasures. Its credentials stop working at commit.
///
/// The org row is locked first: commands of the org in flight hold a key-share lock on it
/// (`apply`), so this waits for them, and sees their rows; commands after it find no org
/// and are refused without a trace. Nothing Roster keeps about this command names the org
/// (its envelope has no `org_id`); the worker's log line does.
pub(super) async fn delete_org(
    tx: &Tx<'_>,
    _env: &Envelope,
    cmd: &DeleteOrg,
) -> Result<Reply, DbErr> {
    let org_id = cmd.org_id;
    let found = tx
        .query_one_raw(stmt(
            "SELECT id FROM orgs WHERE id = $1 FOR UPDATE",
            [org_id.into()],
        ))
        .await?;
    if found.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    for sql in [
        "DELETE FROM outbox WHERE org_id = $1",
        "DELETE FROM processed_commands WHERE org_id = $1",
        // `org.create` carries no org id in its envelope; its stored reply names the org.
        "DELETE FROM processed_commands WHERE org_id IS NULL AND command_type = 'org.create' \
         AND reply #>> '{body,id}' = $1::text",
        "DELETE FROM audit_log WHERE org_id = $1",
        "DELETE FROM provisioning_log WHERE org_id = $1",
        "DELETE FROM deprovisions WHERE org_id = $1",
        "DELETE FROM deprovision_holds WHERE org_id = $1",
        "DELETE FROM orgs WHERE id = $1",
    ] {
        tx.execute_raw(stmt(sql, [org_id.into()])).await?;
    }
    tracing::info!(org_id = %org_id, "organisation removed with all its rows");
    Ok(Reply::ok(204, Value::Null))
}

/// Sets (or, with `null`, clears) the org's activity retention override.
pub(super) async fn set_retention(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SetOrgRetention,
) -> Result<Reply, DbErr> {
    if cmd
        .activity_days
        .is_some_and(|d| d == 0 || d > MAX_ACTIVITY_DAYS)
    {
        return Ok(Reply::error(
            400,
            None,
            format!("activity_days must be 1 to {MAX_ACTIVITY_DAYS}, or null for the default"),
        ));
    }
    let days = cmd.activity_days.and_then(|d| i32::try_from(d).ok());
    let updated = tx
        .query_one_raw(stmt(
            "UPDATE orgs SET activity_retention_days = $2 WHERE id = $1 RETURNING id",
            [org_id.into(), days.into()],
        ))
        .await?;
    if updated.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "retention.updated",
            resource_type: "Org",
            resource_id: None,
            detail: json!({"activity_days": cmd.activity_days}),
        },
    );
    Ok(Reply::ok(200, json!({"activity_days": cmd.activity_days})))
}
