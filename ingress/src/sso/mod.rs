//! Employee sign-in with OpenID Connect (docs/sso.md) and what a signed-in person sees:
//! `/sso/{org}/sign-in` starts the authorization code flow (PKCE, `state`, `nonce`),
//! `/sso/{org}/callback` finishes it (the ID token checked by `oidc`, the person chosen and
//! recorded by the worker's `person.sign_in`), `/sso/sign-out` ends the session, and
//! `/directory` (`directory`) shows the directory and lets the person edit their own fields as the
//! org's lock allows. The invite page starts the same flow (`start_flow`), so accepting an
//! invite is signing in for the first time. Admin work keeps its own key and session.

mod directory;
pub mod oidc;
pub mod session;
mod view;

use crate::{
    admin::page::session::Keys, commands::execute, request_id::RequestId, state::AppState, store,
};
use axum::{
    Extension, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    middleware::map_response,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use axum_extra::extract::cookie::SignedCookieJar;
use chrono::{DateTime, Utc};
use common::{
    Settings,
    messages::{Command, Reply, SignIn, SignInClaim},
};
use oidc::{Failure, OrgClient};
use serde::Deserialize;
use session::{Flow, Session};
use uuid::Uuid;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What the sign-in needs besides `AppState`'s own: the providers' side (`oidc::Providers`) and the
/// cookie signing key (the admin page's, `ROSTER_SESSION_KEY`).
#[derive(Clone, Default)]
pub struct SsoState {
    pub providers: oidc::Providers,
    pub keys: Keys,
}

/// The redirect URI to register at the provider for `org`.
pub fn redirect_uri(settings: &Settings, org: Uuid) -> String {
    format!("{}/sso/{org}/callback", settings.public_url)
}

/// Where an org's employees start signing in.
pub fn sign_in_url(settings: &Settings, org: Uuid) -> String {
    format!("{}/sso/{org}/sign-in", settings.public_url)
}

/// What an org's sealed client secret is bound to.
pub fn seal_context(org: Uuid) -> String {
    format!("oidc-client-secret:{org}")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sso/{org}/sign-in", get(sign_in))
        .route("/sso/{org}/callback", get(callback))
        .route("/sso/sign-out", post(sign_out))
        .route("/directory", get(directory::directory))
        .route("/directory/me", post(directory::edit_me))
        .layer(map_response(security_headers))
}

pub(crate) async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

pub(super) fn jar(state: &AppState, headers: &axum::http::HeaderMap) -> SignedCookieJar {
    SignedCookieJar::from_headers(headers, state.sso.keys.key(&state.settings).clone())
}

fn secure(settings: &Settings) -> bool {
    settings.public_url.starts_with("https://")
}

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

pub(super) fn unavailable() -> Failure {
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

async fn sign_in(
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
struct Callback {
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
async fn callback(
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

pub(super) fn failure_page(f: &Failure, org: Option<Uuid>) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST);
    let retry = org
        .filter(|_| !matches!(f.code, "sign_in_off" | "misconfigured"))
        .map(|o| format!("/sso/{o}/sign-in"));
    let mut res = (
        status,
        Html(view::failure(f, retry.as_deref()).into_string()),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::error::RETRY_AFTER_SECS),
        );
    }
    res
}

/// Whom a request's session cookie signs in, checked against the database: the person
/// still active and not deactivated since, the org's settings unchanged since.
pub(super) enum Visitor {
    SignedIn(Session),
    /// No session, or one that ended (the org it named, if any, to offer a new sign-in).
    Ended(Option<Uuid>),
}

pub(super) async fn visitor(state: &AppState, jar: &SignedCookieJar) -> Result<Visitor, Failure> {
    let Some(s) = jar
        .get(session::SESSION_COOKIE)
        .and_then(|c| Session::decode(c.value()))
    else {
        return Ok(Visitor::Ended(None));
    };
    if !s.live(Utc::now()) {
        return Ok(Visitor::Ended(Some(s.org)));
    }
    let valid = store::sso::session_valid(
        &state.db,
        s.org,
        s.user,
        s.person_generation,
        s.org_generation,
    )
    .await
    .map_err(|_| unavailable())?;
    Ok(if valid {
        Visitor::SignedIn(s)
    } else {
        Visitor::Ended(Some(s.org))
    })
}

/// The signed-out page (or the session-ended one), removing the cookie.
pub(super) fn ended(jar: SignedCookieJar, org: Option<Uuid>, had_session: bool) -> Response {
    let jar = jar.remove(session::removal(
        session::SESSION_COOKIE,
        session::SESSION_PATH,
    ));
    let html = view::signed_out(
        org.map(|o| format!("/sso/{o}/sign-in")).as_deref(),
        had_session,
    );
    (jar, (StatusCode::UNAUTHORIZED, Html(html.into_string()))).into_response()
}

/// Ends the person's sessions (every one: `person.sign_out` moves their session generation
/// on, so a copy of the cookie stops working too) and removes the cookie. Only a form with
/// the session's CSRF token signs out; any other just loses the cookie in this browser.
#[tracing::instrument(skip_all)]
async fn sign_out(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let jar = jar(&state, &headers);
    let csrf = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    let session = match visitor(&state, &jar).await {
        Ok(Visitor::SignedIn(s)) if s.csrf_matches(csrf.as_deref()) => Some(s),
        _ => None,
    };
    let org = session.as_ref().map(|s| s.org);
    if let Some(s) = session {
        let cmd = Command::SignOut(common::messages::SignOut { user_id: s.user });
        match execute(&state, Some(s.org), &request, cmd).await {
            Ok(Reply::Ok { .. }) => tracing::info!(user = %s.user, "employee signed out"),
            _ => return failure_page(&unavailable(), Some(s.org)),
        }
    }
    let jar = jar.remove(session::removal(
        session::SESSION_COOKIE,
        session::SESSION_PATH,
    ));
    let html = view::signed_out(org.map(|o| format!("/sso/{o}/sign-in")).as_deref(), false);
    (jar, Html(html.into_string())).into_response()
}
