//! The SCIM 2.0 API (RFC 7644) under `/scim/v2`. Every error it answers, including the
//! framework's own (404, 405, 413, …), is SCIM error JSON: a plain-text body breaks Okta.

pub mod discovery;
pub mod groups;
pub mod list;
pub mod users;

use crate::{
    commands::reply_error,
    error::{ScimApiError, scim_error_response},
    state::AppState,
};
use axum::{
    Json, Router,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use common::{
    messages::Reply,
    scim::{SCIM_CONTENT_TYPE, ScimError},
};
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
