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

/// Looks a presented secret up by its digest with `sql` (one `$1` parameter, selecting
/// `org_id` and `hash`), and confirms the match in constant time. `None`: not valid.
async fn org_for_secret(
    state: &AppState,
    sql: &str,
    presented: &str,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let presented = TokenHash::of(presented);
    let Some(row) = state
        .db
        .query_one_raw(stmt(sql, [presented.as_str().into()]))
        .await?
    else {
        return Ok(None);
    };
    let stored = TokenHash(row.try_get("", "hash")?);
    stored
        .ct_eq(&presented)
        .then(|| row.try_get("", "org_id"))
        .transpose()
}

/// The org a valid SCIM token belongs to: a live token, while provisioning is on.
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
        let sql = "SELECT t.org_id, t.token_hash AS hash FROM scim_tokens t JOIN orgs o ON o.id = t.org_id \
                   WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND o.provisioning_enabled";
        let org = org_for_secret(state, sql, token)
            .await?
            .ok_or_else(unauthorized)?;
        state.limiter.check(org).map_err(|wait| {
            ScimApiError::new(
                429,
                None,
                format!(
                    "too many requests for this organisation; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            )
        })?;
        Ok(Self(org))
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
        admin_org_for_key(state, token)
            .await?
            .map(Self)
            .ok_or_else(unauthorized)
    }
}

/// The org an admin key belongs to (the API's bearer key, the admin page's sign-in).
pub(crate) async fn admin_org_for_key(
    state: &AppState,
    key: &str,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let sql = "SELECT id AS org_id, admin_key_hash AS hash FROM orgs WHERE admin_key_hash = $1";
    org_for_secret(state, sql, key).await
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
