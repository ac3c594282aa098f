//! Employee sign-in with OpenID Connect (docs/sso.md) and what a signed-in person sees:
//! `/sso/{org}/sign-in` starts the authorization code flow (PKCE, `state`, `nonce`),
//! `/sso/{org}/callback` finishes it (the ID token checked by `oidc`, the person chosen and
//! recorded by the worker's `person.sign_in`), `/sso/sign-out` ends the session, and
//! `/directory` (`directory`) shows the directory and lets the person edit their own fields as the
//! org's lock allows. The invite page starts the same flow (`start_flow`), so accepting an
//! invite is signing in for the first time. Admin work keeps its own key and session.

mod directory;
mod flow;
pub mod oidc;
pub mod session;
mod view;

use crate::{
    admin::page::session::Keys, commands::execute, request_id::RequestId, state::AppState, store,
};
use axum::{
    Extension, Router,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::map_response,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use axum_extra::extract::cookie::SignedCookieJar;
use chrono::Utc;
use common::{
    Settings,
    messages::{Command, Reply},
};
use oidc::Failure;
use session::Session;
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

pub use flow::start_flow;
pub(super) use flow::unavailable;
use flow::{callback, sign_in};

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

/// The session-ended page (`401`), removing the cookie; `had_session` says one ended.
pub(super) fn ended(jar: SignedCookieJar, org: Option<Uuid>, had_session: bool) -> Response {
    signed_out(jar, org, had_session, StatusCode::UNAUTHORIZED)
}

/// The signed-out page, removing the cookie, with a new sign-in for `org`.
fn signed_out(
    jar: SignedCookieJar,
    org: Option<Uuid>,
    had_session: bool,
    status: StatusCode,
) -> Response {
    let jar = jar.remove(session::removal(
        session::SESSION_COOKIE,
        session::SESSION_PATH,
    ));
    let html = view::signed_out(
        org.map(|o| format!("/sso/{o}/sign-in")).as_deref(),
        had_session,
    );
    (jar, (status, Html(html.into_string()))).into_response()
}

/// An employee's form post: the request's id, its signed cookies and the form's fields.
pub(super) struct FormPost {
    request: RequestId,
    jar: SignedCookieJar,
    fields: Vec<(String, String)>,
}

impl FormPost {
    /// The form's CSRF token, if it sent one.
    fn csrf(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for FormPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Extension(request) = Extension::<RequestId>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let jar = jar(state, &parts.headers);
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = form_urlencoded::parse(&body).into_owned().collect();
        Ok(Self {
            request,
            jar,
            fields,
        })
    }
}

/// Ends the person's sessions (every one: `person.sign_out` moves their session generation
/// on, so a copy of the cookie stops working too) and removes the cookie. Only a form with
/// the session's CSRF token signs out; any other just loses the cookie in this browser.
#[tracing::instrument(skip_all)]
async fn sign_out(State(state): State<AppState>, post: FormPost) -> Response {
    let session = match visitor(&state, &post.jar).await {
        Ok(Visitor::SignedIn(s)) if s.csrf_matches(post.csrf()) => Some(s),
        _ => None,
    };
    let org = session.as_ref().map(|s| s.org);
    if let Some(s) = session {
        let cmd = Command::SignOut(common::messages::SignOut { user_id: s.user });
        match execute(&state, Some(s.org), &post.request, cmd).await {
            Ok(Reply::Ok { .. }) => tracing::info!(user = %s.user, "employee signed out"),
            _ => return failure_page(&unavailable(), Some(s.org)),
        }
    }
    signed_out(post.jar, org, false, StatusCode::OK)
}
