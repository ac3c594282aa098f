//! The AMQP topology: names derived from one prefix, declared idempotently by every
//! service so start order does not matter.
//!
//! - `{p}.commands` (topic exchange) → `{p}.commands` (quorum queue, delivery limit,
//!   dead-lettered to `{p}.dead-letter`)
//! - `{p}.events` (topic exchange) → `{p}.mailer` (quorum queue, bound to [`INVITE_ROUTE`]
//!   only: the outbox relay adds that key, as a `BCC` header, to the `user.created` and
//!   `user.reactivated` events of people whose invite is pending)
//! - `{p}.dead-letter` (fanout exchange) → `{p}.dead-letter` (quorum queue)
//! - `{p}.provisioning-log` (quorum queue, default exchange, bounded; dead-lettered to
//!   `{p}.dead-letter`): the ingress's provisioning-log entries for the worker
//! - `{p}.commands.retry.{n}` and `{p}.mailer.retry.{n}` (quorum queues, one per retry
//!   delay): a message waits there for the delay, then the broker dead-letters it back to
//!   the queue it came from.
//!
//! Every quorum queue starts with `x-quorum-initial-group-size` members when one is set
//! (`QUORUM_INITIAL_GROUP_SIZE`), else the broker's default, capped at the cluster's size.
//!
//! Every dead-lettering is at-least-once (`x-dead-letter-strategy`), so a message moving
//! to a retry or dead-letter queue cannot be lost on the way.

use crate::messages::events;
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use std::time::Duration;

/// The routing key that brings an event to the mailer's queue: the relay adds it as a
/// `BCC` header (RabbitMQ's sender-selected distribution, removed before delivery) to the
/// events of people with an invite pending, so an org with invites off sends the mailer
/// nothing.
pub const INVITE_ROUTE: &str = "mailer.invite";

/// Most provisioning-log messages (each a batch of entries) waiting for a worker.
pub const PROVISIONING_LOG_MAX_LENGTH: i32 = 100_000;

#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    queue_expires: Option<Duration>,
    retry_delays: Vec<Duration>,
    commands_max_length: Option<u32>,
    quorum_group_size: Option<u32>,
}

/// The queues that retry through the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryTarget {
    Commands,
    Mailer,
}

impl Topology {
    pub fn new(prefix: &str, delivery_limit: u32, queue_expires: Option<Duration>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            delivery_limit,
            queue_expires,
            retry_delays: Vec::new(),
            commands_max_length: None,
            quorum_group_size: None,
        }
    }

    /// Sets `x-quorum-initial-group-size` on every quorum queue: the members a queue starts
    /// with (the broker caps it at the cluster's size). `None`: the broker's default
    /// (`quorum_cluster_size`, 3). A queue's arguments are fixed when it is created: a
    /// different value than an existing queue's is refused (`PRECONDITION_FAILED`).
    pub fn with_quorum_group_size(mut self, size: Option<u32>) -> Self {
        self.quorum_group_size = size.filter(|n| *n > 0);
        self
    }

    /// Bounds the commands queue: past `max` waiting commands the broker refuses (nacks)
    /// new ones, and the ingress answers `503` instead of growing the backlog.
    pub fn with_commands_max_length(mut self, max: u32) -> Self {
        self.commands_max_length = Some(max).filter(|m| *m > 0);
        self
    }

    /// Sets the delays of the broker-side retry queues (one queue per delay).
    pub fn with_retry_delays(mut self, delays: &[Duration]) -> Self {
        self.retry_delays = delays.to_vec();
        self
    }

    pub fn from_settings(s: &crate::Settings) -> Self {
        Self::new(&s.amqp_prefix, s.delivery_limit, s.queue_expires)
            .with_retry_delays(&s.retry_delays)
            .with_commands_max_length(s.commands_queue_max_length)
            .with_quorum_group_size(s.quorum_initial_group_size)
    }

    /// How many times a message is retried through the broker before it is dead-lettered.
    pub fn retry_attempts(&self) -> usize {
        self.retry_delays.len()
    }

    /// The queue a message waits in before its `attempt`-th retry (1-based).
    pub fn retry_queue(&self, target: RetryTarget, attempt: usize) -> String {
        format!("{}.retry.{attempt}", self.target_queue(target))
    }

    /// The queue retried messages return to.
    pub fn target_queue(&self, target: RetryTarget) -> String {
        match target {
            RetryTarget::Commands => self.commands_queue(),
            RetryTarget::Mailer => self.mailer_queue(),
        }
    }

    pub fn commands_exchange(&self) -> String {
        format!("{}.commands", self.prefix)
    }
    /// Whether `queue` is one of Roster's own (named under its prefix): another service's
    /// `reply_to` must not make the worker publish into one.
    pub fn owns(&self, queue: &str) -> bool {
        queue
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    }

    pub fn commands_queue(&self) -> String {
        format!("{}.commands", self.prefix)
    }
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
    pub fn mailer_queue(&self) -> String {
        format!("{}.mailer", self.prefix)
    }
    /// The ingress's provisioning-log entries (published to the default exchange).
    pub fn provisioning_log_queue(&self) -> String {
        format!("{}.provisioning-log", self.prefix)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }
    /// A reply queue for one ingress instance.
    pub fn reply_queue(&self, instance: &str) -> String {
        format!("{}.reply.{instance}", self.prefix)
    }
    /// Queue expiry (only set for per-test topologies).
    pub fn queue_expires(&self) -> Option<Duration> {
        self.queue_expires
    }

    /// Every queue this topology declares (reply queues aside), for teardown.
    pub fn all_queues(&self) -> Vec<String> {
        let mut out = vec![
            self.commands_queue(),
            self.mailer_queue(),
            self.dead_letter_queue(),
            self.provisioning_log_queue(),
        ];
        for target in [RetryTarget::Commands, RetryTarget::Mailer] {
            out.extend((1..=self.retry_delays.len()).map(|n| self.retry_queue(target, n)));
        }
        out
    }

    /// Every exchange this topology declares, for teardown.
    pub fn all_exchanges(&self) -> Vec<String> {
        vec![
            self.commands_exchange(),
            self.events_exchange(),
            self.dead_letter_exchange(),
        ]
    }

    /// Declares every exchange, queue and binding. Idempotent.
    pub async fn declare(&self, ch: &Channel) -> lapin::Result<()> {
        // Per-test topologies (with queue expiry) clean up after themselves: their
        // exchanges go when the expired queues' bindings do.
        let durable = ExchangeDeclareOptions {
            durable: true,
            auto_delete: self.queue_expires.is_some(),
            ..Default::default()
        };
        for (exchange, kind) in [
            (self.dead_letter_exchange(), ExchangeKind::Fanout),
            (self.commands_exchange(), ExchangeKind::Topic),
            (self.events_exchange(), ExchangeKind::Topic),
        ] {
            ch.exchange_declare(
                exchange.as_str().into(),
                kind,
                durable,
                FieldTable::default(),
            )
            .await?;
        }

        self.declare_quorum(ch, &self.dead_letter_queue(), Vec::new())
            .await?;
        self.bind(
            ch,
            &self.dead_letter_queue(),
            &self.dead_letter_exchange(),
            "#",
        )
        .await?;
        self.declare_quorum(ch, &self.commands_queue(), {
            let mut args = self.dead_lettered();
            if let Some(max) = self.commands_max_length {
                args.push((
                    "x-max-length",
                    AMQPValue::LongInt(i32::try_from(max).unwrap_or(i32::MAX)),
                ));
            }
            args
        })
        .await?;
        self.bind(ch, &self.commands_queue(), &self.commands_exchange(), "#")
            .await?;
        self.declare_quorum(ch, &self.mailer_queue(), self.dead_lettered())
            .await?;
        // Only events with an invite pending reach the mailer (`INVITE_ROUTE`). Before,
        // every creation and reactivation did: those bindings are removed (a no-op when
        // they are not there).
        self.bind(
            ch,
            &self.mailer_queue(),
            &self.events_exchange(),
            INVITE_ROUTE,
        )
        .await?;
        for key in [events::USER_CREATED, events::USER_REACTIVATED] {
            ch.queue_unbind(
                self.mailer_queue().as_str().into(),
                self.events_exchange().as_str().into(),
                key.into(),
                FieldTable::default(),
            )
            .await?;
        }
        // Bounded: the log is best effort, and a worker that is away must not let it grow
        // without limit (the ingress counts what the broker refuses).
        self.declare_quorum(ch, &self.provisioning_log_queue(), {
            let mut args = self.dead_lettered();
            args.push((
                "x-max-length",
                AMQPValue::LongInt(PROVISIONING_LOG_MAX_LENGTH),
            ));
            args
        })
        .await?;
        for target in [RetryTarget::Commands, RetryTarget::Mailer] {
            for (i, delay) in self.retry_delays.iter().enumerate() {
                let args = vec![
                    ("x-message-ttl", AMQPValue::LongInt(millis(*delay))),
                    ("x-dead-letter-exchange", long_string("")),
                    (
                        "x-dead-letter-routing-key",
                        long_string(&self.target_queue(target)),
                    ),
                    ("x-dead-letter-strategy", long_string("at-least-once")),
                    ("x-overflow", long_string("reject-publish")),
                ];
                self.declare_quorum(ch, &self.retry_queue(target, i + 1), args)
                    .await?;
            }
        }
        Ok(())
    }

    /// Arguments of a consumed queue: a delivery limit, then the dead-letter queue.
    fn dead_lettered(&self) -> Vec<(&'static str, AMQPValue)> {
        vec![
            (
                "x-delivery-limit",
                AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
            ),
            (
                "x-dead-letter-exchange",
                long_string(&self.dead_letter_exchange()),
            ),
            ("x-dead-letter-strategy", long_string("at-least-once")),
            ("x-overflow", long_string("reject-publish")),
        ]
    }

    async fn declare_quorum(
        &self,
        ch: &Channel,
        name: &str,
        extra: Vec<(&'static str, AMQPValue)>,
    ) -> lapin::Result<()> {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        for (k, v) in extra {
            args.insert(k.into(), v);
        }
        if let Some(size) = self.quorum_group_size {
            args.insert(
                "x-quorum-initial-group-size".into(),
                AMQPValue::LongInt(i32::try_from(size).unwrap_or(i32::MAX)),
            );
        }
        if let Some(expires) = self.queue_expires {
            args.insert("x-expires".into(), AMQPValue::LongInt(millis(expires)));
        }
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
        Ok(())
    }

    async fn bind(
        &self,
        ch: &Channel,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> lapin::Result<()> {
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_the_prefix() {
        let t = Topology::new("t1", 5, None);
        assert_eq!(t.commands_queue(), "t1.commands");
        assert_eq!(t.mailer_queue(), "t1.mailer");
        assert_eq!(t.dead_letter_queue(), "t1.dead-letter");
        assert_eq!(t.reply_queue("abc"), "t1.reply.abc");
        assert!(t.owns("t1.commands") && t.owns("t1.reply.abc"));
        assert!(!t.owns("t10.commands") && !t.owns("hr-sync.replies") && !t.owns("t1"));
        let t = t.with_retry_delays(&[Duration::from_secs(1), Duration::from_secs(5)]);
        assert_eq!(t.retry_attempts(), 2);
        assert_eq!(
            t.retry_queue(RetryTarget::Commands, 2),
            "t1.commands.retry.2"
        );
        assert_eq!(t.retry_queue(RetryTarget::Mailer, 1), "t1.mailer.retry.1");
    }
}
