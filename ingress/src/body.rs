//! JSON request bodies as identity providers send them: `application/scim+json`,
//! `application/json`, or no content type at all; anything else is 415. Bodies are
//! bounded by `MAX_BODY_BYTES` (413) and nested at most `MAX_JSON_DEPTH` deep; they must be
//! UTF-8 and hold no NUL character (PostgreSQL cannot store one). Rejections are SCIM
//! errors (`400 invalidSyntax`, `invalidValue` for a NUL).

use crate::{error::ScimApiError, state::AppState};
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use serde_json::Value;

/// Deepest nesting of arrays and objects a body may have. Okta's and Entra's deepest
/// shapes (a PATCH value holding an extension holding `manager`) need 5.
pub const MAX_JSON_DEPTH: usize = 32;

/// A parsed JSON body.
pub struct JsonBody(pub Value);

/// The deepest nesting of `[` and `{` in `bytes`, outside strings. A byte scan before
/// parsing, so a body nested a million deep costs one pass and no recursion; it stops
/// counting as soon as `limit` is passed.
pub fn json_depth(bytes: &[u8], limit: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Checks and parses a body's bytes.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ScimApiError> {
    let syntax = |detail: String| ScimApiError::new(400, Some("invalidSyntax"), detail);
    if bytes.is_empty() {
        return Err(syntax("the request body is empty".to_owned()));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(syntax(format!(
            "the request body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    if json_depth(bytes, MAX_JSON_DEPTH) > MAX_JSON_DEPTH {
        return Err(syntax(format!(
            "the body nests arrays and objects more than {MAX_JSON_DEPTH} deep"
        )));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| syntax(format!("the body is not valid JSON: {e}")))?;
    if common::scim::model::has_nul(&value) {
        return Err(ScimApiError::new(
            400,
            Some("invalidValue"),
            "the body holds a NUL character (\\u0000), which no attribute may contain",
        ));
    }
    Ok(value)
}

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
        parse_json(&bytes).map(Self)
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

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"{}", 32), 1);
        assert_eq!(json_depth(br#"{"a":[{"b":1}],"c":{}}"#, 32), 3);
        assert_eq!(
            json_depth(br#"{"a":"[[[{{{\"[[["}"#, 32),
            1,
            "brackets in strings"
        );
        assert_eq!(
            json_depth(&[b'['; 1_000_000], 32),
            33,
            "stops past the limit"
        );
        assert_eq!(json_depth(b"5", 32), 0);
    }

    #[test]
    fn bodies_too_deep_not_utf8_or_with_nul_are_refused_before_use() {
        let scim_type = |body: &[u8]| {
            parse_json(body)
                .expect_err("refused")
                .0
                .scim_type
                .unwrap_or_default()
        };
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(scim_type(deep.as_bytes()), "invalidSyntax");
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(parse_json(ok.as_bytes()).is_ok());
        assert_eq!(scim_type(b"{\"userName\": \"a\xff\"}"), "invalidSyntax");
        assert_eq!(scim_type(b""), "invalidSyntax");
        assert_eq!(scim_type(br#"{"userName": "a\u0000b"}"#), "invalidValue");
        assert_eq!(scim_type(br#"{"a\u0000": 1}"#), "invalidValue");
        assert!(
            parse_json(br#"{"userName": "a\\u0000b"}"#).is_ok(),
            "an escaped backslash"
        );
    }
}
