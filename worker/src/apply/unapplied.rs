//! Commands that end without being applied — past their deadline, or refused for good by
//! the database — and the answers of commands applied before (their stored replies).

use super::{Applied, audit::actor, to_json};
use common::{
    db::stmt,
    messages::{Envelope, Reply},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::Value as Json;
use uuid::Uuid;

/// The answer to a command whose id was not claimed: `404` if its org is gone, else the
/// reply stored for the id.
pub(super) async fn unclaimed_reply(
    db: &DatabaseConnection,
    env: &Envelope,
) -> Result<Reply, DbErr> {
    if let Some(org_id) = env.org_id
        && !org_exists(db, org_id).await?
    {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    stored_reply(db, env.id, env.org_id).await
}

/// The reply of a command that reached its deadline unapplied.
pub fn expired_reply() -> Reply {
    Reply::error(
        503,
        None,
        "the change was not applied: it was still waiting when its deadline passed, and it \
         never will be; send it again",
    )
}

/// Records a command that reached its deadline unapplied: its id with the `503` reply (so a
/// redelivery, and the ingress's fence, find it) and an activity entry.
pub(super) async fn expire(db: &DatabaseConnection, env: &Envelope) -> Result<Applied, DbErr> {
    let reply = expired_reply();
    if !record_unapplied(db, env, &reply, "command.expired").await? {
        // Applied or expired by an earlier delivery: its stored reply stands.
        let reply = stored_reply(db, env.id, env.org_id).await?;
        return Ok(Applied {
            reply,
            expired: false,
        });
    }
    Ok(Applied {
        reply,
        expired: true,
    })
}

/// Makes `reply` the final answer of a command that was not applied — expired, or refused
/// for good by the database and answered `500` — by storing it under the command's id, with
/// an activity entry `action`, in one statement: no redelivery or replay of the command can
/// apply it afterwards. False if the id was already taken (its stored reply stands).
pub async fn record_unapplied(
    db: &DatabaseConnection,
    env: &Envelope,
    reply: &Reply,
    action: &str,
) -> Result<bool, DbErr> {
    let (resource_type, resource_id) = expired_resource(env);
    let recorded = db
        .query_one_raw(stmt(
            "WITH claimed AS (\
                 INSERT INTO processed_commands (command_id, org_id, command_type, reply) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (command_id) DO NOTHING RETURNING command_id), \
             audit AS (\
                 INSERT INTO audit_log (org_id, command_id, correlation_id, actor, action, \
                                        resource_type, resource_id, detail) \
                 SELECT $2, $1, $5, $6, $10, $7, $8, $9 FROM claimed \
                 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)) \
             SELECT command_id FROM claimed",
            [
                env.id.into(),
                env.org_id.into(),
                env.kind.clone().into(),
                to_json(reply).into(),
                env.correlation_id.clone().into(),
                actor(env).into(),
                resource_type.into(),
                resource_id.into(),
                serde_json::json!({"type": env.kind, "apply_by": env.apply_by}).into(),
                action.into(),
            ],
        ))
        .await?;
    Ok(recorded.is_some())
}

/// The resource an unapplied command was about, for its activity entry.
fn expired_resource(env: &Envelope) -> (&'static str, Option<String>) {
    let id = |key: &str| {
        env.payload
            .get(key)
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    match env.kind.split('.').next() {
        Some("user" | "person") => ("User", id("user_id")),
        Some("group") => ("Group", id("group_id")),
        _ => ("Org", env.org_id.map(|o| o.to_string())),
    }
}

/// Whether the org exists (a command's org may have been removed while it was queued).
async fn org_exists(db: &DatabaseConnection, org_id: Uuid) -> Result<bool, DbErr> {
    Ok(db
        .query_one_raw(stmt(
            "SELECT 1 AS one FROM orgs WHERE id = $1",
            [org_id.into()],
        ))
        .await?
        .is_some())
}

/// The reply stored for a command id — only to the same org: now that other services
/// choose command ids, one org must not read another's answer by reusing its id.
async fn stored_reply(
    db: &DatabaseConnection,
    command_id: Uuid,
    org_id: Option<Uuid>,
) -> Result<Reply, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT reply, org_id IS NOT DISTINCT FROM $2 AS same_org \
             FROM processed_commands WHERE command_id = $1",
            [command_id.into(), org_id.into()],
        ))
        .await?;
    if let Some(r) = &row
        && !r.try_get::<bool>("", "same_org")?
    {
        return Ok(Reply::error(
            409,
            None,
            "this command id was already used by another command",
        ));
    }
    let stored: Option<Json> = match row {
        Some(r) => r.try_get("", "reply")?,
        None => None,
    };
    Ok(stored
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(|| {
            Reply::error(500, None, "the stored result of this command is unreadable")
        }))
}
