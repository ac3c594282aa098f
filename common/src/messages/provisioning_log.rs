//! The ingress's provisioning-log messages for the worker: each SCIM request's outcome.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The type of the ingress's provisioning-log messages (on `<p>.provisioning-log`).
pub const PROVISIONING_LOG: &str = "provisioning_log.entries";

/// One SCIM request's outcome, as an org's admin sees it in the provisioning log. Never
/// a body, a query string or a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvisioningLogEntry {
    /// Unique (a UUIDv7, so newest sorts last); a redelivered batch adds nothing twice.
    pub id: Uuid,
    pub org_id: Uuid,
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path under `/scim/v2`, e.g. `/Users/0190…` (no query string).
    pub path: String,
    /// `User`, `Group`, or absent (discovery, search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The person or group: from the path, or a create's `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<Uuid>,
    /// The HTTP status answered.
    pub status: u16,
    /// The SCIM error's `detail`, when the answer was an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Time to answer, in milliseconds.
    pub duration_ms: u32,
    /// The request's `X-Request-Id`.
    pub correlation_id: String,
}

/// Payload of `provisioning_log.entries`: what one ingress answered in a short while.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvisioningLogEntries {
    pub entries: Vec<ProvisioningLogEntry>,
}
