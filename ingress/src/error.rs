//! The two error boundaries: SCIM errors (RFC 7644 §3.12 JSON, `application/scim+json`)
//! and admin/API errors (`{"error": "…"}`). Internal failures are logged and answered
//! without detail; an unavailable dependency is a 503 with `Retry-After`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use common::{
    db::redact,
    scim::{SCIM_CONTENT_TYPE, ScimError},
};
use serde_json::json;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// An error on the SCIM API.
#[derive(Debug)]
pub struct ScimApiError(pub ScimError);

impl From<ScimError> for ScimApiError {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl ScimApiError {
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Self(ScimError::new(status, scim_type, detail))
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, None, detail)
    }
    pub fn internal() -> Self {
        Self::new(500, None, "internal error")
    }
}

impl From<sea_orm::DbErr> for ScimApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if common::db::is_transient(&e) {
            tracing::warn!(error = %redact(&e), "database unavailable");
            Self::unavailable("the directory database is unavailable; retry later")
        } else {
            tracing::error!(error = %redact(&e), "database error");
            Self::internal()
        }
    }
}

impl IntoResponse for ScimApiError {
    fn into_response(self) -> Response {
        scim_error_response(&self.0)
    }
}

/// Renders a SCIM error with its headers (`WWW-Authenticate` on 401, `Retry-After` on
/// 429 and 503).
pub fn scim_error_response(e: &ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, Json(e.to_json())).into_response();
    res.extensions_mut()
        .insert(crate::provisioning_log::ErrorDetail(e.detail.clone()));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    match e.status {
        401 => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"roster\""),
            );
        }
        // A rate limit frees up within a second; an outage takes longer.
        429 => {
            h.insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        503 => {
            h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        _ => {}
    }
    res
}

/// An error on the admin and directory API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ScimApiError> for ApiError {
    fn from(e: ScimApiError) -> Self {
        Self::new(
            StatusCode::from_u16(e.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.0.detail,
        )
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ScimApiError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(json!({"error": self.message}))).into_response();
        match self.status.as_u16() {
            401 => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"roster-admin\""),
                );
            }
            429 | 503 => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        res
    }
}

/// `res` with `Retry-After` set to `wait`, in whole seconds rounded up (at least 1).
pub fn with_retry_after(mut res: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}
