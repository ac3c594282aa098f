//! Who is asking: a browser's visit (its signed cookie jar and session), a signed-in
//! form post (`Submit`), and why a request did not get its page (`PageError`).

use super::{
    form::Fields,
    session::{self, Keys, Session},
    view,
};
use crate::{
    error::ApiError, ratelimit::client_addr, request_id::RequestId, state::AppState, store,
};
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::SignedCookieJar;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use uuid::Uuid;

/// A browser's visit: its cookie jar (signed with the session key), the valid session in
/// it if any, the time and the client's address.
pub(super) struct Visit {
    pub(super) jar: SignedCookieJar,
    pub(super) session: Option<Session>,
    pub(super) now: DateTime<Utc>,
    pub(super) secure: bool,
    pub(super) addr: IpAddr,
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
    let current = store::auth::admin_key_hash(&state.db, org).await?;
    Ok(current.filter(|hash| s.key_matches(hash)).map(|_| s))
}

impl Visit {
    /// The signed-in org and session, after checking the form's CSRF token.
    pub(super) fn authorize(&self, form: &Fields) -> Result<(Uuid, &Session), PageError> {
        let s = self.session.as_ref().ok_or(PageError::SignIn)?;
        let org = s.org.ok_or(PageError::SignIn)?;
        if !s.csrf_matches(form.get("csrf")) {
            return Err(PageError::Forbidden);
        }
        Ok((org, s))
    }

    /// The jar with `session` set in it.
    pub(super) fn with(self, session: &Session) -> SignedCookieJar {
        self.jar.add(session.cookie(self.secure, self.now))
    }

    /// A fresh sign-in form (with a new form-only session), answering `status`.
    pub(super) fn sign_in_form(self, status: StatusCode, error: Option<&str>) -> Response {
        let s = Session::sign_in_form(self.now);
        let html = view::sign_in(&s.csrf, error).into_string();
        (status, self.with(&s), Html(html)).into_response()
    }
}

/// A signed-in form post: the visit's session, checked against the form's CSRF token,
/// with the form and the request's correlation id. Every page action but sign-in and
/// sign-out takes one.
pub(super) struct Submit {
    pub(super) org: Uuid,
    pub(super) session: Session,
    pub(super) form: Fields,
    pub(super) request: RequestId,
}

impl FromRequest<AppState> for Submit {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let visit = Visit::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let request = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            })?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Fields::parse(&body);
        let (org, session) = visit
            .authorize(&form)
            .map_err(IntoResponse::into_response)?;
        let session = session.clone();
        Ok(Self {
            org,
            session,
            form,
            request,
        })
    }
}

/// Why a page request did not get its page.
#[derive(Debug)]
pub(super) enum PageError {
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
