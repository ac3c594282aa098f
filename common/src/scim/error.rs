//! The SCIM error body (RFC 7644 §3.12): `{"schemas":[Error],"status":"409","scimType":…,"detail":…}`.

use super::ERROR_SCHEMA;
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<String>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type: scim_type.map(str::to_owned),
            detail: detail.into(),
        }
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidFilter"), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = &self.scim_type {
            v["scimType"] = Value::String(t.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_a_string_and_scim_type_optional() {
        let v = ScimError::new(409, Some("uniqueness"), "taken").to_json();
        assert_eq!(v["status"], "409");
        assert_eq!(v["scimType"], "uniqueness");
        assert_eq!(v["schemas"][0], ERROR_SCHEMA);
        let v = ScimError::not_found("nope").to_json();
        assert!(v.get("scimType").is_none());
    }
}
