//! Authentication: the SCIM bearer token (an org's live token while provisioning is on),
//! the org admin key, and the operator token. Presented secrets are hashed and compared
//! in constant time; none is logged. A client address that presents wrong secrets too
//! often is refused (`429`) before its next secret is even checked (`ratelimit::AuthFailures`).

use crate::{
    error::{ApiError, ScimApiError, with_retry_after},
    ratelimit::client_addr,
    state::AppState,
    store,
};
use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use common::secret::TokenHash;
use std::{net::IpAddr, time::Duration, time::Instant};
use uuid::Uuid;

/// One client's attempt to authenticate with a secret, admitted by the brute-force limit.
pub(crate) struct Attempt<'a> {
    state: &'a AppState,
    addr: IpAddr,
    /// Set when the address is over its failure budget but was let try (`lenient`).
    over_budget: Option<Duration>,
}

impl<'a> Attempt<'a> {
    /// Admits an attempt from `addr`, or says how long it must wait: an address over its
    /// failure budget is refused without its secret being looked at.
    pub(crate) fn start(state: &'a AppState, addr: IpAddr) -> Result<Self, Duration> {
        state
            .auth_failures
            .check(addr, Instant::now())
            .inspect_err(|wait| {
                tracing::warn!(client = %addr, retry_after_s = wait.as_secs(), "too many failed authentications; refused");
            })?;
        Ok(Self {
            state,
            addr,
            over_budget: None,
        })
    }

    /// Admits an attempt even from an address over its budget, remembering that it is.
    /// For SCIM tokens: Okta calls from a few egress addresses that every Okta tenant
    /// shares, so a stranger's tenant sending wrong tokens must not lock every org's Okta
    /// out. A valid token still passes (256 random bits: failures teach a guesser
    /// nothing); a wrong one from an address over budget is answered `429`.
    pub(crate) fn lenient(state: &'a AppState, addr: IpAddr) -> Self {
        let over_budget = state.auth_failures.check(addr, Instant::now()).err();
        Self {
            state,
            addr,
            over_budget,
        }
    }

    /// The presented secret was wrong: count it against the address.
    pub(crate) fn failed(self) {
        tracing::info!(client = %self.addr, "authentication failed");
        self.state.auth_failures.failed(self.addr, Instant::now());
    }
}

/// What a refused client is told, in the API's own error shape.
pub(crate) fn too_many_failures(wait: Duration) -> String {
    format!(
        "too many failed authentications from this address; retry in {} s",
        wait.as_secs().max(1)
    )
}

fn scim_throttled(wait: Duration) -> Response {
    let res = ScimApiError::new(429, None, too_many_failures(wait)).into_response();
    with_retry_after(res, wait)
}

fn api_throttled(wait: Duration) -> Response {
    let res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, too_many_failures(wait)).into_response();
    with_retry_after(res, wait)
}

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Which lookup a presented secret is for.
#[derive(Clone, Copy)]
enum Secret {
    ScimToken,
    AdminKey,
}

/// Looks a presented secret up by its digest (`store::auth`), and confirms the match in
/// constant time. `None`: not valid.
async fn org_for_secret(
    state: &AppState,
    kind: Secret,
    presented: &str,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let presented = TokenHash::of(presented);
    let found = match kind {
        Secret::ScimToken => store::auth::scim_token(&state.db, &presented).await?,
        Secret::AdminKey => store::auth::admin_key(&state.db, &presented).await?,
    };
    Ok(found.and_then(|(org, stored)| stored.ct_eq(&presented).then_some(org)))
}

/// The org a valid SCIM token belongs to: a live token, while provisioning is on.
#[derive(Clone, Copy, Debug)]
pub struct ScimOrg(pub Uuid);

impl FromRequestParts<AppState> for ScimOrg {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ScimApiError::new(401, None, "a valid SCIM bearer token is required").into_response()
        };
        let token = bearer(parts).ok_or_else(unauthorized)?;
        let attempt = Attempt::lenient(state, client_addr(parts, &state.settings));
        let found = org_for_secret(state, Secret::ScimToken, token)
            .await
            .map_err(|e| ScimApiError::from(e).into_response())?;
        let Some(org) = found else {
            let over_budget = attempt.over_budget;
            attempt.failed();
            return Err(over_budget.map_or_else(unauthorized, scim_throttled));
        };
        // From here on the request belongs to the org: it goes into its provisioning log.
        if let Some(slot) = parts.extensions.get::<crate::provisioning_log::OrgSlot>() {
            slot.set(org);
        }
        state.limiter.check(org).map_err(|wait| {
            ScimApiError::new(
                429,
                None,
                format!(
                    "too many requests for this organisation; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            )
            .into_response()
        })?;
        Ok(Self(org))
    }
}

/// The org whose admin key the request carries.
#[derive(Clone, Copy, Debug)]
pub struct AdminOrg(pub Uuid);

impl FromRequestParts<AppState> for AdminOrg {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError::new(StatusCode::UNAUTHORIZED, "a valid admin key is required").into_response()
        };
        let token = bearer(parts).ok_or_else(unauthorized)?;
        let attempt =
            Attempt::start(state, client_addr(parts, &state.settings)).map_err(api_throttled)?;
        match admin_org_for_key(state, token).await {
            Ok(Some(org)) => Ok(Self(org)),
            Ok(None) => {
                attempt.failed();
                Err(unauthorized())
            }
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// The org an admin key belongs to (the API's bearer key, the admin page's sign-in).
pub(crate) async fn admin_org_for_key(
    state: &AppState,
    key: &str,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    org_for_secret(state, Secret::AdminKey, key).await
}

/// The operator, authenticated by `ROSTER_OPERATOR_TOKEN`. Without that setting the
/// operator API does not exist (404).
#[derive(Clone, Copy, Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.settings.operator_token else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not found").into_response());
        };
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid operator token is required",
            )
            .into_response()
        };
        let presented = bearer(parts).map(TokenHash::of).ok_or_else(unauthorized)?;
        let attempt =
            Attempt::start(state, client_addr(parts, &state.settings)).map_err(api_throttled)?;
        if presented.ct_eq(&TokenHash::of(expected.expose())) {
            Ok(Self)
        } else {
            attempt.failed();
            Err(unauthorized())
        }
    }
}
