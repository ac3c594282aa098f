//! The envelope every command and event travels in, and the error of one that cannot be
//! understood.

use super::SCHEMA_VERSION;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

/// What every message on Roster's exchanges looks like.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Unique per message; for a command it is the idempotency key.
    pub id: Uuid,
    /// `user.create`, `user.created`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The version of the message schemas (docs/messages.md, "Versioning").
    pub schema_version: u32,
    /// The tenant; absent only for `org.create` and `org.delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    /// Travels from the HTTP request through the command, the reply and the events.
    pub correlation_id: String,
    /// When the message was made (for an event: when its change was committed), UTC.
    pub occurred_at: DateTime<Utc>,
    /// The type's own data: see the schema of each type (`docs/schemas/<type>.json`).
    pub payload: Value,
    /// On a command: the moment after which the worker must not apply it (UTC). Roster's
    /// ingress sets it to the time it stops waiting for the reply, so a command it answered
    /// `503` (or whose caller timed out) is never applied later; another service may set
    /// one or not (docs/messages.md, "Deadlines"). A command past it is acknowledged
    /// unapplied and answered `503`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_by: Option<DateTime<Utc>>,
    /// On a command from another service: its integration credential (`rst_int_…`), which
    /// must belong to `org_id`. Roster's own commands and all events carry none. Never
    /// printed by `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// By hand, so a credential never reaches a log line.
impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("schema_version", &self.schema_version)
            .field("org_id", &self.org_id)
            .field("correlation_id", &self.correlation_id)
            .field("occurred_at", &self.occurred_at)
            .field("payload", &self.payload)
            .field("apply_by", &self.apply_by)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Envelope {
    pub fn new(
        kind: &str,
        org_id: Option<Uuid>,
        correlation_id: &str,
        payload: impl Serialize,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            schema_version: SCHEMA_VERSION,
            org_id,
            correlation_id: correlation_id.to_owned(),
            occurred_at: Utc::now(),
            payload: serde_json::to_value(payload).unwrap_or(Value::Null),
            apply_by: None,
            credential: None,
        }
    }

    /// Whether the command's deadline has passed at `now` (never, without one).
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.apply_by.is_some_and(|by| now > by)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("envelope: {e}")))
    }

    pub(super) fn payload_as<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| DecodeError(format!("{} payload: {e}", self.kind)))
    }
}

/// A message that cannot be understood; it is dead-lettered with this text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct DecodeError(pub String);
