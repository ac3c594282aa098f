//! The events the worker publishes: their routing keys and payloads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The routing keys (the envelope `type`) of the events.
pub const USER_CREATED: &str = "user.created";
pub const USER_UPDATED: &str = "user.updated";
pub const USER_DEACTIVATED: &str = "user.deactivated";
pub const USER_REACTIVATED: &str = "user.reactivated";
pub const USER_DELETED: &str = "user.deleted";
pub const GROUP_CREATED: &str = "group.created";
pub const GROUP_UPDATED: &str = "group.updated";
pub const GROUP_DELETED: &str = "group.deleted";

/// Payload of the `user.*` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserEvent {
    /// The user's id (the SCIM `id`).
    pub user_id: Uuid,
    /// Per-user, strictly increasing: the SCIM `meta.version`.
    pub version: i64,
    /// The user's `userName` (unique per org, case-insensitively).
    pub user_name: String,
    /// The fields this change set, with their new values (all of them on create; a removed
    /// field is `null`; empty on delete). When only the person's manager link changed
    /// (their manager arrived), it is `{"manager_id": …}`.
    pub changes: Map<String, Value>,
    /// The person's manager, resolved from the mapped `manager` value (docs/admin.md, "The
    /// org chart"): their Roster id, or `null` while there is none or none matched.
    #[serde(default)]
    pub manager_id: Option<Uuid>,
}

/// Payload of the `group.*` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupEvent {
    /// The group's id (the SCIM `id`).
    pub group_id: Uuid,
    /// Per-group, strictly increasing.
    pub version: i64,
    /// The group's `displayName`.
    pub display_name: String,
    /// What changed: `displayName`, `externalId`, `members_added` and `members_removed`
    /// (user ids); everything on create; empty on delete.
    pub changes: Map<String, Value>,
}
