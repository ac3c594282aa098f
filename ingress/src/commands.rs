//! Sending a command and awaiting the worker's reply (DESIGN invariant 1), so that every
//! answer is the truth (docs/reliability.md, "Every answer is the truth"): each command
//! carries a deadline (`apply_by`, now + `COMMAND_TIMEOUT_MS`) past which the worker applies
//! nothing. Refused for certain by the broker: `503` at once, nothing changed. No reply by
//! the deadline: the fence below learns from PostgreSQL whether the command committed in
//! time — its own reply if it did, else `503`, and then it never will be applied.

use crate::{error::ScimApiError, request_id::RequestId, state::AppState, store};
use chrono::{DateTime, Utc};
use common::{
    amqp::rpc::RpcError,
    db::redact,
    messages::{Command, Envelope, Reply},
};
use sea_orm::{DatabaseConnection, DbErr};
use std::time::Duration;
use uuid::Uuid;

pub async fn execute(
    state: &AppState,
    org_id: Option<Uuid>,
    request: &RequestId,
    cmd: Command,
) -> Result<Reply, ScimApiError> {
    // The commands that can end a SCIM token's validity: whatever their outcome, this
    // ingress then forgets the tokens it kept (`crate::tokens`).
    let ends_tokens = matches!(
        cmd,
        Command::SetProvisioning(_) | Command::RotateScimToken(_) | Command::DeleteOrg(_)
    );
    let mut envelope = cmd.into_envelope(org_id, &request.0);
    envelope.apply_by = Some(deadline_after(state.rpc.timeout()));
    let result = state.rpc.call(&envelope).await;
    record(&state.settings.amqp_prefix, &envelope.kind, &result);
    let answer = settle(state, &envelope, result).await;
    if ends_tokens {
        // Settled (a command that timed out may still have committed by its deadline), and
        // its announcement may come after this answer: the change holds here from now on.
        state.tokens.forget_all();
    }
    answer
}

/// The answer to a command from what its call came to.
async fn settle(
    state: &AppState,
    envelope: &Envelope,
    result: Result<Reply, RpcError>,
) -> Result<Reply, ScimApiError> {
    match result {
        Ok(reply) => Ok(reply),
        Err(RpcError::NotAccepted(e)) => {
            tracing::warn!(error = %common::secret::redact_urls(&e.to_string()), command_id = %envelope.id, "command not accepted by the broker");
            Err(ScimApiError::unavailable(
                "the request could not be queued; nothing was changed; retry later",
            ))
        }
        Err(RpcError::Timeout(t)) => {
            tracing::warn!(timeout_ms = t.as_millis() as u64, command_id = %envelope.id, "no reply in time; settling it");
            match fence(&state.db, envelope).await {
                Settled::Committed(reply) => {
                    tracing::info!(command_id = %envelope.id, "committed by its deadline; answered from its stored reply");
                    Ok(reply)
                }
                Settled::NotApplied => Err(ScimApiError::unavailable(
                    "the request could not be completed in time and was not applied; it never \
                     will be unless it is sent again; retry later",
                )),
                Settled::Unknown => Err(ScimApiError::unavailable(
                    "the request could not be completed in time; retry later",
                )),
            }
        }
    }
}

/// A command's deadline: `timeout` from now.
fn deadline_after(timeout: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::seconds(25))
}

/// What PostgreSQL says of a command that got no reply by its deadline.
#[derive(Debug)]
pub enum Settled {
    /// It committed in time: this is its reply (a redelivery would get the same).
    Committed(Reply),
    /// It did not, and now never will: PostgreSQL's clock is past its deadline, and no
    /// commit of it was under way.
    NotApplied,
    /// PostgreSQL could not tell within `FENCE_PATIENCE` (unreachable from here, or its
    /// clock far behind this host's): answered `503` as well, and logged as an error.
    Unknown,
}

/// How long the fence keeps asking.
const FENCE_PATIENCE: Duration = Duration::from_secs(10);

/// Settles a command that got no reply by its deadline. Under the command's fence lock
/// (the one the worker holds from its deadline check to its commit, m0005_deadlines.sql)
/// it reads PostgreSQL's clock and the stored reply: once that clock is past the deadline
/// with no reply stored, no worker can commit the command any more. Reads only.
pub async fn fence(db: &DatabaseConnection, env: &Envelope) -> Settled {
    let Some(apply_by) = env.apply_by else {
        return Settled::Unknown;
    };
    let give_up = tokio::time::Instant::now() + FENCE_PATIENCE;
    loop {
        match fence_once(db, env, apply_by).await {
            Ok(Some(settled)) => return settled,
            // PostgreSQL's clock has not reached the deadline yet (this host's runs ahead).
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %redact(&e), command_id = %env.id, "fence failed; trying again")
            }
        }
        if tokio::time::Instant::now() >= give_up {
            tracing::error!(command_id = %env.id, "could not settle a command that got no reply (database unreachable, or its clock behind this host's by more than 10 s)");
            return Settled::Unknown;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fence_once(
    db: &DatabaseConnection,
    env: &Envelope,
    apply_by: DateTime<Utc>,
) -> Result<Option<Settled>, DbErr> {
    let (passed, reply) = store::commands::fence(db, env.id, env.org_id, apply_by).await?;
    if let Some(reply) = reply {
        let reply = serde_json::from_value(reply).unwrap_or_else(|_| {
            Reply::error(500, None, "the stored result of this command is unreadable")
        });
        return Ok(Some(Settled::Committed(reply)));
    }
    Ok(passed.then_some(Settled::NotApplied))
}

/// Counts a command's fate: not accepted by the broker, or accepted (published) and then
/// answered or timed out.
fn record(prefix: &str, kind: &str, result: &Result<Reply, RpcError>) {
    use common::metrics::{
        COMMAND_REPLIES, COMMAND_TIMEOUTS, COMMANDS_PUBLISHED, COMMANDS_REJECTED,
    };
    let (kind, prefix) = (kind.to_owned(), prefix.to_owned());
    let published = || {
        metrics::counter!(COMMANDS_PUBLISHED, "type" => kind.clone(), "prefix" => prefix.clone())
            .increment(1);
    };
    match result {
        Ok(reply) => {
            published();
            let status = reply.status().to_string();
            metrics::counter!(COMMAND_REPLIES, "type" => kind, "status" => status, "prefix" => prefix)
                .increment(1);
        }
        Err(RpcError::Timeout(_)) => {
            published();
            metrics::counter!(COMMAND_TIMEOUTS, "type" => kind, "prefix" => prefix).increment(1);
        }
        Err(RpcError::NotAccepted(_)) => {
            metrics::counter!(COMMANDS_REJECTED, "type" => kind, "prefix" => prefix).increment(1);
        }
    }
}

/// A reply as a SCIM error, if it is one.
pub fn reply_error(reply: &Reply) -> Option<ScimApiError> {
    match reply {
        Reply::Ok { .. } => None,
        Reply::Error {
            status,
            scim_type,
            detail,
        } => Some(ScimApiError::new(
            *status,
            scim_type.as_deref(),
            detail.clone(),
        )),
    }
}
