//! Applying one command: one transaction holding the effect, its outbox event, an audit
//! entry and the command's id with its reply (DESIGN invariant 3). A redelivered command
//! finds its id and gets the stored reply, with no second effect.

mod admin;
mod groups;
mod manager;
mod people;
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
}

/// Applies a command exactly once and returns its reply (the stored one on redelivery).
/// Only transient database errors escape; permanent failures are replies.
pub async fn apply(
    db: &DatabaseConnection,
    ctx: &ApplyContext,
    env: &Envelope,
    cmd: &Command,
) -> Result<Reply, DbErr> {
    let tx = db.begin().await?;
    let claimed = tx
        .query_one_raw(stmt(
            "INSERT INTO processed_commands (command_id, org_id, command_type) VALUES ($1, $2, $3) \
             ON CONFLICT (command_id) DO NOTHING RETURNING command_id",
            [env.id.into(), env.org_id.into(), env.kind.clone().into()],
        ))
        .await?;
    if claimed.is_none() {
        tx.rollback().await?;
        return stored_reply(db, env.id, env.org_id).await;
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
        Command::CreateUser(p) => users::create(&tx, ctx, env, org(env), p).await?,
        Command::ReplaceUser(p) => users::replace(&tx, ctx, env, org(env), p).await?,
        Command::PatchUser(p) => users::patch(&tx, ctx, env, org(env), p).await?,
        Command::DeleteUser(p) => users::delete(&tx, env, org(env), p).await?,
        Command::DeactivateUser(p) => users::set_active(&tx, ctx, env, org(env), p, false).await?,
        Command::ReactivateUser(p) => users::set_active(&tx, ctx, env, org(env), p, true).await?,
        Command::CreateGroup(p) => groups::create(&tx, ctx, env, org(env), p).await?,
        Command::ReplaceGroup(p) => groups::replace(&tx, ctx, env, org(env), p).await?,
        Command::PatchGroup(p) => groups::patch(&tx, ctx, env, org(env), p).await?,
        Command::DeleteGroup(p) => groups::delete(&tx, env, org(env), p).await?,
    };
    tx.execute_raw(stmt(
        "UPDATE processed_commands SET reply = $2 WHERE command_id = $1",
        [env.id.into(), to_json(&reply).into()],
    ))
    .await?;
    tx.commit().await?;
    Ok(reply)
}

/// `Command::from_envelope` guarantees every command but `org.create` names its org.
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
