//! The payloads of the commands about an org itself: its creation and removal, its
//! admin key, SCIM provisioning and token, retention, and integration credentials.

use crate::secret::TokenHash;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A new token's stored form: its digest and last four characters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewToken {
    pub hash: TokenHash,
    pub hint: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateOrg {
    pub org_id: Uuid,
    pub name: String,
    pub admin_key_hash: TokenHash,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetProvisioning {
    pub enabled: bool,
    /// The token to issue when provisioning is switched on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<NewToken>,
}

/// Replaces the org's admin key (the admin's own rotation, or the operator's reset of a
/// leaked one): the old key stops working at once, and `/admin` sessions signed in with it
/// end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateAdminKey {
    pub admin_key_hash: TokenHash,
    /// The operator reset the key (a leaked one), rather than the admin rotating it.
    #[serde(default)]
    pub by_operator: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateScimToken {
    pub token: NewToken,
}

/// `DELETE /admin/v1/orgs/{id}` (the operator): every row of the org goes, in one
/// transaction. The envelope carries no `org_id`, so nothing Roster keeps about the command
/// names the org.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrg {
    pub org_id: Uuid,
}

/// `PUT /admin/v1/orgs/{id}/retention` (the operator): how long the org's activity entries
/// are kept; `null` for the default (`ACTIVITY_RETENTION`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOrgRetention {
    /// 1 to 36500, or `null`.
    pub activity_days: Option<u32>,
}

/// `POST /admin/v1/integrations`: a credential another service of the org publishes
/// commands with. Only its digest travels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateIntegration {
    pub integration_id: Uuid,
    pub name: String,
    pub credential: NewToken,
}

/// `DELETE /admin/v1/integrations/{id}`: the credential stops working at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevokeIntegration {
    pub integration_id: Uuid,
}
