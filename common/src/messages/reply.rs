//! The worker's answer to a command.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The worker's answer to a command, sent after commit and stored for redeliveries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reply {
    Ok {
        status: u16,
        #[serde(default)]
        body: Value,
    },
    Error {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scim_type: Option<String>,
        detail: String,
    },
}

impl Reply {
    pub fn ok(status: u16, body: Value) -> Self {
        Reply::Ok { status, body }
    }
    pub fn error(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Reply::Error {
            status,
            scim_type: scim_type.map(str::to_owned),
            detail: detail.into(),
        }
    }
    pub fn status(&self) -> u16 {
        match self {
            Reply::Ok { status, .. } | Reply::Error { status, .. } => *status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_serialise_with_an_outcome_tag() {
        let r = Reply::error(409, Some("uniqueness"), "taken");
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["outcome"], "error");
        assert_eq!(v["scim_type"], "uniqueness");
        assert_eq!(serde_json::from_value::<Reply>(v).expect("back"), r);
    }
}
