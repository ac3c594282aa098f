//! `/admin`: the Okta integration page, server-rendered HTML for an org admin. Sign-in
//! with the admin key starts a signed session cookie (`page::session`); every form carries
//! its CSRF token; every read and write goes through `admin::service` (the ingress never
//! writes the database). New SCIM tokens are rendered once, in the response to the POST
//! that issued them, and stored nowhere.

mod chart;
pub(crate) mod session;
mod view;

use crate::{
    admin::service,
    auth::{Attempt, admin_org_for_key, too_many_failures},
    error::{ApiError, with_retry_after},
    ratelimit::client_addr,
    request_id::RequestId,
    state::AppState,
};
use axum::{
    Extension, Router,
    body::Bytes,
    extract::{FromRequestParts, State},
    http::{HeaderName, HeaderValue, StatusCode, header, request::Parts},
    middleware::map_response,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use axum_extra::extract::cookie::SignedCookieJar;
use chrono::{DateTime, Utc};
use common::{
    mapping::{Mapping, Policy},
    org_chart::MatchKey,
    secret::TokenHash,
};
use session::{Keys, Session};
use std::net::IpAddr;
use uuid::Uuid;
use view::Notice;

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
        .route("/admin/guard/approve", post(approve_guard))
        .route("/admin/guard/reject", post(reject_guard))
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

/// A browser's visit: its cookie jar (signed with the session key), the valid session in
/// it if any, the time and the client's address.
struct Visit {
    jar: SignedCookieJar,
    session: Option<Session>,
    now: DateTime<Utc>,
    secure: bool,
    addr: IpAddr,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let keys = parts.extensions.get::<Keys>().cloned().ok_or_else(|| {
            PageError::Api(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        })?;
        let jar = SignedCookieJar::from_headers(&parts.headers, keys.key(&state.settings).clone());
        let now = Utc::now();
        let session = jar
            .get(session::COOKIE)
            .and_then(|c| Session::decode(c.value(), now));
        let session = match session {
            Some(s) if s.org.is_some() => still_valid(state, s).await?,
            other => other,
        };
        Ok(Self {
            jar,
            session,
            now,
            secure: session::secure(&state.settings),
            addr: client_addr(parts, &state.settings),
        })
    }
}

/// A signed-in session, if the org still has the admin key it signed in with.
async fn still_valid(state: &AppState, s: Session) -> Result<Option<Session>, PageError> {
    let Some(org) = s.org else { return Ok(None) };
    let current = crate::store::auth::admin_key_hash(&state.db, org).await?;
    Ok(current.filter(|hash| s.key_matches(hash)).map(|_| s))
}

impl Visit {
    /// The signed-in org and session, after checking the form's CSRF token.
    fn authorize(&self, form: &Fields) -> Result<(Uuid, &Session), PageError> {
        let s = self.session.as_ref().ok_or(PageError::SignIn)?;
        let org = s.org.ok_or(PageError::SignIn)?;
        if !s.csrf_matches(form.get("csrf")) {
            return Err(PageError::Forbidden);
        }
        Ok((org, s))
    }

    /// The jar with `session` set in it.
    fn with(self, session: &Session) -> SignedCookieJar {
        self.jar.add(session.cookie(self.secure, self.now))
    }

    /// A fresh sign-in form (with a new form-only session), answering `status`.
    fn sign_in_form(self, status: StatusCode, error: Option<&str>) -> Response {
        let s = Session::sign_in_form(self.now);
        let html = view::sign_in(&s.csrf, error).into_string();
        (status, self.with(&s), Html(html)).into_response()
    }
}

/// A urlencoded form, fields in order (the mapping table repeats its field names).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect()
    }
    fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Why a page request did not get its page.
#[derive(Debug)]
enum PageError {
    /// No valid signed-in session: back to the sign-in form.
    SignIn,
    /// The form's CSRF token is missing or not the session's.
    Forbidden,
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<sea_orm::DbErr> for PageError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::SignIn => return Redirect::to("/admin").into_response(),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this page. Reload the page and try again."
                    .to_owned(),
            ),
            Self::Api(e) => (e.status, e.message),
        };
        (
            status,
            Html(view::error(status.as_u16(), &message).into_string()),
        )
            .into_response()
    }
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
async fn provisioning(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Fields::parse(&body);
    let (org, session) = visit.authorize(&form)?;
    match service::set_provisioning(&state, org, &request, form.checked("enabled")).await? {
        Some(token) => with_token(&state, org, session, token).await,
        None => Ok(see_other()),
    }
}

#[tracing::instrument(skip_all)]
async fn rotate_token(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let (org, session) = visit.authorize(&Fields::parse(&body))?;
    let token = service::rotate_token(&state, org, &request).await?;
    with_token(&state, org, session, token).await
}

#[tracing::instrument(skip_all)]
async fn approve_guard(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let (org, _) = visit.authorize(&Fields::parse(&body))?;
    let decision = common::messages::GuardDecision::Approve;
    service::decide_guard(&state, org, &request, decision).await?;
    Ok(see_other())
}

#[tracing::instrument(skip_all)]
async fn reject_guard(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let (org, _) = visit.authorize(&Fields::parse(&body))?;
    let decision = common::messages::GuardDecision::Reject;
    service::decide_guard(&state, org, &request, decision).await?;
    Ok(see_other())
}

#[tracing::instrument(skip_all)]
async fn settings(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Fields::parse(&body);
    let (org, _) = visit.authorize(&form)?;
    let change = common::messages::UpdateSettings {
        send_invites: Some(form.checked("send_invites")),
        lock_synced_fields: Some(form.checked("lock_synced_fields")),
        deactivated_people: deactivated_people(&form),
        deprovision_guard: None,
        manager_match: manager_match(&form)?,
    };
    service::update_settings(&state, org, &request, change).await?;
    Ok(see_other())
}

/// The form's deactivated-people choice: `keep`, or `erase` after `erase_after_days`
/// (a number the worker checks; anything unreadable is 0, which it refuses by name).
fn deactivated_people(form: &Fields) -> Option<common::messages::DeactivatedPeople> {
    use common::messages::DeactivatedPeople;
    match form.get("deactivated_people")? {
        "erase" => Some(DeactivatedPeople::Erase {
            after_days: form
                .get("erase_after_days")
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0),
        }),
        _ => Some(DeactivatedPeople::Keep),
    }
}

#[tracing::instrument(skip_all)]
async fn mappings(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Fields::parse(&body);
    let (org, session) = visit.authorize(&form)?;
    let rows = match mapping_rows(&form) {
        Ok(rows) => rows,
        Err(e) => return mapping_error(&state, org, session, e, None).await,
    };
    match service::set_mappings(&state, org, &request, rows.clone()).await {
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
async fn sso(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Fields::parse(&body);
    let (org, session) = visit.authorize(&form)?;
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
    match service::set_sso(&state, org, &request, change).await {
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
async fn sso_off(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    visit: Visit,
    body: Bytes,
) -> Result<Response, PageError> {
    let (org, _) = visit.authorize(&Fields::parse(&body))?;
    service::disable_sso(&state, org, &request).await?;
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

/// The manager match order from the form's `manager_match` selects, in order, blanks
/// skipped; `None` when the form has none (it leaves the setting as it is).
fn manager_match(form: &Fields) -> Result<Option<Vec<MatchKey>>, PageError> {
    let chosen = form.all("manager_match");
    if chosen.is_empty() {
        return Ok(None);
    }
    let keys = chosen
        .into_iter()
        .filter(|k| !k.is_empty())
        .map(|k| {
            MatchKey::parse(k).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown manager key {k:?}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(keys))
}

/// The mapping table's rows, in order. A row without a field (the empty "new" row) is
/// skipped, and so is a custom field whose attribute was cleared (that removes it).
fn mapping_rows(form: &Fields) -> Result<Vec<Mapping>, String> {
    let (fields, attrs, policies) = (
        form.all("field"),
        form.all("scim_attribute"),
        form.all("policy"),
    );
    if fields.len() != attrs.len() || fields.len() != policies.len() {
        return Err("every row needs a field, an attribute and a policy".to_owned());
    }
    let mut rows = Vec::new();
    for ((field, attr), policy) in fields.into_iter().zip(attrs).zip(policies) {
        let custom = field.starts_with(common::mapping::CUSTOM_PREFIX);
        if field.is_empty() || (custom && attr.is_empty()) {
            continue;
        }
        let policy = Policy::parse(policy)
            .ok_or_else(|| format!("field {field:?}: unknown policy {policy:?}"))?;
        rows.push(Mapping {
            field: field.to_owned(),
            scim_attribute: attr.to_owned(),
            policy,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rows_keep_order_and_skip_empty_and_cleared_custom_rows() {
        let form = Fields::parse(
            b"csrf=x&field=job_title&scim_attribute=title&policy=create_only\
              &field=custom.shirt&scim_attribute=&policy=overwrite\
              &field=custom.team&scim_attribute=urn%3Ax%3Ateam&policy=ignore\
              &field=&scim_attribute=&policy=overwrite",
        );
        let rows = mapping_rows(&form).expect("rows");
        let got: Vec<_> = rows
            .iter()
            .map(|m| (m.field.as_str(), m.scim_attribute.as_str(), m.policy))
            .collect();
        assert_eq!(
            got,
            [
                ("job_title", "title", Policy::CreateOnly),
                ("custom.team", "urn:x:team", Policy::Ignore)
            ]
        );
    }

    #[test]
    fn bad_mapping_forms_are_named() {
        let bad_policy = Fields::parse(b"field=job_title&scim_attribute=title&policy=sometimes");
        assert!(
            mapping_rows(&bad_policy)
                .expect_err("bad")
                .contains("sometimes")
        );
        let ragged =
            Fields::parse(b"field=job_title&field=email&scim_attribute=title&policy=ignore");
        assert!(mapping_rows(&ragged).is_err());
    }

    #[test]
    fn manager_match_keeps_the_order_and_skips_blanks() {
        let form = Fields::parse(b"manager_match=email&manager_match=&manager_match=id");
        assert_eq!(
            manager_match(&form).expect("valid"),
            Some(vec![MatchKey::Email, MatchKey::Id])
        );
        assert_eq!(
            manager_match(&Fields::parse(b"send_invites=on")).expect("valid"),
            None
        );
        assert!(manager_match(&Fields::parse(b"manager_match=phone")).is_err());
    }

    #[test]
    fn checkboxes_are_on_when_present() {
        let form = Fields::parse(b"csrf=x&send_invites=on");
        assert!(form.checked("send_invites"));
        assert_eq!(deactivated_people(&form), None);
        let erase = Fields::parse(b"deactivated_people=erase&erase_after_days=30");
        assert_eq!(
            deactivated_people(&erase),
            Some(common::messages::DeactivatedPeople::Erase { after_days: 30 })
        );
        let keep = Fields::parse(b"deactivated_people=keep&erase_after_days=30");
        assert_eq!(
            deactivated_people(&keep),
            Some(common::messages::DeactivatedPeople::Keep)
        );
        assert!(!form.checked("lock_synced_fields"));
        assert_eq!(form.get("csrf"), Some("x"));
    }
}
