//! Applying one command: one transaction holding the effect, its outbox event, an audit
//! entry and the command's id with its reply (DESIGN invariant 3). A redelivered command
//! finds its id and gets the stored reply, with no second effect.

mod admin;
mod erase;
mod groups;
mod guard;
mod manager;
mod org;
mod people;
mod sso;
mod users;

use common::{
    db::stmt,
    messages::{Command, Envelope, Reply},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait, Value,
};
use serde_json::Value as Json;
use uuid::Uuid;

/// What the worker needs to render replies.
#[derive(Clone, Debug)]
pub struct ApplyContext {
    /// `PUBLIC_URL/scim/v2`, for `meta.location`.
    pub scim_base: String,
    /// The `prefix` label of the metrics recorded while applying.
    pub prefix: String,
}

/// What became of a command.
#[derive(Debug)]
pub struct Applied {
    /// The reply: the command's own, the stored one on redelivery, or `503` when expired.
    pub reply: Reply,
    /// It reached its deadline (`Envelope::apply_by`) unapplied, just now.
    pub expired: bool,
}

/// Applies a command exactly once and returns its reply (the stored one on redelivery).
/// Only transient database errors escape; permanent failures are replies. A command whose
/// deadline has passed is not applied: its transaction rolls back, even when the deadline
/// passes during it, and it is recorded as expired (`expire`).
pub async fn apply(
    db: &DatabaseConnection,
    ctx: &ApplyContext,
    env: &Envelope,
    cmd: &Command,
) -> Result<Applied, DbErr> {
    // Declaring a command expired is always safe (its caller gets `503` either way), so the
    // worker's own clock may decide it early; only applying needs PostgreSQL's clock.
    if env.expired_at(chrono::Utc::now()) {
        return expire(db, env).await;
    }
    let tx = db.begin().await?;
    // The org's row is key-share locked for the transaction: an org removal
    // (`org::delete_org`) waits for the commands in flight, and a command of an org that
    // is gone is refused without leaving a row that names it.
    let claimed = tx
        .query_one_raw(stmt(
            "WITH org AS (SELECT id FROM orgs WHERE id = $2 FOR KEY SHARE) \
             INSERT INTO processed_commands (command_id, org_id, command_type) \
             SELECT $1, $2, $3 WHERE $2::uuid IS NULL OR EXISTS (SELECT 1 FROM org) \
             ON CONFLICT (command_id) DO NOTHING RETURNING command_id",
            [env.id.into(), env.org_id.into(), env.kind.clone().into()],
        ))
        .await?;
    if claimed.is_none() {
        tx.rollback().await?;
        if let Some(org_id) = env.org_id
            && !org_exists(db, org_id).await?
        {
            return Ok(Applied {
                reply: Reply::error(404, None, "organisation not found"),
                expired: false,
            });
        }
        let reply = stored_reply(db, env.id, env.org_id).await?;
        return Ok(Applied {
            reply,
            expired: false,
        });
    }
    let reply = match cmd {
        Command::CreateOrg(p) => admin::create_org(&tx, env, p).await?,
        Command::SetProvisioning(p) => admin::set_provisioning(&tx, env, org(env), p).await?,
        Command::RotateScimToken(p) => admin::rotate_token(&tx, env, org(env), p).await?,
        Command::RotateAdminKey(p) => admin::rotate_admin_key(&tx, env, org(env), p).await?,
        Command::UpdateSettings(p) => admin::update_settings(&tx, env, org(env), p).await?,
        Command::SetMappings(p) => admin::set_mappings(&tx, env, org(env), p).await?,
        Command::UpdatePerson(p) => people::update(&tx, ctx, env, org(env), p).await?,
        Command::AcceptInvite(p) => admin::accept_invite(&tx, env, org(env), p).await?,
        Command::CreateIntegration(p) => admin::create_integration(&tx, env, org(env), p).await?,
        Command::RevokeIntegration(p) => admin::revoke_integration(&tx, env, org(env), p).await?,
        Command::SetSso(p) => sso::set(&tx, env, org(env), p).await?,
        Command::SignIn(p) => sso::sign_in(&tx, env, org(env), p).await?,
        Command::SignOut(p) => sso::sign_out(&tx, env, org(env), p).await?,
        Command::CreateUser(p) => users::create(&tx, ctx, env, org(env), p).await?,
        Command::ReplaceUser(p) => users::replace(&tx, ctx, env, org(env), p).await?,
        Command::PatchUser(p) => users::patch(&tx, ctx, env, org(env), p).await?,
        Command::DeleteUser(p) => erase::delete_user(&tx, ctx, env, org(env), p).await?,
        Command::DeletePerson(p) => erase::delete_person(&tx, ctx, env, org(env), p).await?,
        Command::DeleteOrg(p) => org::delete_org(&tx, env, p).await?,
        Command::SetOrgRetention(p) => org::set_retention(&tx, env, org(env), p).await?,
        Command::DeactivateUser(p) => users::set_active(&tx, ctx, env, org(env), p, false).await?,
        Command::ReactivateUser(p) => users::set_active(&tx, ctx, env, org(env), p, true).await?,
        Command::CreateGroup(p) => groups::create(&tx, ctx, env, org(env), p).await?,
        Command::ReplaceGroup(p) => groups::replace(&tx, ctx, env, org(env), p).await?,
        Command::PatchGroup(p) => groups::patch(&tx, ctx, env, org(env), p).await?,
        Command::DeleteGroup(p) => groups::delete(&tx, env, org(env), p).await?,
        Command::DecideGuard(p) => guard::decide_command(&tx, env, org(env), p).await?,
    };
    // The last statement before COMMIT checks the deadline on PostgreSQL's clock, holding
    // the command's fence lock until the commit (m0005_deadlines.sql): the ingress, which
    // answers `503` only after it has seen that clock pass the deadline under the same
    // lock, can then never be contradicted by a commit.
    let stored = tx
        .execute_raw(stmt(
            "UPDATE processed_commands SET reply = $2 \
             WHERE command_id = $1 AND roster_before_deadline($1, $3)",
            [env.id.into(), to_json(&reply).into(), env.apply_by.into()],
        ))
        .await?;
    if stored.rows_affected() == 0 {
        tx.rollback().await?;
        return expire(db, env).await;
    }
    tx.commit().await?;
    Ok(Applied {
        reply,
        expired: false,
    })
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
async fn expire(db: &DatabaseConnection, env: &Envelope) -> Result<Applied, DbErr> {
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

/// `Command::from_envelope` guarantees every command but `org.create` and `org.delete`
/// names its org.
fn org(env: &Envelope) -> Uuid {
    env.org_id.unwrap_or_default()
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

fn to_json(v: &impl serde::Serialize) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// One audit entry for the command.
struct Audit<'a> {
    action: &'a str,
    resource_type: &'a str,
    resource_id: Option<String>,
    detail: Json,
}

/// What a change writes besides its own rows and audit entry.
#[derive(Default)]
struct Side<'a> {
    /// Its event, to the outbox (published by the relay).
    event: Option<&'a Envelope>,
    /// The invite a new user gets, `(user id, address)`, if the org sends invites.
    invite: Option<(Uuid, String)>,
}

async fn audit(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Option<Uuid>,
    a: Audit<'_>,
) -> Result<(), DbErr> {
    audit_with(tx, env, org_id, a, Side::default()).await
}

/// The audit entry and what `side` asks for, in one statement (one round trip): data-
/// modifying `WITH` parts run once each whether or not the statement reads them.
async fn audit_with(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Option<Uuid>,
    a: Audit<'_>,
    side: Side<'_>,
) -> Result<(), DbErr> {
    let mut values: Vec<sea_orm::Value> = vec![
        org_id.into(),
        env.id.into(),
        env.correlation_id.clone().into(),
        actor(env).into(),
        a.action.into(),
        a.resource_type.into(),
        a.resource_id.into(),
        a.detail.into(),
    ];
    let mut parts = Vec::new();
    if let Some(e) = side.event {
        let n = values.len();
        parts.push(format!(
            "event AS (INSERT INTO outbox (event_id, org_id, routing_key, envelope) \
             VALUES (${}, ${}, ${}, ${}))",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        ));
        values.extend([
            e.id.into(),
            e.org_id.into(),
            e.kind.clone().into(),
            to_json(e).into(),
        ]);
    }
    if let Some((user_id, email)) = side.invite {
        let n = values.len();
        parts.push(format!(
            "invite AS (INSERT INTO invites (id, org_id, user_id, email) \
             SELECT ${}, id, ${}, ${} FROM orgs WHERE id = $1 AND send_invites)",
            n + 1,
            n + 2,
            n + 3
        ));
        values.extend([Uuid::now_v7().into(), user_id.into(), email.into()]);
    }
    let with = if parts.is_empty() {
        String::new()
    } else {
        format!("WITH {} ", parts.join(", "))
    };
    tx.execute_raw(stmt(
        &format!(
            "{with}INSERT INTO audit_log (org_id, command_id, correlation_id, actor, action, \
             resource_type, resource_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// Who sent the command, as the audit log shows it.
fn actor(env: &Envelope) -> String {
    if env.credential.is_some() {
        return "integration".to_owned();
    }
    match env.kind.split('.').next() {
        Some("user" | "group") => "scim".to_owned(),
        Some("invite") => "invitee".to_owned(),
        Some("person") if env.kind == "person.delete" => {
            if env.payload["by_policy"] == true {
                "retention".to_owned()
            } else {
                "admin".to_owned()
            }
        }
        Some("person") => "employee".to_owned(),
        Some("org") => "operator".to_owned(),
        Some("admin_key") if env.payload["by_operator"] == true => "operator".to_owned(),
        _ => "admin".to_owned(),
    }
}

fn none_string() -> Value {
    Value::String(None)
}

/// A SCIM error as the reply.
fn scim_error(e: common::scim::ScimError) -> Reply {
    Reply::error(e.status, e.scim_type.as_deref(), e.detail)
}

/// `404` for a `kind` ("User", "Group") that is not in the org.
fn not_found(kind: &str, id: Uuid) -> Reply {
    Reply::error(404, None, format!("{kind} {id} not found"))
}

/// `412` when `If-Match` named another version than `current`.
fn precondition_failed(kind: &str, current: i64) -> Reply {
    Reply::error(
        412,
        None,
        format!(
            "the {kind} has changed (its version is now {}); GET it and try again",
            common::scim::model::etag(current)
        ),
    )
}
