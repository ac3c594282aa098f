//! Talking to the broker: connecting once, reading `<p>.dead-letter` without consuming it,
//! republishing to the original route with publisher confirms (acking each here only after
//! its confirm), and purging.
//!
//! Reading never removes anything: messages are taken with `basic.get` and not acked, then
//! returned. How they go back matters, and RabbitMQ does not put them back where they
//! were (3.10's quorum queue, checked by `tests/e2e/dead_letters.rs`):
//! - returned messages go to the *back* of the queue, not the head;
//! - closing a channel returns its unacked messages in no useful order once there are more
//!   than 32 of them (an Erlang map's hash order), and more than 32 returns in flight at
//!   once are applied out of order too.
//!
//! So every read takes *all* the messages that were ready when it started, wanted or not,
//! and returns them one `basic.nack` (requeue) at a time in the order taken, in batches
//! that are each awaited: they end up in their original order, behind anything
//! dead-lettered during the read. Each return also counts as a delivery: the message gains
//! or bumps an `x-delivery-count` header, which `replay` drops.

use super::{
    DlqError,
    cli::Selection,
    message::{DeadLetter, Route, replay_properties},
};
use common::amqp::{PublishError, Publisher, Raw, Topology};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueuePurgeOptions,
    },
    types::{DeliveryTag, FieldTable},
};
use std::time::Duration;

/// Returned messages in flight at once (RabbitMQ's quorum queue client reorders above 32).
const RETURN_BATCH: usize = 16;

/// Connects once (no endless retries: an operator at a terminal wants an answer).
pub async fn connect(url: &str) -> Result<Connection, DlqError> {
    // `AMQP_URL` may name several nodes of a cluster: the first that answers is used.
    let mut last = "no broker URL".to_owned();
    for node in common::amqp::nodes(url) {
        let props = ConnectionProperties::default().with_connection_name("roster-dlq".into());
        match tokio::time::timeout(Duration::from_secs(10), Connection::connect(node, props)).await
        {
            Ok(Ok(conn)) => return Ok(conn),
            // The broker's refusal may repeat the URL: never its password.
            Ok(Err(e)) => last = common::amqp::redact(&e),
            Err(_) => last = "no answer within 10 s".into(),
        }
    }
    Err(DlqError::Connect(last))
}

/// A channel on which dead letters are taken without acking, and then returned one by
/// one in the order they were taken (see the module doc).
struct Peek {
    channel: Channel,
    queue: String,
    /// Ready messages when it opened. Every read takes exactly these, so a message
    /// dead-lettered again while we work (a replayed one that still fails) is not met twice.
    at_start: u32,
    taken: u32,
    /// Delivery tags not acked, in the order taken.
    unacked: Vec<DeliveryTag>,
}

impl Peek {
    async fn open(conn: &Connection, topology: &Topology) -> Result<Self, DlqError> {
        let channel = conn.create_channel().await?;
        topology.declare(&channel).await?;
        let queue = topology.dead_letter_queue();
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            channel,
            queue,
            at_start: declared.message_count(),
            taken: 0,
            unacked: Vec::new(),
        })
    }

    /// The next message of the snapshot, or `None` once all of it has been taken.
    async fn next(&mut self) -> Result<Option<Delivery>, DlqError> {
        if self.taken >= self.at_start {
            return Ok(None);
        }
        let got = self
            .channel
            .basic_get(
                self.queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?;
        self.taken += 1;
        Ok(got.map(|m| {
            self.unacked.push(m.delivery.delivery_tag);
            m.delivery
        }))
    }

    /// Removes a message from the queue for good.
    async fn ack(&mut self, d: &Delivery) -> Result<(), DlqError> {
        d.ack(BasicAckOptions::default()).await?;
        self.unacked.retain(|tag| *tag != d.delivery_tag);
        Ok(())
    }

    /// Returns what was not acked, one `basic.nack` (requeue) at a time in the order taken
    /// — closing the channel with them unacked returns them in hash order once there are
    /// more than 32 — whatever `result` was.
    ///
    /// The quorum queue applies returns asynchronously, and once more than 32 are in
    /// flight it stashes the rest and applies them out of order. So they are sent in
    /// batches, each awaited until the queue has taken it back — which also means the next
    /// command does not count, read and return only some of them and rotate the queue.
    async fn close<T>(self, result: Result<T, DlqError>) -> Result<T, DlqError> {
        let returned = self.return_unacked().await;
        let closed = self
            .channel
            .close(200, "dlq: messages returned".into())
            .await;
        let value = result?;
        returned?;
        closed?;
        Ok(value)
    }
}

impl Peek {
    async fn return_unacked(&self) -> lapin::Result<()> {
        let mut sent = 0;
        for batch in self.unacked.chunks(RETURN_BATCH) {
            for tag in batch {
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                self.channel.basic_nack(*tag, requeue).await?;
            }
            sent += batch.len();
            self.wait_until_ready(sent).await?;
        }
        Ok(())
    }

    /// Waits (10 s at most) until the queue holds at least `n` ready messages: as every
    /// message was taken, those are the ones returned (or newer ones, which is harmless).
    async fn wait_until_ready(&self, n: usize) -> lapin::Result<()> {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let ready = self
                .channel
                .queue_declare(
                    self.queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?
                .message_count();
            if ready as usize >= n {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            returned = n,
            "the dead-letter queue has not taken back every message read yet"
        );
        Ok(())
    }
}

/// Ready messages in the dead-letter queue (those being read by someone are not counted).
pub async fn depth(conn: &Connection, topology: &Topology) -> Result<u32, DlqError> {
    let peek = Peek::open(conn, topology).await?;
    let n = peek.at_start;
    peek.close(Ok(n)).await
}

/// What `list` found.
#[derive(Clone, Debug)]
pub struct Listing {
    pub queue: String,
    /// Ready messages in the queue when it was read.
    pub total: u32,
    /// The `limit` oldest of them (by failure time), oldest first.
    pub messages: Vec<DeadLetter>,
}

/// The `limit` oldest dead letters, left in the queue in their order.
pub async fn list(
    conn: &Connection,
    topology: &Topology,
    limit: usize,
) -> Result<Listing, DlqError> {
    let mut peek = Peek::open(conn, topology).await?;
    let read = async {
        let mut messages = Vec::new();
        while let Some(d) = peek.next().await? {
            messages.push(DeadLetter::of(&d.properties, &d.data));
        }
        // Stable: messages without a time keep their queue order, first.
        messages.sort_by_key(|m| m.failed_at);
        messages.truncate(limit);
        Ok(messages)
    }
    .await;
    let (queue, total) = (peek.queue.clone(), peek.at_start);
    Ok(Listing {
        queue,
        total,
        messages: peek.close(read).await?,
    })
}

/// One dead letter in full.
#[derive(Clone, Debug)]
pub struct Shown {
    pub summary: DeadLetter,
    /// How many messages in the queue carry this id (`replay <id>` replays them all).
    pub copies: usize,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

/// The first dead letter with this id, left in the queue.
pub async fn show(
    conn: &Connection,
    topology: &Topology,
    id: &str,
) -> Result<Option<Shown>, DlqError> {
    let mut peek = Peek::open(conn, topology).await?;
    let found = async {
        let (mut found, mut copies) = (None, 0);
        while let Some(d) = peek.next().await? {
            let summary = DeadLetter::of(&d.properties, &d.data);
            if summary.id != id {
                continue;
            }
            copies += 1;
            if found.is_none() {
                found = Some((summary, d.properties, d.data));
            }
        }
        Ok(found.map(|(summary, properties, body)| Shown {
            summary,
            copies,
            properties,
            body,
        }))
    }
    .await;
    peek.close(found).await
}

/// What `replay` did.
#[derive(Clone, Debug, Default)]
pub struct ReplayReport {
    /// Republished (confirmed) and removed from the dead-letter queue.
    pub replayed: Vec<(String, Route)>,
    /// Left in the dead-letter queue, with why.
    pub skipped: Vec<(String, String)>,
}

/// Republishes the selected dead letters to their original route, each confirmed by the
/// broker before it is acked (removed) here. A crash in between leaves it in both places;
/// replaying it again is harmless, because the worker applies a command id once.
pub async fn replay(
    conn: &Connection,
    topology: &Topology,
    selection: &Selection,
) -> Result<ReplayReport, DlqError> {
    let publisher = Publisher::open(conn).await?;
    let mut peek = Peek::open(conn, topology).await?;
    let done = async {
        let mut report = ReplayReport::default();
        while let Some(d) = peek.next().await? {
            let summary = DeadLetter::of(&d.properties, &d.data);
            if matches!(selection, Selection::Id(id) if *id != summary.id) {
                continue; // not acked: returned when the channel closes
            }
            match replay_one(&publisher, topology, &d, &summary).await? {
                Ok(route) => {
                    // Only now, with the broker's confirm in hand, is it removed here.
                    peek.ack(&d).await?;
                    report.replayed.push((summary.id, route));
                }
                Err(why) => report.skipped.push((summary.id, why)),
            }
        }
        Ok(report)
    }
    .await;
    let _ = publisher
        .channel()
        .close(200, "dlq: replay done".into())
        .await;
    peek.close(done).await
}

/// Republishes one message with confirms: `Ok(Ok(route))` confirmed, `Ok(Err(why))` not
/// republished (leave it), `Err` when the broker failed.
async fn replay_one(
    publisher: &Publisher,
    topology: &Topology,
    d: &Delivery,
    summary: &DeadLetter,
) -> Result<Result<Route, String>, DlqError> {
    let Some(route) = summary.route.clone() else {
        return Ok(Err("no original route in its headers".into()));
    };
    if route.exchange == topology.dead_letter_exchange() {
        return Ok(Err(format!(
            "its original route {route} is the dead-letter exchange itself"
        )));
    }
    let from_integration = d
        .properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key("x-roster-credential-hint"));
    if from_integration {
        // Its credential was taken out when it was dead-lettered, and Roster will not
        // republish another service's command as its own.
        return Ok(Err(
            "an integration's command (its credential is not kept): the integration must \
             publish it again"
                .into(),
        ));
    }
    let published = publisher
        .publish_raw(Raw {
            exchange: &route.exchange,
            routing_key: &route.routing_key,
            body: &d.data,
            props: replay_properties(&d.properties),
            mandatory: true,
        })
        .await;
    match published {
        Ok(()) => Ok(Ok(route)),
        Err(e @ (PublishError::Nacked | PublishError::Unroutable)) => {
            Ok(Err(format!("{route} did not accept it: {e}")))
        }
        Err(source) => Err(DlqError::Republish {
            what: format!("{} to {route}", summary.id),
            source,
        }),
    }
}

/// Deletes every ready message in the dead-letter queue; returns how many.
pub async fn purge(conn: &Connection, topology: &Topology) -> Result<u32, DlqError> {
    let channel = conn.create_channel().await?;
    topology.declare(&channel).await?;
    let purged = channel
        .queue_purge(
            topology.dead_letter_queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await;
    let _ = channel.close(200, "dlq: purged".into()).await;
    Ok(purged?)
}
