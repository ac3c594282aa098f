//! Applying one command: one transaction holding the effect, its outbox event, an audit
//! entry and the command's id with its reply (DESIGN invariant 3). A redelivered command
//! finds its id and gets the stored reply, with no second effect.

mod admin;
mod audit;
mod commit;
mod effects;
mod erase;
mod groups;
mod guard;
pub mod hot_sql;
mod integrations;
mod invites;
mod manager;
mod org;
mod people;
mod rows;
mod sso;
mod unapplied;
mod users;

use audit::{Audit, Side, audit, audit_with, record_change};
pub use commit::apply_batch;
use common::messages::{Command, Envelope, Reply};
pub use effects::Tx;
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::Value as Json;
use unapplied::expire;
pub use unapplied::{expired_reply, record_unapplied};
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
        Command::AcceptInvite(p) => invites::accept_invite(tx, env, org(env), p).await?,
        Command::CreateIntegration(p) => {
            integrations::create_integration(tx, env, org(env), p).await?
        }
        Command::RevokeIntegration(p) => {
            integrations::revoke_integration(tx, env, org(env), p).await?
        }
        Command::SetSso(p) => sso::set(tx, env, org(env), p).await?,
        Command::SignIn(p) => sso::sign_in(tx, env, org(env), p).await?,
        Command::SignOut(p) => sso::sign_out(tx, env, org(env), p).await?,
        Command::CreateUser(p) => users::create(tx, ctx, env, org(env), p).await?,
        Command::ReplaceUser(p) => users::replace(tx, ctx, env, org(env), p).await?,
        Command::PatchUser(p) => users::patch(tx, ctx, env, org(env), p).await?,
        Command::DeleteUser(p) => users::delete(tx, ctx, env, org(env), p).await?,
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

/// `Command::from_envelope` guarantees every command but `org.create` and `org.delete`
/// names its org.
fn org(env: &Envelope) -> Uuid {
    env.org_id.unwrap_or_default()
}

fn to_json(v: &impl serde::Serialize) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// A SCIM error as the reply.
fn scim_error(e: common::scim::ScimError) -> Reply {
    Reply::error(e.status, e.scim_type.as_deref(), e.detail)
}

/// Locks row `id` of the org in `table` for the rest of the transaction; `None` if the
/// org has no such row.
async fn lock_row<M: sea_orm::FromQueryResult>(
    tx: &Tx<'_>,
    table: &rows::Table,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<M>, DbErr> {
    use sea_orm::ConnectionTrait;
    let row = tx.query_one(&table.lock(org_id, id)).await?;
    row.map(|r| M::from_query_result(&r, "")).transpose()
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
