//! The payloads of the directory's own commands: the attribute mapping, an admin's edit
//! or deletion of a person, and an accepted invite.

use crate::secret::TokenHash;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Replaces the org's whole mapping (`PUT /admin/v1/mappings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetMappings {
    pub mappings: Vec<crate::mapping::Mapping>,
}

/// An edit of a person's directory fields (`PATCH /api/v1/people/{id}`): field → new value,
/// `null` to clear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdatePerson {
    pub user_id: Uuid,
    pub fields: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptInvite {
    pub token_hash: TokenHash,
}

/// `DELETE /api/v1/people/{id}` (the directory API, admin key), or the org's
/// deactivated-people policy (`by_policy`): the person is deleted and their personal data
/// erased from every table (docs/data-lifecycle.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePerson {
    pub user_id: Uuid,
    /// Erased by the org's policy for deactivated people, not by an admin: applied only if
    /// the person is still deactivated and past the org's window.
    #[serde(default)]
    pub by_policy: bool,
}
