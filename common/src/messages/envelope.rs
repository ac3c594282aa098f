//! The envelope every command and event travels in, and the error of one that cannot be
//! understood.

use super::SCHEMA_VERSION;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, value::RawValue};
use std::borrow::Cow;
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

/// An envelope read without building its payload: each field checked as [`Envelope`]
/// checks it, the payload left as the JSON text it is. The outbox relay reads a stored
/// event this way and publishes its text unchanged, parsing it once.
#[derive(Deserialize)]
pub struct EnvelopeRef<'a> {
    pub id: Uuid,
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    pub schema_version: u32,
    #[serde(default)]
    pub org_id: Option<Uuid>,
    #[serde(borrow)]
    pub correlation_id: Cow<'a, str>,
    pub occurred_at: DateTime<Utc>,
    #[serde(borrow)]
    pub payload: &'a RawValue,
    #[serde(default)]
    pub apply_by: Option<DateTime<Utc>>,
    #[serde(default, borrow)]
    pub credential: Option<Cow<'a, str>>,
}

impl<'a> EnvelopeRef<'a> {
    pub fn parse(text: &'a str) -> Result<Self, DecodeError> {
        serde_json::from_str(text).map_err(|e| DecodeError(format!("envelope: {e}")))
    }
}

/// A message that cannot be understood; it is dead-lettered with this text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct DecodeError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_read_by_reference_is_the_envelope_and_refuses_what_it_refuses() {
        let mut env = Envelope::new(
            "user.created",
            Some(Uuid::new_v4()),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            serde_json::json!({"user_id": Uuid::new_v4(), "changes": {"name": "Ann \"A\""}}),
        );
        env.apply_by = Some(Utc::now());
        // As PostgreSQL prints a `jsonb`: keys reordered, spaces after `:` and `,`.
        let stored = serde_json::to_string_pretty(&env).expect("serialises");
        let read = EnvelopeRef::parse(&stored).expect("readable");
        assert_eq!(
            (
                read.id,
                read.kind.as_ref(),
                read.schema_version,
                read.org_id
            ),
            (env.id, env.kind.as_str(), env.schema_version, env.org_id)
        );
        assert_eq!(read.correlation_id, env.correlation_id);
        assert_eq!(
            (read.occurred_at, read.apply_by),
            (env.occurred_at, env.apply_by)
        );
        let payload: Value = serde_json::from_str(read.payload.get()).expect("payload");
        assert_eq!(payload, env.payload);
        assert_eq!(Envelope::from_bytes(stored.as_bytes()).expect("same"), env);

        let mut unreadable = Vec::new();
        for broken in [
            r#"{"id": "not-a-uuid"}"#,
            &stored.replace("\"schema_version\": 1", "\"schema_version\": -1"),
            &stored.replace("\"payload\"", "\"payloads\""),
            &stored.replace(&env.id.to_string(), "x"),
            "[]",
        ] {
            assert!(Envelope::from_bytes(broken.as_bytes()).is_err(), "{broken}");
            unreadable.push(EnvelopeRef::parse(broken).is_err());
        }
        assert_eq!(unreadable, [true; 5]);
    }
}
