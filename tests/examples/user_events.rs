//! An example consumer of Roster's user events, for teams integrating through RabbitMQ
//! (docs/messages.md, "Example consumer"): it declares a durable quorum queue of its own,
//! binds it to `<prefix>.events` with `user.*`, and prints each change:
//!
//! ```text
//! user.updated jane@example.com v3 {title: "CTO"}
//! ```
//!
//! It acks a message only after handling it (so nothing is lost if it stops halfway),
//! skips an envelope id it has already seen (delivery is at least once), and flags a
//! version that does not move forward for its user.
//!
//! `AMQP_URL=amqp://… AMQP_PREFIX=roster cargo run -p tests --example user_events -- --queue my-team.users`

use anyhow::{Context, bail};
use common::messages::Envelope;
use futures_util::StreamExt;
use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use tests::feed::Feed;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let queue = queue_arg()?;
    let url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let prefix = env_or("AMQP_PREFIX", "roster");
    let exchange = format!("{prefix}.events");

    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ (AMQP_URL)")?;
    let channel = conn.create_channel().await?;
    // The same declaration Roster makes, so it is a no-op when Roster runs and lets this
    // consumer start first.
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring {exchange}"))?;
    // Durable and quorum: events wait here while this consumer is down.
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .with_context(|| format!("declaring queue {queue}"))?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "user.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel.basic_qos(50, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "user-events-example".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    eprintln!("listening on {queue} (bound to {exchange} with user.*); Ctrl-C to stop");

    let mut feed = Feed::new();
    loop {
        let delivery = tokio::select! {
            d = deliveries.next() => match d {
                Some(d) => d?,
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        match Envelope::from_bytes(&delivery.data) {
            Ok(envelope) => match feed.observe(&envelope) {
                Ok(seen) => println!("{}", seen.line()),
                Err(e) => eprintln!("skipping an event I cannot follow: {e}"),
            },
            // Not an envelope at all: keep it out of the queue instead of looping on it.
            Err(e) => {
                eprintln!("rejecting an undecodable message: {e}");
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..Default::default()
                    })
                    .await?;
                continue;
            }
        }
        // Only after the change was handled (here: printed).
        delivery.ack(BasicAckOptions::default()).await?;
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

fn queue_arg() -> anyhow::Result<String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--queue"), Some(q)) if !q.is_empty() => Ok(q),
        _ => bail!("usage: user_events --queue <your queue name>"),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}
