//! Sending a command and awaiting the worker's reply (DESIGN invariant 1). Not accepted by
//! the broker, or no reply in time: `503` with `Retry-After` — in the second case the
//! command still completes, and the client's retry finds its effect.

use crate::{app::AppState, error::ScimApiError, request_id::RequestId};
use common::{
    amqp::rpc::RpcError,
    messages::{Command, Reply},
};
use uuid::Uuid;

pub async fn execute(
    state: &AppState,
    org_id: Option<Uuid>,
    request: &RequestId,
    cmd: Command,
) -> Result<Reply, ScimApiError> {
    let envelope = cmd.into_envelope(org_id, &request.0);
    let result = state.rpc.call(&envelope).await;
    record(&state.settings.amqp_prefix, &envelope.kind, &result);
    match result {
        Ok(reply) => Ok(reply),
        Err(RpcError::NotAccepted(e)) => {
            tracing::warn!(error = %common::secret::redact_urls(&e.to_string()), command_id = %envelope.id, "command not accepted by the broker");
            Err(ScimApiError::unavailable(
                "the request could not be queued; nothing was changed; retry later",
            ))
        }
        Err(RpcError::Timeout(t)) => {
            tracing::warn!(timeout_ms = t.as_millis() as u64, command_id = %envelope.id, "no reply in time");
            Err(ScimApiError::unavailable(
                "the request was accepted but is still being processed; retry later",
            ))
        }
    }
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
