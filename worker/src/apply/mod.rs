//! Applying one command: one transaction holding the effect, its outbox event, an audit
//! entry and the command's id with its reply (DESIGN invariant 3). A redelivered command
//! finds its id and gets the stored reply, with no second effect.

mod admin;
mod effects;
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
pub use effects::Tx;
use effects::{AuditEntry, Effects, Invite};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait, Value,
};
use serde_json::Value as Json;
use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};
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

impl Applied {
    fn answered(reply: Reply) -> Self {
        Self {
            reply,
            expired: false,
        }
    }
}

/// One command of a batch.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    pub env: &'a Envelope,
    pub cmd: &'a Command,
}

/// What became of a batch: `settled[i]` is item `i`'s. Items from `settled.len()` on were
/// not applied (nothing of theirs is committed): `error` is what item `settled.len()` met,
/// and the caller applies them one by one ([`apply`]), in order.
#[derive(Debug)]
pub struct Batch {
    pub settled: Vec<Applied>,
    pub error: Option<DbErr>,
}

/// Whether a command runs in a batch of its own: it reads or removes rows that other
/// commands' effects write (the activity log, the outbox, invites, processed commands), or
/// removes what an effect points at (a user an invite names). Okta's hot path — users' and
/// groups' create, replace, patch and (de)activation, a group's removal — batches.
pub fn runs_alone(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::CreateUser(_)
            | Command::ReplaceUser(_)
            | Command::PatchUser(_)
            | Command::DeactivateUser(_)
            | Command::ReactivateUser(_)
            | Command::CreateGroup(_)
            | Command::ReplaceGroup(_)
            | Command::PatchGroup(_)
            | Command::DeleteGroup(_)
    )
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
    let mut batch = apply_batch(db, ctx, &[Item { env, cmd }]).await?;
    match batch.settled.pop() {
        Some(applied) => Ok(applied),
        None => Err(batch
            .error
            .unwrap_or_else(|| DbErr::Custom("the command was not applied".into()))),
    }
}

/// Applies the commands in one transaction, in order, each in a savepoint of its own (a
/// command that meets a database error rolls back alone, and it and the ones after it are
/// left to the caller), their effects written by one writer, their replies stored and
/// their deadlines checked in one statement, and one commit (DESIGN invariant 3 for each).
/// A redelivered command finds its id and gets its stored reply, with no second effect.
/// The caller has already declared the commands expired on its own clock; one whose
/// deadline passes during the batch is recorded as expired and the others applied again
/// without it. A barrier command ([`runs_alone`]) must come alone.
pub async fn apply_batch(
    db: &DatabaseConnection,
    ctx: &ApplyContext,
    items: &[Item<'_>],
) -> Result<Batch, DbErr> {
    let mut late: Vec<usize> = Vec::new();
    loop {
        let todo: Vec<usize> = (0..items.len()).filter(|i| !late.contains(i)).collect();
        let run = run_batch(db, ctx, items, &todo).await?;
        match run {
            Run::Committed { replies, error } => {
                let mut settled = Vec::with_capacity(replies.len() + late.len());
                let mut replies = replies.into_iter();
                for (i, item) in items.iter().enumerate() {
                    let applied = if late.contains(&i) {
                        expire(db, item.env).await?
                    } else if let Some(reply) = replies.next() {
                        match reply {
                            Some(reply) => Applied::answered(reply),
                            None => Applied::answered(unclaimed_reply(db, item.env).await?),
                        }
                    } else {
                        break;
                    };
                    settled.push(applied);
                }
                return Ok(Batch { settled, error });
            }
            // Their deadline passed while the batch ran: rolled back; the batch runs again
            // without them, and they are recorded as expired.
            Run::Late(more) => late.extend(more),
        }
    }
}

/// What one attempt at a batch did.
enum Run {
    /// Committed: a reply for each of the first items (`None`: its id was taken, by an
    /// earlier delivery or another org's command, or its org is gone), and the error of the
    /// item after them, if one stopped the batch.
    Committed {
        replies: Vec<Option<Reply>>,
        error: Option<DbErr>,
    },
    /// Rolled back: these items' deadlines passed before the commit.
    Late(Vec<usize>),
}

async fn run_batch(
    db: &DatabaseConnection,
    ctx: &ApplyContext,
    items: &[Item<'_>],
    todo: &[usize],
) -> Result<Run, DbErr> {
    let tx = db.begin().await?;
    let claimed = claim(&tx, todo.iter().map(|&i| items[i].env)).await?;
    if todo.len() > 1 {
        lock_in_order(&tx, todo.iter().map(|&i| items[i].env)).await?;
    }
    let mut pending = Effects::default();
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(todo.len());
    let mut error = None;
    for &i in todo {
        let Item { env, cmd } = items[i];
        if !claimed.contains(&env.id) {
            replies.push(None);
            continue;
        }
        let savepoint = tx.begin().await?;
        let own = Mutex::new(Effects::default());
        match apply_one(&Tx::new(&savepoint, &own), ctx, env, cmd).await {
            Ok(reply) => {
                savepoint.commit().await?;
                pending.append(own.into_inner().unwrap_or_else(PoisonError::into_inner));
                replies.push(Some(reply));
            }
            Err(e) => {
                savepoint.rollback().await?;
                error = Some(e);
                break;
            }
        }
    }
    if error.is_some() && replies.is_empty() {
        tx.rollback().await?;
        return Ok(Run::Committed { replies, error });
    }
    // The ids claimed by the items left for the caller are given back.
    let left: Vec<Uuid> = todo[replies.len()..]
        .iter()
        .map(|&i| items[i].env.id)
        .filter(|id| claimed.contains(id))
        .collect();
    if !left.is_empty() {
        tx.execute_raw(stmt(
            "DELETE FROM processed_commands WHERE command_id = ANY($1)",
            [uuids(left)],
        ))
        .await?;
    }
    pending.write(&tx).await?;
    let applied: Vec<(usize, &Reply)> = todo
        .iter()
        .zip(&replies)
        .filter_map(|(&i, r)| r.as_ref().map(|r| (i, r)))
        .collect();
    let stored = store_replies(&tx, items, &applied).await?;
    let late: Vec<usize> = applied
        .iter()
        .map(|&(i, _)| i)
        .filter(|&i| !stored.contains(&items[i].env.id))
        .collect();
    if !late.is_empty() {
        tx.rollback().await?;
        return Ok(Run::Late(late));
    }
    tx.commit().await?;
    Ok(Run::Committed { replies, error })
}

/// Claims the commands' ids (`processed_commands`), key-share locking their orgs for the
/// transaction: an org removal (`org::delete_org`) waits for the commands in flight, and a
/// command of an org that is gone is not claimed, so it leaves no row that names the org.
/// Returns the ids claimed.
async fn claim<'e>(
    tx: &DatabaseTransaction,
    envs: impl Iterator<Item = &'e Envelope>,
) -> Result<HashSet<Uuid>, DbErr> {
    let rows: Vec<Json> = envs
        .map(|e| serde_json::json!({"id": e.id, "org_id": e.org_id, "kind": e.kind}))
        .collect();
    let claimed = tx
        .query_all_raw(stmt(
            "WITH t AS (SELECT * FROM jsonb_to_recordset($1) AS t (id uuid, org_id uuid, kind text)), \
                  org AS (SELECT id FROM orgs WHERE id IN (SELECT org_id FROM t) \
                          ORDER BY id FOR KEY SHARE) \
             INSERT INTO processed_commands (command_id, org_id, command_type) \
             SELECT id, org_id, kind FROM t \
             WHERE org_id IS NULL OR org_id IN (SELECT id FROM org) \
             ON CONFLICT (command_id) DO NOTHING RETURNING command_id",
            [Json::Array(rows).into()],
        ))
        .await?;
    claimed
        .iter()
        .map(|r| r.try_get::<Uuid>("", "command_id"))
        .collect()
}

/// Locks the users and groups the commands change, in one order (by id), before any
/// command runs. Each command locks its row again when it runs; taken here first, two
/// batches that change the same people wait for each other instead of deadlocking (a
/// deadlock costs PostgreSQL's `deadlock_timeout`, a second, and a retry).
async fn lock_in_order<'e>(
    tx: &DatabaseTransaction,
    envs: impl Iterator<Item = &'e Envelope>,
) -> Result<(), DbErr> {
    let (mut users, mut groups) = (Vec::new(), Vec::new());
    for env in envs {
        let id = |key: &str| {
            env.payload
                .get(key)
                .and_then(Json::as_str)
                .and_then(|s| s.parse::<Uuid>().ok())
        };
        users.extend(id("user_id"));
        groups.extend(id("group_id"));
    }
    if users.is_empty() && groups.is_empty() {
        return Ok(());
    }
    tx.query_one_raw(stmt(
        "WITH u AS (SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE), \
              g AS (SELECT id FROM groups WHERE id = ANY($2) ORDER BY id FOR UPDATE) \
         SELECT (SELECT count(*) FROM u) AS users, (SELECT count(*) FROM g) AS groups",
        [uuids(users), uuids(groups)],
    ))
    .await?;
    Ok(())
}

/// Stores each applied command's reply, only if its deadline has not passed: the last
/// statement before COMMIT checks every deadline on PostgreSQL's clock, holding each
/// command's fence lock until the commit (m0005_deadlines.sql). The ingress, which answers
/// `503` only after it has seen that clock pass the deadline under the same lock, can then
/// never be contradicted by a commit. Returns the ids stored.
async fn store_replies(
    tx: &DatabaseTransaction,
    items: &[Item<'_>],
    applied: &[(usize, &Reply)],
) -> Result<HashSet<Uuid>, DbErr> {
    if applied.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<Json> = applied
        .iter()
        .map(|&(i, reply)| {
            let env = items[i].env;
            serde_json::json!({"id": env.id, "reply": to_json(reply), "apply_by": env.apply_by})
        })
        .collect();
    let stored = tx
        .query_all_raw(stmt(
            "UPDATE processed_commands p SET reply = t.reply \
             FROM jsonb_to_recordset($1) AS t (id uuid, reply jsonb, apply_by timestamptz) \
             WHERE p.command_id = t.id AND roster_before_deadline(t.id, t.apply_by) \
             RETURNING p.command_id",
            [Json::Array(rows).into()],
        ))
        .await?;
    stored
        .iter()
        .map(|r| r.try_get::<Uuid>("", "command_id"))
        .collect()
}

/// The answer to a command whose id was not claimed: `404` if its org is gone, else the
/// reply stored for the id.
async fn unclaimed_reply(db: &DatabaseConnection, env: &Envelope) -> Result<Reply, DbErr> {
    if let Some(org_id) = env.org_id
        && !org_exists(db, org_id).await?
    {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    stored_reply(db, env.id, env.org_id).await
}

/// Applies one command in `tx`: its resource rows are written, its other effects
/// collected in `tx`; the reply is returned.
async fn apply_one(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    cmd: &Command,
) -> Result<Reply, DbErr> {
    Ok(match cmd {
        Command::CreateOrg(p) => admin::create_org(tx, env, p).await?,
        Command::SetProvisioning(p) => admin::set_provisioning(tx, env, org(env), p).await?,
        Command::RotateScimToken(p) => admin::rotate_token(tx, env, org(env), p).await?,
        Command::RotateAdminKey(p) => admin::rotate_admin_key(tx, env, org(env), p).await?,
        Command::UpdateSettings(p) => admin::update_settings(tx, env, org(env), p).await?,
        Command::SetMappings(p) => admin::set_mappings(tx, env, org(env), p).await?,
        Command::UpdatePerson(p) => people::update(tx, ctx, env, org(env), p).await?,
        Command::AcceptInvite(p) => admin::accept_invite(tx, env, org(env), p).await?,
        Command::CreateIntegration(p) => admin::create_integration(tx, env, org(env), p).await?,
        Command::RevokeIntegration(p) => admin::revoke_integration(tx, env, org(env), p).await?,
        Command::SetSso(p) => sso::set(tx, env, org(env), p).await?,
        Command::SignIn(p) => sso::sign_in(tx, env, org(env), p).await?,
        Command::SignOut(p) => sso::sign_out(tx, env, org(env), p).await?,
        Command::CreateUser(p) => users::create(tx, ctx, env, org(env), p).await?,
        Command::ReplaceUser(p) => users::replace(tx, ctx, env, org(env), p).await?,
        Command::PatchUser(p) => users::patch(tx, ctx, env, org(env), p).await?,
        Command::DeleteUser(p) => erase::delete_user(tx, ctx, env, org(env), p).await?,
        Command::DeletePerson(p) => erase::delete_person(tx, ctx, env, org(env), p).await?,
        Command::DeleteOrg(p) => org::delete_org(tx, env, p).await?,
        Command::SetOrgRetention(p) => org::set_retention(tx, env, org(env), p).await?,
        Command::DeactivateUser(p) => users::set_active(tx, ctx, env, org(env), p, false).await?,
        Command::ReactivateUser(p) => users::set_active(tx, ctx, env, org(env), p, true).await?,
        Command::CreateGroup(p) => groups::create(tx, ctx, env, org(env), p).await?,
        Command::ReplaceGroup(p) => groups::replace(tx, ctx, env, org(env), p).await?,
        Command::PatchGroup(p) => groups::patch(tx, ctx, env, org(env), p).await?,
        Command::DeleteGroup(p) => groups::delete(tx, env, org(env), p).await?,
        Command::DecideGuard(p) => guard::decide_command(tx, env, org(env), p).await?,
    })
}

fn uuids(ids: Vec<Uuid>) -> Value {
    Value::Array(
        sea_orm::sea_query::ArrayType::Uuid,
        Some(Box::new(ids.into_iter().map(Into::into).collect())),
    )
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

fn audit(tx: &Tx<'_>, env: &Envelope, org_id: Option<Uuid>, a: Audit<'_>) {
    audit_with(tx, env, org_id, a, Side::default());
}

/// The audit entry and what `side` asks for, collected in `tx` for the batch's writer
/// (`Effects::write`).
fn audit_with(tx: &Tx<'_>, env: &Envelope, org_id: Option<Uuid>, a: Audit<'_>, side: Side<'_>) {
    let mut fx = tx.effects();
    fx.audits.push(AuditEntry {
        org_id,
        command_id: env.id,
        correlation_id: env.correlation_id.clone(),
        actor: actor(env),
        action: a.action.to_owned(),
        resource_type: a.resource_type.to_owned(),
        resource_id: a.resource_id,
        detail: a.detail,
    });
    if let Some(e) = side.event {
        fx.events.push(e.clone());
    }
    if let (Some(org_id), Some((user_id, email))) = (org_id, side.invite) {
        fx.invites.push(Invite {
            id: Uuid::now_v7(),
            org_id,
            user_id,
            email,
        });
    }
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
