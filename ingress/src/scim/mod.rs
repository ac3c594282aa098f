//! The SCIM 2.0 API (RFC 7644) under `/scim/v2`. Every error it answers, including the
//! framework's own (404, 405, 413, …), is SCIM error JSON: a plain-text body breaks Okta.

pub mod discovery;
pub mod groups;
pub mod list;
pub(crate) mod resource;
pub mod users;

use crate::{
    auth::ScimOrg,
    body::JsonBody,
    commands::{execute, reply_error},
    error::{ScimApiError, scim_error_response},
    request_id::RequestId,
    state::AppState,
};
use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use common::{
    messages::{Command, Reply},
    scim::{SCIM_CONTENT_TYPE, ScimError},
};
use list::ListParams;
use serde_json::Value;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(users::router())
        .merge(groups::router())
        .route("/.search", axum::routing::post(root_search))
        .merge(discovery::router())
        .fallback(|| async { scim_error_response(&ScimError::not_found("no such SCIM endpoint")) })
        .layer(middleware::from_fn(scim_errors))
}

/// A SCIM response: the body as `application/scim+json`, plus `ETag` when the body has a
/// `meta.version` and, on `201`, `Location` from `meta.location`.
pub(crate) fn scim_json(status: StatusCode, body: Value) -> Response {
    let version = body
        .pointer("/meta/version")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let location = body
        .pointer("/meta/location")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut res = (status, Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(v) = location.and_then(|v| HeaderValue::from_str(&v).ok())
    {
        h.insert(header::LOCATION, v);
    }
    res
}

/// Rewrites any error response that is not SCIM JSON into one, keeping status and headers.
async fn scim_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_scim = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SCIM_CONTENT_TYPE));
    if status.as_u16() < 400 || is_scim {
        return res;
    }
    let detail = match status.as_u16() {
        404 => "not found",
        405 => "method not allowed on this endpoint",
        413 => "the request body is too large",
        415 => "send the body as application/scim+json or application/json",
        s if s >= 500 => "internal error",
        _ => status.canonical_reason().unwrap_or("request refused"),
    };
    let mut fixed = scim_error_response(&ScimError::new(status.as_u16(), None, detail));
    if let Some(allow) = res.headers().get(header::ALLOW) {
        fixed.headers_mut().insert(header::ALLOW, allow.clone());
    }
    fixed
}

/// A worker's reply as the HTTP answer: its status and body, `204` with no body.
pub(crate) fn reply_response(reply: Reply) -> Result<Response, ScimApiError> {
    if let Some(e) = reply_error(&reply) {
        return Err(e);
    }
    let Reply::Ok { status, body } = reply else {
        return Err(ScimApiError::internal());
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status == StatusCode::NO_CONTENT {
        return Ok(status.into_response());
    }
    Ok(scim_json(status, body))
}

/// The version an ETag names: `W/"3"`, `"3"` or `3`. `None` for `*` or no header.
pub(crate) fn etag_version(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Result<Option<i64>, ScimApiError> {
    let Some(v) = headers.get(name) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or_default().trim();
    if v == "*" {
        return Ok(None);
    }
    let digits = v.trim_start_matches("W/").trim_matches('"');
    // An ETag we never issued can never match the current version.
    Ok(Some(digits.parse::<i64>().unwrap_or(-1)))
}

/// `304 Not Modified` with the resource's `ETag`, when `If-None-Match` names its current
/// version (RFC 7232 §3.2); Users and Groups answer it alike.
pub(crate) fn not_modified(
    headers: &HeaderMap,
    version: i64,
) -> Result<Option<Response>, ScimApiError> {
    if etag_version(headers, header::IF_NONE_MATCH)? != Some(version) {
        return Ok(None);
    }
    let mut res = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(&common::scim::model::etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(Some(res))
}

/// What every SCIM write carries: the state, the token's org, the request's correlation
/// id and the version `If-Match` names.
pub(crate) struct Write {
    state: AppState,
    pub(crate) org: Uuid,
    request: RequestId,
    if_match: Option<i64>,
}

impl FromRequestParts<AppState> for Write {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let org = ScimOrg::from_request_parts(parts, state).await?;
        let request = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or_else(|| ScimApiError::internal().into_response())?;
        let if_match =
            etag_version(&parts.headers, header::IF_MATCH).map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: state.clone(),
            org: org.0,
            request,
            if_match,
        })
    }
}

impl Write {
    /// Sends the command `cmd` builds (given `If-Match`) and answers with the worker's reply.
    pub(crate) async fn send(
        self,
        cmd: impl FnOnce(Option<i64>) -> Command,
    ) -> Result<Response, ScimApiError> {
        let cmd = cmd(self.if_match);
        reply_response(execute(&self.state, Some(self.org), &self.request, cmd).await?)
    }
}

/// A list's parameters, from the query string (`GET /Users`) or a SearchRequest body
/// (`POST /Users/.search`, RFC 7644 §3.4.3).
pub(crate) struct ListQuery(pub(crate) ListParams);

impl FromRequest<AppState> for ListQuery {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let params = if req.method() == Method::POST {
            let JsonBody(body) = JsonBody::from_request(req, state)
                .await
                .map_err(IntoResponse::into_response)?;
            ListParams::from_search(&body)
        } else {
            ListParams::from_query(req.uri().query())
        };
        params
            .map(Self)
            .map_err(|e| ScimApiError::from(e).into_response())
    }
}

/// A resource id from the path; anything that is not one of ours is simply not found.
pub(crate) fn resource_id(kind: &str, id: &str) -> Result<Uuid, ScimApiError> {
    Uuid::parse_str(id).map_err(|_| ScimError::not_found(format!("{kind} {id} not found")).into())
}

/// `POST /.search` across every resource type (RFC 7644 §3.4.3, optional): not offered;
/// search `/Users/.search` or `/Groups/.search`.
async fn root_search() -> Response {
    scim_error_response(&ScimError::new(
        501,
        None,
        "searching every resource type at once is not supported; use /Users/.search or /Groups/.search",
    ))
}
