//! How a delivery ends. Every path through the worker decides one [`Outcome`]; [`settle`]
//! carries it out — the reply, the ack, the dead-letter or retry queue — and counts it.

use crate::apply::record_unapplied;
use common::{
    amqp::{
        CORRELATION_HEADER, Publisher, Raw, Topology,
        consume::ack,
        dead_letter::dead_letter,
        retry::{Retry, retry_later},
        topology::RetryTarget,
    },
    db::redact,
    messages::{Envelope, Reply},
    metrics::{COMMAND_DURATION, COMMANDS_EXPIRED, COMMANDS_PROCESSED, status_class},
};
use lapin::{
    BasicProperties,
    message::Delivery,
    types::{AMQPValue, FieldTable, LongString},
};
use sea_orm::DatabaseConnection;
use std::time::Instant;

/// What the worker needs to settle deliveries.
pub struct Settler {
    pub db: DatabaseConnection,
    pub publisher: Publisher,
    pub topology: Topology,
    /// The `prefix` metrics label.
    pub prefix: String,
}

/// How a delivery ends.
#[derive(Debug)]
pub enum Outcome {
    /// Applied, or answered from its stored result: the reply (if one is awaited), then
    /// the ack. `trusted`: see [`Settler::send_reply`].
    Answered { reply: Reply, trusted: bool },
    /// Past its deadline and not applied (its `503` is stored): the reply, then the ack.
    Expired { reply: Reply, trusted: bool },
    /// Refused or failed for good: to the dead-letter queue with `reason`; once it is
    /// there, `answer` says what the caller waiting on `reply_to` gets.
    DeadLettered { reason: String, answer: Answer },
    /// A transient failure that outlasted the in-process retries: to a retry queue (or,
    /// past the delivery limit, the dead-letter queue).
    RetryLater { reason: String },
}

/// What a caller waiting on `reply_to` gets once its command is dead-lettered.
#[derive(Debug)]
pub enum Answer {
    /// Nothing: it was answered already, or its stored result answers it.
    Nothing,
    /// This error (a refusal: nothing was applied, and the command is not one to apply).
    Error(Reply),
    /// This `500`, once it is stored as the command's final answer (`record_unapplied`):
    /// a replay of the dead letter then changes nothing. Not stored, the caller's fence
    /// answers at the deadline instead.
    Failed {
        reply: Reply,
        env: Box<Envelope>,
        trusted: bool,
    },
}

impl Settler {
    /// Carries out `outcome` for `delivery` and counts it under `kind`. Returns the
    /// `outcome` metrics label.
    pub async fn settle(
        &self,
        delivery: &Delivery,
        correlation_id: &str,
        kind: &str,
        started: Instant,
        outcome: Outcome,
    ) -> &'static str {
        let label = match outcome {
            Outcome::Answered { reply, trusted } => {
                self.send_reply(delivery, correlation_id, &reply, trusted)
                    .await;
                if let Err(e) = ack(delivery).await {
                    tracing::warn!(error = %e, "ack failed; the command will be redelivered and answered from its stored result");
                }
                status_class(reply.status())
            }
            Outcome::Expired { reply, trusted } => {
                metrics::counter!(COMMANDS_EXPIRED, "type" => kind.to_owned(), "prefix" => self.prefix.clone())
                    .increment(1);
                self.send_reply(delivery, correlation_id, &reply, trusted)
                    .await;
                if let Err(e) = ack(delivery).await {
                    tracing::warn!(error = %e, "ack failed; the command will be redelivered and found expired");
                }
                "expired"
            }
            Outcome::DeadLettered { reason, answer } => {
                let dead = dead_letter(&self.publisher, &self.topology, delivery, &reason).await;
                // Only once it is set aside: a message that went back to its queue is
                // handled again on redelivery.
                if dead {
                    self.answer(delivery, correlation_id, answer).await;
                    "dead_lettered"
                } else {
                    "requeued"
                }
            }
            Outcome::RetryLater { reason } => {
                let retry = retry_later(
                    &self.publisher,
                    &self.topology,
                    RetryTarget::Commands,
                    delivery,
                    &reason,
                )
                .await;
                match retry {
                    Retry::Scheduled { .. } => "retried",
                    Retry::DeadLettered => "dead_lettered",
                    Retry::Requeued => "requeued",
                }
            }
        };
        self.record(kind, label, started);
        label
    }

    async fn answer(&self, delivery: &Delivery, correlation_id: &str, answer: Answer) {
        match answer {
            Answer::Nothing => {}
            Answer::Error(reply) => {
                self.send_reply(delivery, correlation_id, &reply, false)
                    .await;
            }
            Answer::Failed {
                reply,
                env,
                trusted,
            } => {
                if delivery.properties.reply_to().is_none() {
                    // A fire-and-forget command was answered nothing: replaying it applies it.
                    return;
                }
                match record_unapplied(&self.db, &env, &reply, "command.failed").await {
                    Ok(true) => {
                        self.send_reply(delivery, correlation_id, &reply, trusted)
                            .await;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %redact(&e), "the failure could not be recorded; the caller is answered at its deadline");
                    }
                }
            }
        }
    }

    /// Sends the reply to `reply_to` (default exchange), if the publisher asked for one. A
    /// lost reply only costs the caller its answer; the effect is committed.
    /// Only Roster's own commands may be answered into Roster's own queues (`trusted`): a
    /// reply is published as Roster's broker user, and another service must not use it to
    /// write into the commands or mailer queue or an ingress's reply queue.
    async fn send_reply(
        &self,
        delivery: &Delivery,
        correlation_id: &str,
        reply: &Reply,
        trusted: bool,
    ) {
        let Some(reply_to) = delivery.properties.reply_to().as_ref() else {
            return;
        };
        if !trusted && self.topology.owns(reply_to.as_str()) {
            tracing::warn!(reply_to = %reply_to, "reply_to names one of Roster's own queues; not answered");
            return;
        }
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(correlation_headers(correlation_id));
        if let Some(cid) = delivery.properties.correlation_id().as_ref() {
            props = props.with_correlation_id(cid.clone());
        }
        let body = serde_json::to_vec(reply).unwrap_or_default();
        // Sent, not waited for: a reply is transient, and one the broker loses costs the
        // caller only its answer (the ingress then asks PostgreSQL for the stored reply at
        // the deadline); waiting for its confirm would hold the batch's next commands.
        if let Err(e) = self
            .publisher
            .send_raw(Raw {
                exchange: "",
                routing_key: reply_to.as_str(),
                body: &body,
                props,
                mandatory: false,
            })
            .await
        {
            tracing::warn!(error = %e, "reply not delivered");
        }
    }

    /// Counts one handled delivery and how long it took (`common::metrics`).
    fn record(&self, kind: &str, outcome: &'static str, started: Instant) {
        let (kind, prefix) = (kind.to_owned(), self.prefix.clone());
        metrics::counter!(COMMANDS_PROCESSED, "type" => kind.clone(), "outcome" => outcome, "prefix" => prefix.clone())
            .increment(1);
        metrics::histogram!(COMMAND_DURATION, "type" => kind, "prefix" => prefix)
            .record(started.elapsed().as_secs_f64());
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

fn correlation_headers(correlation_id: &str) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert(
        CORRELATION_HEADER.into(),
        AMQPValue::LongString(LongString::from(correlation_id)),
    );
    h
}
