//! The org's employee sign-in (OpenID Connect) settings.

use super::{command, org_not_found};
use crate::{error::ApiError, request_id::RequestId, state::AppState, store};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::messages::{Command, OidcClient, SetSso, SignInClaim};
use serde::Serialize;
use uuid::Uuid;

/// The org's employee sign-in (OpenID Connect) as the admin sees it: never the secret.
#[derive(Clone, Debug, Serialize)]
pub struct Sso {
    pub enabled: bool,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Whether a client secret is stored (it is never shown again).
    pub client_secret_set: bool,
    pub claim: SignInClaim,
    pub updated_at: Option<DateTime<Utc>>,
    /// What to paste into Okta's app as the sign-in redirect URI.
    pub redirect_uri: String,
    /// Where employees start signing in.
    pub sign_in_url: String,
    /// Whether the ingress has `ROSTER_SECRETS_KEY`, without which sign-in cannot be set up.
    pub configurable: bool,
}

/// A change of the org's sign-in settings; `client_secret` absent keeps the stored one,
/// `claim` absent keeps the current claim.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoChange {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub claim: Option<SignInClaim>,
}

/// By hand, so the client secret never reaches a log line.
impl std::fmt::Debug for SsoChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoChange")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("claim", &self.claim)
            .finish()
    }
}

pub async fn sso(state: &AppState, org: Uuid) -> Result<Sso, ApiError> {
    let row = store::admin::sso(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(Sso {
        enabled: row.oidc_issuer.is_some(),
        issuer: row.oidc_issuer,
        client_id: row.oidc_client_id,
        client_secret_set: row.has_secret,
        claim: if row.oidc_claim == SignInClaim::PreferredUsername.as_str() {
            SignInClaim::PreferredUsername
        } else {
            SignInClaim::Email
        },
        updated_at: row.oidc_updated_at,
        redirect_uri: crate::sso::redirect_uri(&state.settings, org),
        sign_in_url: crate::sso::sign_in_url(&state.settings, org),
        configurable: state.settings.secrets_key.is_some(),
    })
}

/// Sets the org's sign-in: the secret is sealed here (`common::sealed`, bound to the org)
/// and only its sealed form travels and is stored. Every change ends every employee
/// session of the org.
pub async fn set_sso(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    change: SsoChange,
) -> Result<Sso, ApiError> {
    let Some(key) = &state.settings.secrets_key else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "employee sign-in cannot be set up: the operator has not set ROSTER_SECRETS_KEY",
        ));
    };
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    let issuer = change.issuer.trim().trim_end_matches('/').to_owned();
    common::sso::validate_issuer(&issuer).map_err(bad)?;
    let client_id = change.client_id.trim().to_owned();
    common::sso::validate_client_value("client_id", &client_id).map_err(bad)?;
    let secret = change.client_secret.as_deref().map(str::trim);
    if let Some(s) = secret {
        common::sso::validate_client_value("client_secret", s).map_err(bad)?;
    }
    let claim = match change.claim {
        Some(c) => c,
        None => sso(state, org).await?.claim,
    };
    let cmd = Command::SetSso(SetSso {
        oidc: Some(OidcClient {
            issuer,
            client_id,
            client_secret_sealed: secret.map(|s| key.seal(&crate::sso::seal_context(org), s)),
            claim,
        }),
    });
    command(state, org, request, cmd).await?;
    sso(state, org).await
}

/// Turns employee sign-in off: the settings are forgotten and every session ends.
pub async fn disable_sso(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
) -> Result<Sso, ApiError> {
    command(state, org, request, Command::SetSso(SetSso { oidc: None })).await?;
    sso(state, org).await
}
