//! The admin operations behind both the JSON API (`admin::api`) and the integration page
//! (`admin::page`): reads from PostgreSQL, writes as commands. Secrets (SCIM tokens,
//! integration credentials) are generated here, returned once, and sent to the worker only
//! as digests.

use crate::{commands::execute, error::ApiError, request_id::RequestId, state::AppState};
use axum::http::StatusCode;
use common::messages::{Command, Reply};
use serde_json::Value;
use uuid::Uuid;

mod credentials;
mod guard;
mod people;
mod settings;
mod sso;

pub use crate::store::admin::{Activity, HeldChange, LogEntry};
pub use credentials::*;
pub use guard::*;
pub use people::*;
pub use settings::*;
pub use sso::*;

/// A reply as an admin API result: the body on success, `{"error"}` otherwise.
pub fn reply_body(reply: Reply) -> Result<(StatusCode, Value), ApiError> {
    match reply {
        Reply::Ok { status, body } => {
            Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
        }
        Reply::Error { status, detail, .. } => Err(ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail,
        )),
    }
}

fn org_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "organisation not found")
}

async fn command(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    cmd: Command,
) -> Result<Value, ApiError> {
    Ok(reply_body(execute(state, Some(org), request, cmd).await?)?.1)
}
