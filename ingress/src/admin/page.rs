//! `/admin`: the Okta integration page, server-rendered HTML for an org admin. Sign-in
//! with the admin key starts a signed session cookie (`page::session`); every form carries
//! its CSRF token; every read and write goes through `admin::service` (the ingress never
//! writes the database). New SCIM tokens are rendered once, in the response to the POST
//! that issued them, and stored nowhere.

mod chart;
mod form;
pub(crate) mod session;
mod view;
mod visit;

use crate::{
    admin::service,
    auth::{Attempt, admin_org_for_key, too_many_failures},
    error::with_retry_after,
    state::AppState,
};
use axum::{
    Extension, Router,
    body::Bytes,
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::map_response,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use common::messages::GuardDecision;
use common::{mapping::Mapping, secret::TokenHash};
use form::Fields;
use session::{Keys, Session};
use uuid::Uuid;
use view::Notice;
use visit::{PageError, Submit, Visit};

const CSP: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");
/// Activity entries the page shows.
const ACTIVITY: u64 = 20;
/// Provisioning-log entries the page shows.
const LOG_ENTRIES: u64 = 20;
/// People the page lists.
const PEOPLE: u64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(show))
        .route("/admin/login", post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/provisioning", post(provisioning))
        .route("/admin/token", post(rotate_token))
        .route("/admin/settings", post(settings))
        .route("/admin/mappings", post(mappings))
        .route("/admin/sso", post(sso))
        .route("/admin/sso/off", post(sso_off))
        .route(
            "/admin/guard/approve",
            post(|State(state), f| decide_guard(state, f, GuardDecision::Approve)),
        )
        .route(
            "/admin/guard/reject",
            post(|State(state), f| decide_guard(state, f, GuardDecision::Reject)),
        )
        .route("/admin/org-chart", get(chart::show))
        .route(
            "/admin/app.js",
            get(|| static_file("text/javascript", SCRIPT)),
        )
        .route("/admin/style.css", get(|| static_file("text/css", STYLE)))
        .layer(map_response(security_headers))
        .layer(Extension(Keys::default()))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Loads the page's data and renders it for the session.
async fn render(
    state: &AppState,
    org: Uuid,
    session: &Session,
    notice: Notice,
    rows: Option<Vec<Mapping>>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let log_query = service::LogQuery {
        limit: LOG_ENTRIES,
        ..Default::default()
    };
    let (provisioning, settings, mappings, activity, people, sso, guard, (log, _)) = tokio::try_join!(
        service::provisioning(state, org),
        service::settings(state, org),
        service::mappings(state, org),
        service::activity(state, org, ACTIVITY, None),
        service::people(state, org, true, PEOPLE, 0),
        service::sso(state, org),
        service::guard(state, org),
        service::provisioning_log(state, org, &log_query),
    )?;
    let page = view::Page {
        guard,
        log,
        provisioning,
        settings,
        sso,
        mappings: rows.unwrap_or(mappings),
        activity,
        people,
    };
    let html = view::page(&page, &session.csrf, &notice).into_string();
    Ok((status, Html(html)).into_response())
}

/// Shows a new token, once.
async fn with_token(
    state: &AppState,
    org: Uuid,
    session: &Session,
    token: String,
) -> Result<Response, PageError> {
    let notice = Notice {
        token: Some(token),
        error: None,
    };
    render(state, org, session, notice, None, StatusCode::OK).await
}

fn see_other() -> Response {
    Redirect::to("/admin").into_response()
}

async fn show(State(state): State<AppState>, visit: Visit) -> Result<Response, PageError> {
    match visit.session.as_ref().and_then(|s| Some((s.org?, s))) {
        Some((org, s)) => render(&state, org, s, Notice::default(), None, StatusCode::OK).await,
        None => Ok(visit.sign_in_form(StatusCode::OK, None)),
    }
}

#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Fields::parse(&body);
    let form_ok = visit
        .session
        .as_ref()
        .is_some_and(|s| s.csrf_matches(form.get("csrf")));
    if !form_ok {
        return Err(PageError::Forbidden);
    }
    let key = form.get("admin_key").unwrap_or_default().trim();
    let refused = |visit: Visit| {
        tracing::info!("admin page sign-in refused");
        let error = "That admin key is not valid.";
        Ok(visit.sign_in_form(StatusCode::UNAUTHORIZED, Some(error)))
    };
    if key.is_empty() {
        return refused(visit);
    }
    let attempt = match Attempt::start(&state, visit.addr) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let error = format!("{}.", too_many_failures(wait));
            let form = visit.sign_in_form(StatusCode::TOO_MANY_REQUESTS, Some(&error));
            return Ok(with_retry_after(form, wait));
        }
    };
    let Some(org) = admin_org_for_key(&state, key).await? else {
        attempt.failed();
        return refused(visit);
    };
    tracing::info!(%org, "admin page sign-in");
    // A new session, whatever cookie came with the form: nothing is promoted.
    let fingerprint = session::key_fingerprint(TokenHash::of(key).as_str());
    let session = Session::signed_in(org, fingerprint, visit.now);
    Ok((visit.with(&session), see_other()).into_response())
}

async fn logout(visit: Visit, body: Bytes) -> Result<Response, PageError> {
    visit.authorize(&Fields::parse(&body))?;
    Ok((visit.jar.remove(session::removal()), see_other()).into_response())
}

#[tracing::instrument(skip_all)]
async fn provisioning(State(state): State<AppState>, f: Submit) -> Result<Response, PageError> {
    let enabled = f.form.checked("enabled");
    match service::set_provisioning(&state, f.org, &f.request, enabled).await? {
        Some(token) => with_token(&state, f.org, &f.session, token).await,
        None => Ok(see_other()),
    }
}

#[tracing::instrument(skip_all)]
async fn rotate_token(State(state): State<AppState>, f: Submit) -> Result<Response, PageError> {
    let token = service::rotate_token(&state, f.org, &f.request).await?;
    with_token(&state, f.org, &f.session, token).await
}

/// Approves or rejects what the deprovisioning guard holds.
#[tracing::instrument(skip_all)]
async fn decide_guard(
    state: AppState,
    f: Submit,
    decision: GuardDecision,
) -> Result<Response, PageError> {
    service::decide_guard(&state, f.org, &f.request, decision).await?;
    Ok(see_other())
}

#[tracing::instrument(skip_all)]
async fn settings(State(state): State<AppState>, f: Submit) -> Result<Response, PageError> {
    let form = &f.form;
    let change = common::messages::UpdateSettings {
        send_invites: Some(form.checked("send_invites")),
        lock_synced_fields: Some(form.checked("lock_synced_fields")),
        deactivated_people: form::deactivated_people(form),
        deprovision_guard: None,
        manager_match: form::manager_match(form)?,
    };
    service::update_settings(&state, f.org, &f.request, change).await?;
    Ok(see_other())
}

#[tracing::instrument(skip_all)]
async fn mappings(State(state): State<AppState>, f: Submit) -> Result<Response, PageError> {
    let (org, session, request) = (f.org, &f.session, &f.request);
    let rows = match form::mapping_rows(&f.form) {
        Ok(rows) => rows,
        Err(e) => return mapping_error(&state, org, session, e, None).await,
    };
    match service::set_mappings(&state, org, request, rows.clone()).await {
        Ok(_) => Ok(see_other()),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            mapping_error(&state, org, session, e.message, Some(rows)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Employee sign-in settings; a blank secret keeps the stored one. A refused change shows
/// the page again with the problem named.
#[tracing::instrument(skip_all)]
async fn sso(State(state): State<AppState>, f: Submit) -> Result<Response, PageError> {
    let (form, org, session) = (&f.form, f.org, &f.session);
    let claim = match form.get("claim") {
        Some("preferred_username") => common::messages::SignInClaim::PreferredUsername,
        _ => common::messages::SignInClaim::Email,
    };
    let change = service::SsoChange {
        issuer: form.get("issuer").unwrap_or_default().to_owned(),
        client_id: form.get("client_id").unwrap_or_default().to_owned(),
        client_secret: form
            .get("client_secret")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        claim: Some(claim),
    };
    match service::set_sso(&state, org, &f.request, change).await {
        Ok(_) => Ok(see_other()),
        Err(e) if e.status.is_client_error() => {
            let notice = Notice {
                token: None,
                error: Some(format!("Sign-in was not saved: {}", e.message)),
            };
            render(&state, org, session, notice, None, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

#[tracing::instrument(skip_all)]
async fn sso_off(State(state): State<AppState>, f: Submit) -> Result<Response, PageError> {
    service::disable_sso(&state, f.org, &f.request).await?;
    Ok(see_other())
}

/// The page again with the problem named and the rows as submitted.
async fn mapping_error(
    state: &AppState,
    org: Uuid,
    session: &Session,
    error: String,
    rows: Option<Vec<Mapping>>,
) -> Result<Response, PageError> {
    let notice = Notice {
        token: None,
        error: Some(format!("The mapping was not saved: {error}")),
    };
    render(state, org, session, notice, rows, StatusCode::BAD_REQUEST).await
}
