//! Provisioning (on, off, the SCIM token), the admin key, and integration credentials.

use super::{command, org_not_found};
use crate::{error::ApiError, request_id::RequestId, state::AppState, store};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::{
    messages::{
        Command, CreateIntegration, NewToken, RevokeIntegration, RotateAdminKey, RotateScimToken,
        SetProvisioning,
    },
    secret::{self, TokenKind},
};
use serde::Serialize;
use uuid::Uuid;

pub use crate::store::admin::Integration;

#[derive(Clone, Debug, Serialize)]
pub struct ProvisioningStatus {
    pub enabled: bool,
    /// `…` and the token's last four characters.
    pub token_hint: Option<String>,
    pub token_created_at: Option<DateTime<Utc>>,
    /// What to paste into Okta as the SCIM connector base URL.
    pub scim_base_url: String,
}

pub async fn provisioning(state: &AppState, org: Uuid) -> Result<ProvisioningStatus, ApiError> {
    let row = store::admin::provisioning(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(ProvisioningStatus {
        enabled: row.provisioning_enabled,
        token_hint: row.hint.map(|h| format!("…{h}")),
        token_created_at: row.created_at,
        scim_base_url: state.scim_base(),
    })
}

/// Turns provisioning on or off. Returns the new token when switching on issued one
/// (switching on while already on keeps the token Okta holds).
pub async fn set_provisioning(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    enabled: bool,
) -> Result<Option<String>, ApiError> {
    let token = enabled.then(|| secret::issue(TokenKind::Scim));
    let cmd = Command::SetProvisioning(SetProvisioning {
        enabled,
        token: token.as_ref().map(|t| NewToken {
            hash: t.hash.clone(),
            hint: t.hint.clone(),
        }),
    });
    let body = command(state, org, request, cmd).await?;
    let issued = body["token_issued"].as_bool().unwrap_or(false);
    Ok(token.filter(|_| issued).map(|t| t.plain.expose().clone()))
}

/// Issues a new SCIM token; the old one stops working at once.
pub async fn rotate_token(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
) -> Result<String, ApiError> {
    let token = secret::issue(TokenKind::Scim);
    let cmd = Command::RotateScimToken(RotateScimToken {
        token: NewToken {
            hash: token.hash.clone(),
            hint: token.hint.clone(),
        },
    });
    command(state, org, request, cmd).await?;
    Ok(token.plain.expose().clone())
}

/// Issues a new admin key for the org; the old one stops working at once, and `/admin`
/// sessions signed in with it end. `by_operator`: the operator's reset of a leaked key.
pub async fn rotate_admin_key(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    by_operator: bool,
) -> Result<String, ApiError> {
    let key = secret::issue(TokenKind::AdminKey);
    let cmd = Command::RotateAdminKey(RotateAdminKey {
        admin_key_hash: key.hash.clone(),
        by_operator,
    });
    command(state, org, request, cmd).await?;
    Ok(key.plain.expose().clone())
}

/// A newly issued integration credential: the only time `credential` is shown.
#[derive(Clone, Debug, Serialize)]
pub struct NewIntegration {
    pub id: Uuid,
    pub name: String,
    pub credential: String,
    pub created_at: DateTime<Utc>,
}

/// Issues an integration credential for another service of the org.
pub async fn create_integration(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    name: String,
) -> Result<NewIntegration, ApiError> {
    let credential = secret::issue(TokenKind::Integration);
    let id = Uuid::now_v7();
    let cmd = Command::CreateIntegration(CreateIntegration {
        integration_id: id,
        name,
        credential: NewToken {
            hash: credential.hash.clone(),
            hint: credential.hint.clone(),
        },
    });
    let body = command(state, org, request, cmd).await?;
    let unreadable = |_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable reply");
    Ok(NewIntegration {
        id,
        name: serde_json::from_value(body["name"].clone()).map_err(unreadable)?,
        credential: credential.plain.expose().clone(),
        created_at: serde_json::from_value(body["created_at"].clone()).map_err(unreadable)?,
    })
}

/// The org's integrations, newest first, revoked ones included.
pub async fn integrations(state: &AppState, org: Uuid) -> Result<Vec<Integration>, ApiError> {
    let rows = store::admin::integrations(&state.db, org).await?;
    Ok(rows
        .into_iter()
        .map(|r| Integration {
            hint: format!("…{}", r.hint),
            ..r
        })
        .collect())
}

/// Revokes an integration's credential: commands carrying it are refused from now on.
pub async fn revoke_integration(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    id: Uuid,
) -> Result<(), ApiError> {
    let cmd = Command::RevokeIntegration(RevokeIntegration { integration_id: id });
    command(state, org, request, cmd).await.map(|_| ())
}
