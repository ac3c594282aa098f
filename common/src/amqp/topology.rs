//! The AMQP topology: names derived from one prefix, declared idempotently by every
//! service so start order does not matter.
//!
//! - `{p}.commands` (topic exchange) → `{p}.commands` (quorum queue, delivery limit,
//!   dead-lettered to `{p}.dead-letter`)
//! - `{p}.events` (topic exchange) → `{p}.mailer` (quorum queue, bound to `user.created`)
//! - `{p}.dead-letter` (fanout exchange) → `{p}.dead-letter` (quorum queue)

use crate::messages::events;
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    queue_expires: Option<Duration>,
}

impl Topology {
    pub fn new(prefix: &str, delivery_limit: u32, queue_expires: Option<Duration>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            delivery_limit,
            queue_expires,
        }
    }

    pub fn from_settings(s: &crate::Settings) -> Self {
        Self::new(&s.amqp_prefix, s.delivery_limit, s.queue_expires)
    }

    pub fn commands_exchange(&self) -> String {
        format!("{}.commands", self.prefix)
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

    /// Declares every exchange, queue and binding. Idempotent.
    pub async fn declare(&self, ch: &Channel) -> lapin::Result<()> {
        // Per-test topologies (with queue expiry) clean up after themselves: their
        // exchanges go when the expired queues' bindings do.
        let durable = ExchangeDeclareOptions {
            durable: true,
            auto_delete: self.queue_expires.is_some(),
            ..Default::default()
        };
        ch.exchange_declare(
            self.dead_letter_exchange().as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.commands_exchange().as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.events_exchange().as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;

        self.declare_quorum(ch, &self.dead_letter_queue(), false)
            .await?;
        self.bind(
            ch,
            &self.dead_letter_queue(),
            &self.dead_letter_exchange(),
            "#",
        )
        .await?;
        self.declare_quorum(ch, &self.commands_queue(), true)
            .await?;
        self.bind(ch, &self.commands_queue(), &self.commands_exchange(), "#")
            .await?;
        self.declare_quorum(ch, &self.mailer_queue(), true).await?;
        self.bind(
            ch,
            &self.mailer_queue(),
            &self.events_exchange(),
            events::USER_CREATED,
        )
        .await?;
        Ok(())
    }

    async fn declare_quorum(
        &self,
        ch: &Channel,
        name: &str,
        dead_letter: bool,
    ) -> lapin::Result<()> {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        if dead_letter {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.dead_letter_exchange()),
            );
        }
        if let Some(expires) = self.queue_expires {
            args.insert(
                "x-expires".into(),
                AMQPValue::LongInt(i32::try_from(expires.as_millis()).unwrap_or(i32::MAX)),
            );
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
    }
}
