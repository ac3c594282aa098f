//! The payloads of the SCIM commands (`user.*`, `group.*`): what the ingress validated,
//! for the worker to apply.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateUser {
    /// The SCIM User as validated by the sender: no `id`, `meta` or password.
    pub resource: Value,
}

/// `PUT /Users/{id}`: replace the user with `resource`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplaceUser {
    pub user_id: Uuid,
    pub resource: Value,
    /// The version the client saw (`If-Match`); a mismatch is `412`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `PATCH /Users/{id}`: the RFC 7644 PatchOp body, applied by the worker to the current user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatchUser {
    pub user_id: Uuid,
    pub patch: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteUser {
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `user.deactivate` / `user.reactivate` (for other services): the same change, event and
/// reply as a `PATCH /Users/{id}` that sets `active` to false / true.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUserActive {
    pub user_id: Uuid,
    /// The version the sender saw; a mismatch is `412`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `POST /Groups`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateGroup {
    pub resource: Value,
}

/// `PUT /Groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplaceGroup {
    pub group_id: Uuid,
    pub resource: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `PATCH /Groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatchGroup {
    pub group_id: Uuid,
    pub patch: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `DELETE /Groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteGroup {
    pub group_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}
