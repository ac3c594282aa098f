//! Confirmed, persistent publishing: a publish counts only once the broker has taken
//! responsibility for the message (publisher confirm ack, and routed when mandatory).
//!
//! Envelopes go out with the AMQP `user_id` property set to the broker user of the
//! connection. RabbitMQ refuses a `user_id` that is not the publishing connection's own
//! user, so the worker can trust a command carrying its own broker user as one of
//! Roster's (docs/messages.md, "Who may publish commands"). A copy of a received message
//! (retry, dead-letter, replay) keeps its `user_id` only when it is ours: the broker would
//! refuse a foreign one, and dropping it never makes a message more trusted.

use super::CORRELATION_HEADER;
use crate::messages::{Envelope, envelope::EnvelopeRef};
use chrono::{DateTime, Utc};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, PublisherConfirm,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use std::sync::Arc;

/// Why a message was not accepted by the broker.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker unavailable: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound to receive the message")]
    Unroutable,
    #[error("too many commands in flight")]
    Overloaded,
    /// The channel was not connected, so nothing was sent.
    #[error("broker channel not connected; nothing was sent")]
    NotConnected,
    /// Not sent, or sent but not confirmed, within `CONFIRM_TIMEOUT`: the message may or
    /// may not have been taken.
    #[error("no confirm from the broker within {0:?}")]
    NoConfirm(std::time::Duration),
}

/// How long a publish waits for the broker's confirm. A confirm normally takes
/// milliseconds; one lost with its connection must not hold the publisher forever.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Optional AMQP properties of a publish.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions<'a> {
    pub reply_to: Option<&'a str>,
    /// The AMQP `correlation_id` property (request/reply matching).
    pub correlation_id: Option<&'a str>,
    /// Return the message to us instead of dropping it when nothing is bound.
    pub mandatory: bool,
    /// Extra headers, e.g. the reason a message was dead-lettered.
    pub headers: Vec<(&'a str, String)>,
}

/// A channel in confirm mode. Cheap to clone; safe to share between tasks.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    /// The broker user of the connection (percent-decoded from its URL).
    user: Arc<str>,
}

/// One message as the broker takes it: bytes, their properties, and where they go.
pub struct Raw<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub props: BasicProperties,
    /// Returned (a publish error) rather than dropped when no queue is bound.
    pub mandatory: bool,
}

impl Publisher {
    pub async fn open(conn: &Connection) -> lapin::Result<Self> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            user: conn.status().username().into(),
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The broker user this publisher's messages carry as `user_id`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Publishes an envelope persistently and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope,
        opts: PublishOptions<'_>,
    ) -> Result<(), PublishError> {
        let mut props = envelope_properties(envelope).with_user_id(self.user().into());
        if let Some(reply_to) = opts.reply_to {
            props = props.with_reply_to(reply_to.into());
        }
        if let Some(cid) = opts.correlation_id {
            props = props.with_correlation_id(cid.into());
        }
        if !opts.headers.is_empty() {
            let mut headers = props.headers().clone().unwrap_or_default();
            for (k, v) in opts.headers {
                headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
            }
            props = props.with_headers(headers);
        }
        self.publish_raw(Raw {
            exchange,
            routing_key,
            body: &envelope.to_bytes(),
            props,
            mandatory: opts.mandatory,
        })
        .await
    }

    /// Publishes bytes with the given properties and waits for the confirm.
    pub async fn publish_raw(&self, message: Raw<'_>) -> Result<(), PublishError> {
        confirmed(self.send_raw(message).await?).await
    }

    /// Sends without waiting for the confirm, so a batch can be sent in order and then
    /// confirmed together with [`confirmed`].
    pub async fn send_raw(&self, message: Raw<'_>) -> Result<PublisherConfirm, PublishError> {
        let Raw {
            exchange,
            routing_key,
            body,
            props,
            mandatory,
        } = message;
        let props = match props.user_id() {
            Some(u) if u.as_str() != self.user() => without_user_id(&props),
            _ => props,
        };
        let send = self.channel.basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            body,
            props,
        );
        // Bounded like the confirm: a channel that cannot send must not hold the caller.
        Ok(tokio::time::timeout(CONFIRM_TIMEOUT, send)
            .await
            .map_err(|_| PublishError::NoConfirm(CONFIRM_TIMEOUT))??)
    }
}

/// The same properties without `user_id` (lapin cannot unset a single property).
pub fn without_user_id(p: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default();
    macro_rules! keep {
        ($($get:ident => $set:ident),* $(,)?) => {
            $(if let Some(v) = p.$get() {
                out = out.$set(v.clone());
            })*
        };
    }
    keep!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        headers => with_headers,
        delivery_mode => with_delivery_mode,
        priority => with_priority,
        correlation_id => with_correlation_id,
        reply_to => with_reply_to,
        expiration => with_expiration,
        message_id => with_message_id,
        timestamp => with_timestamp,
        kind => with_type,
        app_id => with_app_id,
        cluster_id => with_cluster_id,
    );
    out
}

/// Waits for a sent message's confirm, at most `CONFIRM_TIMEOUT`.
pub async fn confirmed(pending: PublisherConfirm) -> Result<(), PublishError> {
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, pending)
        .await
        .map_err(|_| PublishError::NoConfirm(CONFIRM_TIMEOUT))??;
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
    }
}

/// The header carrying the envelope's `schema_version` (a signed 32-bit integer), so a
/// consumer can filter or bind on it without parsing the body (docs/messages.md,
/// "Versioning").
pub const SCHEMA_VERSION_HEADER: &str = "x-roster-schema-version";

/// Persistent JSON with the envelope's id, type, time, correlation id and schema version.
pub fn envelope_properties(envelope: &Envelope) -> BasicProperties {
    properties(
        envelope.id,
        &envelope.kind,
        envelope.schema_version,
        &envelope.correlation_id,
        envelope.occurred_at,
    )
}

/// [`envelope_properties`] of an envelope read as [`EnvelopeRef`].
pub fn envelope_ref_properties(envelope: &EnvelopeRef<'_>) -> BasicProperties {
    properties(
        envelope.id,
        &envelope.kind,
        envelope.schema_version,
        &envelope.correlation_id,
        envelope.occurred_at,
    )
}

fn properties(
    id: uuid::Uuid,
    kind: &str,
    schema_version: u32,
    correlation_id: &str,
    occurred_at: DateTime<Utc>,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        CORRELATION_HEADER.into(),
        AMQPValue::LongString(LongString::from(correlation_id)),
    );
    headers.insert(
        SCHEMA_VERSION_HEADER.into(),
        AMQPValue::LongInt(i32::try_from(schema_version).unwrap_or(i32::MAX)),
    );
    if let Some(tp) = traceparent(correlation_id, id) {
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(tp)),
        );
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(id.to_string().as_str().into())
        .with_type(kind.into())
        .with_app_id("roster".into())
        .with_timestamp(u64::try_from(occurred_at.timestamp()).unwrap_or(0))
        .with_headers(headers)
}

/// A W3C `traceparent` continuing the trace when the correlation id is a trace id (32
/// lowercase hex digits, as the ingress makes them), with this message as the parent span.
pub fn traceparent(correlation_id: &str, message_id: uuid::Uuid) -> Option<String> {
    let is_trace = correlation_id.len() == 32
        && correlation_id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        && correlation_id.chars().any(|c| c != '0');
    let span = &message_id.simple().to_string()[16..];
    is_trace.then(|| format!("00-{correlation_id}-{span}-01"))
}

#[cfg(test)]
mod tests {
    use lapin::BasicProperties;

    #[test]
    fn dropping_user_id_keeps_every_other_property() {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert("x-a".into(), lapin::types::AMQPValue::Boolean(true));
        let full = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_message_id("m".into())
            .with_timestamp(7)
            .with_type("user.create".into())
            .with_app_id("roster".into());
        let stripped = super::without_user_id(&full.clone().with_user_id("svc".into()));
        assert_eq!(stripped, full);
    }

    #[test]
    fn every_envelope_carries_its_schema_version_header() {
        let env = crate::messages::Envelope::new("user.created", None, "c", ());
        let props = super::envelope_properties(&env);
        let headers = props.headers().clone().unwrap_or_default();
        assert_eq!(
            headers.inner().get(super::SCHEMA_VERSION_HEADER),
            Some(&lapin::types::AMQPValue::LongInt(1))
        );
    }

    #[test]
    fn traceparent_only_for_trace_ids() {
        let id = uuid::Uuid::new_v4();
        let tp = super::traceparent("4bf92f3577b34da6a3ce929d0e0e4736", id).expect("a trace id");
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && tp.ends_with("-01"));
        assert_eq!(tp.len(), 55);
        assert!(super::traceparent("my-request-1", id).is_none());
    }
}
