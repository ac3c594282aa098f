//! JSON request bodies as identity providers send them: `application/scim+json`,
//! `application/json`, or no content type at all; anything else is 415. Bodies are
//! bounded by `MAX_BODY_BYTES` (413). Rejections are SCIM errors.

use crate::{app::AppState, error::ScimApiError};
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use serde_json::Value;

/// A parsed JSON body.
pub struct JsonBody(pub Value);

/// Whether a content type is one Roster reads as JSON.
pub fn is_json_content_type(ct: Option<&str>) -> bool {
    let Some(ct) = ct else { return true };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.is_empty() || essence == "application/json" || essence == "application/scim+json"
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ScimApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("invalid"));
        if !is_json_content_type(ct) {
            return Err(ScimApiError::new(
                415,
                None,
                "send the body as application/scim+json or application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status().as_u16() == 413 {
                ScimApiError::new(413, None, "the request body is too large")
            } else {
                ScimApiError::new(
                    400,
                    Some("invalidSyntax"),
                    "the request body could not be read",
                )
            }
        })?;
        if bytes.is_empty() {
            return Err(ScimApiError::new(
                400,
                Some("invalidSyntax"),
                "the request body is empty",
            ));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ScimApiError::new(
                400,
                Some("invalidSyntax"),
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_and_entra_content_types_are_json() {
        assert!(is_json_content_type(None));
        assert!(is_json_content_type(Some(
            "application/scim+json; charset=utf-8"
        )));
        assert!(is_json_content_type(Some("Application/JSON")));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some(
            "application/x-www-form-urlencoded"
        )));
    }
}
