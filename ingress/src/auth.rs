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

/// How a refused secret is answered (with what it says is required), and whether an
/// address over its failure budget may still try.
#[derive(Clone, Copy)]
enum Refusal {
    /// SCIM error JSON; an address over its budget may still try (`Attempt::lenient`).
    Scim(&'static str),
    /// The API's error JSON; an address over its budget is refused first (`Attempt::start`).
    Api(&'static str),
}

impl Refusal {
    /// `401`, or `429` with `Retry-After` when the address must `wait`.
    fn answer(self, wait: Option<Duration>) -> Response {
        wait.map_or_else(|| self.unauthorized(), |wait| self.throttled(wait))
    }

    fn unauthorized(self) -> Response {
        match self {
            Self::Scim(required) => ScimApiError::new(401, None, required).into_response(),
            Self::Api(required) => {
                ApiError::new(StatusCode::UNAUTHORIZED, required).into_response()
            }
        }
    }

    fn throttled(self, wait: Duration) -> Response {
        let res = match self {
            Self::Scim(_) => ScimApiError::new(429, None, too_many_failures(wait)).into_response(),
            Self::Api(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, too_many_failures(wait))
                .into_response(),
        };
        with_retry_after(res, wait)
    }

    fn db_error(self, e: sea_orm::DbErr) -> Response {
        match self {
            Self::Scim(_) => ScimApiError::from(e).into_response(),
            Self::Api(_) => ApiError::from(e).into_response(),
        }
    }
}

/// The request's bearer token and the attempt it makes. Refused (the error is the wait, if
/// any, for `Refusal::answer`) without a token, and from an address over its failure
/// budget unless the refusal is lenient.
fn admit<'p, 's>(
    parts: &'p Parts,
    state: &'s AppState,
    refusal: Refusal,
) -> Result<(&'p str, Attempt<'s>), Option<Duration>> {
    let token = bearer(parts).ok_or(None)?;
    let addr = client_addr(parts, &state.settings);
    let attempt = match refusal {
        Refusal::Scim(_) => Attempt::lenient(state, addr),
        Refusal::Api(_) => Attempt::start(state, addr).map_err(Some)?,
    };
    Ok((token, attempt))
}

impl Attempt<'_> {
    /// The presented secret was wrong: counted, and answered (`429` when the address was
    /// over its budget).
    fn refused(self, refusal: Refusal) -> Response {
        let over_budget = self.over_budget;
        self.failed();
        refusal.answer(over_budget)
    }
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

impl Secret {
    fn refusal(self) -> Refusal {
        match self {
            Self::ScimToken => Refusal::Scim("a valid SCIM bearer token is required"),
            Self::AdminKey => Refusal::Api("a valid admin key is required"),
        }
    }
}

/// Looks a presented secret up by its digest (`store::auth`), and confirms the match in
/// constant time. `None`: not valid.
async fn org_for_secret(
    state: &AppState,
    kind: Secret,
    presented: &str,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let presented = TokenHash::of(presented);
    match kind {
        Secret::ScimToken => scim_org(state, &presented).await,
        Secret::AdminKey => Ok(store::auth::admin_key(&state.db, &presented)
            .await?
            .and_then(|(org, stored)| stored.ct_eq(&presented).then_some(org))),
    }
}

/// The org of a SCIM token: kept from a recent lookup (`crate::tokens`), else looked up
/// and kept.
async fn scim_org(state: &AppState, presented: &TokenHash) -> Result<Option<Uuid>, sea_orm::DbErr> {
    if let Some(org) = state.tokens.get(presented) {
        return Ok(Some(org));
    }
    let (generation, started) = (state.tokens.generation(), std::time::Instant::now());
    let found = store::auth::scim_token(&state.db, presented)
        .await?
        .and_then(|(org, stored)| stored.ct_eq(presented).then_some(org));
    if let Some(org) = found {
        state.tokens.keep(generation, presented, org, started);
    }
    Ok(found)
}

/// The org whose secret of `kind` the request carries as its bearer token.
async fn bearer_org(parts: &Parts, state: &AppState, kind: Secret) -> Result<Uuid, Response> {
    let refusal = kind.refusal();
    let (token, attempt) = admit(parts, state, refusal).map_err(|wait| refusal.answer(wait))?;
    let found = org_for_secret(state, kind, token)
        .await
        .map_err(|e| refusal.db_error(e))?;
    found.ok_or_else(|| attempt.refused(refusal))
}

/// The org a valid SCIM token belongs to: a live token, while provisioning is on.
#[derive(Clone, Copy, Debug)]
pub struct ScimOrg(pub Uuid);

impl FromRequestParts<AppState> for ScimOrg {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let org = bearer_org(parts, state, Secret::ScimToken).await?;
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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        bearer_org(parts, state, Secret::AdminKey).await.map(Self)
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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(expected) = &state.settings.operator_token else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not found").into_response());
        };
        let refusal = Refusal::Api("a valid operator token is required");
        let (token, attempt) = admit(parts, state, refusal).map_err(|wait| refusal.answer(wait))?;
        if TokenHash::of(token).ct_eq(&TokenHash::of(expected.expose())) {
            Ok(Self)
        } else {
            Err(attempt.refused(refusal))
        }
    }
}
