//! The authorization code flow: `/sso/{org}/sign-in` (and the invite page's
//! `start_flow`) sends the browser to the provider with PKCE, `state` and `nonce`;
//! `/sso/{org}/callback` checks the ID token (`oidc`) and has the worker choose and record
//! the person (`person.sign_in`).

use super::oidc::{self, Failure, OrgClient};
use super::session::{self, Flow, Session};
use super::{failure_page, jar, redirect_uri, seal_context, secure};
use crate::{commands::execute, request_id::RequestId, state::AppState, store};
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use common::messages::{Command, Reply, SignIn, SignInClaim};
use serde::Deserialize;
use uuid::Uuid;

/// An org's sign-in settings, the secret opened.
struct OrgSso {
    client: OrgClient,
    claim: SignInClaim,
    generation: i64,
}

fn not_set_up() -> Failure {
    Failure::new(
        "sign_in_off",
        404,
        "Sign-in with Okta is not set up for this organisation. Ask your administrator.",
    )
}

pub(crate) fn unavailable() -> Failure {
    Failure::new(
        "unavailable",
        503,
        "Roster is busy right now. Try again in a few seconds.",
    )
}

/// The org's settings, or the failure to show: off, or a secret this ingress cannot open
/// (another `ROSTER_SECRETS_KEY`).
async fn org_sso(state: &AppState, org: Uuid) -> Result<OrgSso, Failure> {
    let row = store::sso::org_oidc(&state.db, org)
        .await
        .map_err(|_| unavailable())?
        .ok_or_else(not_set_up)?;
    let (Some(issuer), Some(client_id), Some(sealed)) =
        (row.oidc_issuer, row.oidc_client_id, row.oidc_client_secret)
    else {
        return Err(not_set_up());
    };
    let secret = state
        .settings
        .secrets_key
        .as_ref()
        .and_then(|k| k.open(&seal_context(org), &sealed).ok())
        .ok_or_else(|| {
            tracing::error!(%org, "the org's OIDC client secret cannot be opened: ROSTER_SECRETS_KEY unset or changed");
            Failure::new(
                "misconfigured",
                500,
                "Sign-in is misconfigured on Roster's side. Tell your administrator (the client secret must be entered again).",
            )
        })?;
    let claim = match row.oidc_claim.as_deref() {
        Some("preferred_username") => SignInClaim::PreferredUsername,
        _ => SignInClaim::Email,
    };
    Ok(OrgSso {
        client: OrgClient {
            issuer,
            client_id,
            client_secret: secret,
            redirect_uri: redirect_uri(&state.settings, org),
        },
        claim,
        generation: row.oidc_generation,
    })
}

/// Starts a sign-in for `org` (from an invite: its digest rides along): the flow cookie,
/// and a redirect to the provider.
pub async fn start_flow(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    org: Uuid,
    invite_hash: Option<String>,
) -> Response {
    let outcome = async {
        let sso = org_sso(state, org).await?;
        let start = oidc::start(&state.sso.providers, &sso.client).await?;
        Ok::<_, Failure>((sso, start))
    }
    .await;
    let (sso, start) = match outcome {
        Ok(ok) => ok,
        Err(f) => return failure_page(&f, Some(org)),
    };
    let now = Utc::now();
    let flow = Flow {
        org,
        expires: (now + session::FLOW_FOR).timestamp(),
        state: start.state,
        nonce: start.nonce,
        pkce_verifier: start.pkce_verifier,
        generation: sso.generation,
        invite_hash,
    };
    let jar = jar(state, headers).add(flow.cookie(secure(&state.settings), now));
    (jar, Redirect::to(&start.url)).into_response()
}

fn org_path(org: &str) -> Option<Uuid> {
    Uuid::parse_str(org).ok()
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(org): Path<String>,
) -> Response {
    match org_path(&org) {
        Some(org) => start_flow(&state, &headers, org, None).await,
        None => failure_page(&not_set_up(), None),
    }
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn stale() -> Failure {
    Failure::new(
        "state_mismatch",
        400,
        "This sign-in was not started in this browser, was already used, or took too long (state mismatch). Start again.",
    )
}

#[tracing::instrument(skip_all, fields(%org))]
pub(super) async fn callback(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    Path(org): Path<String>,
    Query(q): Query<Callback>,
) -> Response {
    let jar = jar(&state, &headers);
    let now = Utc::now();
    let flow = jar
        .get(session::FLOW_COOKIE)
        .and_then(|c| Flow::decode(c.value(), now));
    // The flow is used once, whatever happens next.
    let jar = jar.remove(session::removal(session::FLOW_COOKIE, session::FLOW_PATH));
    let org = org_path(&org);
    let outcome = finish(&state, &request, flow, org, q, now).await;
    let code = outcome.as_ref().map_or_else(|f| f.code, |_| "signed_in");
    metrics::counter!(common::metrics::SIGN_INS, "outcome" => code, "prefix" => state.settings.amqp_prefix.clone())
        .increment(1);
    match outcome {
        Ok(session) => {
            tracing::info!(user = %session.user, "employee signed in");
            let jar = jar.add(session.cookie(secure(&state.settings), now));
            (jar, Redirect::to("/directory")).into_response()
        }
        Err(f) => {
            tracing::info!(code = f.code, "sign-in refused");
            (jar, failure_page(&f, org)).into_response()
        }
    }
}

async fn finish(
    state: &AppState,
    request: &RequestId,
    flow: Option<Flow>,
    org: Option<Uuid>,
    q: Callback,
    now: DateTime<Utc>,
) -> Result<Session, Failure> {
    let flow = flow
        .filter(|f| Some(f.org) == org)
        .filter(|f| q.state.as_deref().is_some_and(|s| f.state_matches(s)))
        .ok_or_else(stale)?;
    if let Some(error) = q.error {
        return Err(Failure::new(
            "provider_refused",
            401,
            format!(
                "Your identity provider did not sign you in ({error}). If you should have access, ask your administrator to assign you the app in Okta."
            ),
        ));
    }
    let code = q.code.filter(|c| !c.is_empty()).ok_or_else(stale)?;
    let sso = org_sso(state, flow.org).await?;
    if sso.generation != flow.generation {
        return Err(settings_changed());
    }
    let verified = oidc::finish(
        &state.sso.providers,
        &sso.client,
        &code,
        &flow.pkce_verifier,
        &flow.nonce,
    )
    .await?;
    let cmd = Command::SignIn(SignIn {
        claim: sso.claim,
        value: verified.claim(sso.claim)?.trim().to_owned(),
        subject: verified.subject.clone(),
        oidc_generation: flow.generation,
        invite_token_hash: flow.invite_hash.map(common::secret::TokenHash),
    });
    let reply = execute(state, Some(flow.org), request, cmd)
        .await
        .map_err(|_| unavailable())?;
    match reply {
        Reply::Ok { body, .. } => {
            let user: Uuid =
                serde_json::from_value(body["user_id"].clone()).map_err(|_| unavailable())?;
            let generation = |k: &str| body[k].as_i64().unwrap_or(-1);
            Ok(Session::new(
                flow.org,
                user,
                generation("session_generation"),
                generation("oidc_generation"),
                now,
            ))
        }
        Reply::Error {
            status,
            scim_type,
            detail,
        } => Err(refusal(status, scim_type.as_deref(), detail)),
    }
}

fn settings_changed() -> Failure {
    Failure::new(
        "settings_changed",
        409,
        "Your organisation's sign-in settings changed while you were signing in. Start again.",
    )
}

/// The worker's refusal, with its code.
fn refusal(status: u16, code: Option<&str>, detail: String) -> Failure {
    let code = match code {
        Some("not_in_directory") => "not_in_directory",
        Some("deactivated") => "deactivated",
        Some("ambiguous") => "ambiguous",
        Some("settings_changed") => return settings_changed(),
        Some("sign_in_off") => return not_set_up(),
        _ => "refused",
    };
    let message = match code {
        "not_in_directory" => format!(
            "You are not in this organisation's directory ({detail}). If you should be, ask your administrator to assign you the app in Okta."
        ),
        "deactivated" => {
            "Your profile in this organisation's directory is deactivated, so you cannot sign in."
                .to_owned()
        }
        _ => format!("Roster did not sign you in: {detail}."),
    };
    Failure::new(code, status, message)
}
