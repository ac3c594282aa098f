//! Authentication: the SCIM bearer token (an org's live token while provisioning is on),
//! the org admin key, and the operator token. Presented secrets are hashed and compared
//! in constant time; none is logged.

use crate::{
    app::AppState,
    error::{ApiError, ScimApiError},
};
use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
};
use common::{db::stmt, secret::TokenHash};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The org a valid SCIM token belongs to.
#[derive(Clone, Copy, Debug)]
pub struct ScimOrg(pub Uuid);

impl FromRequestParts<AppState> for ScimOrg {
    type Rejection = ScimApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || ScimApiError::new(401, None, "a valid SCIM bearer token is required");
        let token = bearer(parts).ok_or_else(unauthorized)?;
        let presented = TokenHash::of(token);
        let row = state
            .db
            .query_one_raw(stmt(
                "SELECT t.org_id, t.token_hash FROM scim_tokens t JOIN orgs o ON o.id = t.org_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND o.provisioning_enabled",
                [presented.as_str().into()],
            ))
            .await?
            .ok_or_else(unauthorized)?;
        let stored = TokenHash(row.try_get("", "token_hash")?);
        if !stored.ct_eq(&presented) {
            return Err(unauthorized());
        }
        Ok(Self(row.try_get("", "org_id")?))
    }
}

/// The org whose admin key the request carries.
#[derive(Clone, Copy, Debug)]
pub struct AdminOrg(pub Uuid);

impl FromRequestParts<AppState> for AdminOrg {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "a valid admin key is required");
        let token = bearer(parts).ok_or_else(unauthorized)?;
        let presented = TokenHash::of(token);
        let row = state
            .db
            .query_one_raw(stmt(
                "SELECT id, admin_key_hash FROM orgs WHERE admin_key_hash = $1",
                [presented.as_str().into()],
            ))
            .await?
            .ok_or_else(unauthorized)?;
        let stored = TokenHash(row.try_get("", "admin_key_hash")?);
        if !stored.ct_eq(&presented) {
            return Err(unauthorized());
        }
        Ok(Self(row.try_get("", "id")?))
    }
}

/// The operator, authenticated by `ROSTER_OPERATOR_TOKEN`. Without that setting the
/// operator API does not exist (404).
#[derive(Clone, Copy, Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.settings.operator_token else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not found"));
        };
        let presented = bearer(parts).map(TokenHash::of);
        match presented {
            Some(p) if p.ct_eq(&TokenHash::of(expected.expose())) => Ok(Self),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid operator token is required",
            )),
        }
    }
}
