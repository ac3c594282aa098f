//! Request/reply over AMQP (DESIGN "The synchronous reply"): each ingress instance owns a
//! reply queue, publishes each command confirmed with `reply_to` and `correlation_id`,
//! and hands the worker's reply to the waiting request. A supervisor replaces the broker
//! connection, the publishing channel and the reply queue when any of them (the reply
//! consumer included) is not usable and lapin's own recovery has not brought it back
//! within `RECOVERY_GRACE`.

use super::{
    PublishError, Publisher, Topology,
    link::{Link, RECOVERY_GRACE},
    publish::PublishOptions,
};
use crate::{
    messages::{Envelope, Reply},
    shutdown::TaskGuard,
};
use futures_util::StreamExt;
use lapin::{
    Channel, Connection,
    options::{BasicConsumeOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::sync::oneshot;

/// Why a command got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Refused for certain (never sent, nacked, returned unroutable, or too many in
    /// flight): nothing will happen.
    #[error("command not accepted: {0}")]
    NotAccepted(#[from] PublishError),
    /// No reply by the command's deadline. It may be in the broker (confirmed, or a confirm
    /// lost with its channel): whether it was applied is settled by the caller's fence
    /// (`ingress::commands`); the worker applies nothing past the deadline.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// What one broker connection provides: a confirming channel and a consumed reply queue.
struct Channels {
    publisher: Publisher,
    reply_queue: String,
    reply_channel: Channel,
    /// False once the reply consumer has ended (cancelled, or its recovery failed): from
    /// then on no reply would reach a caller, however healthy the connection looks.
    consuming: Arc<AtomicBool>,
    _consumer: TaskGuard<()>,
}

impl Channels {
    fn usable(&self) -> bool {
        self.publisher.channel().status().connected()
            && self.reply_channel.status().connected()
            && self.consuming.load(Ordering::Relaxed)
    }
}

struct Inner {
    link: Link,
    topology: Topology,
    instance: String,
    timeout: Duration,
    max_in_flight: usize,
    pending: Pending,
    channels: RwLock<Arc<Channels>>,
}

/// Publishes commands and awaits their replies.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
    _supervisor: Arc<TaskGuard<()>>,
}

impl RpcClient {
    /// Declares the topology and this instance's reply queue, and starts consuming it.
    /// At most `max_in_flight` commands wait for replies at once; more are refused at once
    /// (`PublishError::Overloaded`) rather than queued in memory.
    pub async fn start(
        link: Link,
        topology: &Topology,
        instance: &str,
        timeout: Duration,
        max_in_flight: usize,
    ) -> lapin::Result<Self> {
        let pending: Pending = Arc::default();
        let channels = open(
            &link.current(),
            topology,
            &format!("{instance}-0"),
            &pending,
        )
        .await?;
        let inner = Arc::new(Inner {
            link,
            topology: topology.clone(),
            instance: instance.to_owned(),
            timeout,
            max_in_flight: max_in_flight.max(1),
            pending,
            channels: RwLock::new(Arc::new(channels)),
        });
        let supervisor = TaskGuard::spawn(supervise(Arc::downgrade(&inner)));
        Ok(Self {
            inner,
            _supervisor: Arc::new(supervisor),
        })
    }

    /// The broker connection.
    pub fn link(&self) -> &Link {
        &self.inner.link
    }

    /// Whether a command can be published and its reply received right now: the
    /// connection, the publishing channel, the reply channel and its consumer all work
    /// (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// The command timeout this client was started with (`COMMAND_TIMEOUT_MS`).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Publishes the command and waits for the worker's reply until the envelope's
    /// `apply_by` (or `timeout` without one), for both. Only a certain refusal is
    /// `NotAccepted`; a publish whose outcome is unknown (its confirm lost with the channel,
    /// or late) keeps waiting for the reply, since the command may be in the queue.
    pub async fn call(&self, envelope: &Envelope) -> Result<Reply, RpcError> {
        let wait = envelope.apply_by.map_or(self.inner.timeout, |by| {
            (by - chrono::Utc::now()).to_std().unwrap_or_default()
        });
        let deadline = tokio::time::Instant::now() + wait;
        let channels = self.inner.channels();
        if !channels.publisher.channel().status().connected() {
            // Not sent: certain.
            return Err(RpcError::NotAccepted(PublishError::NotConnected));
        }
        let key = envelope.id.to_string();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.inner.pending);
            if pending.len() >= self.inner.max_in_flight {
                return Err(RpcError::NotAccepted(PublishError::Overloaded));
            }
            pending.insert(key.clone(), tx);
        }
        let _guard = PendingGuard {
            pending: &self.inner.pending,
            key: &key,
        };
        let exchange = self.inner.topology.commands_exchange();
        let published = channels.publisher.publish(
            &exchange,
            &envelope.kind,
            envelope,
            PublishOptions {
                reply_to: Some(&channels.reply_queue),
                correlation_id: Some(&key),
                mandatory: true,
                headers: Vec::new(),
            },
        );
        match tokio::time::timeout_at(deadline, published).await {
            Ok(Ok(())) => {}
            // Refused for certain: nacked (e.g. the queue is full), returned unroutable,
            // or refused before sending.
            Ok(Err(
                e @ (PublishError::Nacked
                | PublishError::Unroutable
                | PublishError::Overloaded
                | PublishError::NotConnected),
            )) => {
                return Err(e.into());
            }
            // A confirm that did not come, or failed with its channel: the command may be
            // in the queue and may be applied before its deadline, so wait for the reply.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, command_id = %key, "publish outcome unknown; waiting for the reply until the deadline");
            }
            Err(_) => return Err(RpcError::Timeout(wait)),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(RpcError::Timeout(wait)),
        }
    }

    /// Commands waiting for a reply right now.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.pending).len()
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
    p.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens the publishing channel and the reply queue `{p}.reply.{name}` on `conn`.
async fn open(
    conn: &Connection,
    topology: &Topology,
    name: &str,
    pending: &Pending,
) -> lapin::Result<Channels> {
    let publisher = Publisher::open(conn).await?;
    topology.declare(publisher.channel()).await?;
    let reply_queue = topology.reply_queue(name);
    let channel = conn.create_channel().await?;
    let mut args = FieldTable::default();
    // Classic, exclusive, deleted with its connection.
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    channel
        .queue_declare(
            reply_queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            args,
        )
        .await?;
    let consumer = channel
        .basic_consume(
            reply_queue.as_str().into(),
            format!("ingress-{name}").as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let dispatch = pending.clone();
    let consuming = Arc::new(AtomicBool::new(true));
    let reply_channel = channel.clone();
    let flag = consuming.clone();
    let consumer_task = TaskGuard::spawn(async move {
        consume_replies(consumer, &channel, &dispatch).await;
        flag.store(false, Ordering::Relaxed);
    });
    Ok(Channels {
        publisher,
        reply_queue,
        reply_channel,
        consuming,
        _consumer: consumer_task,
    })
}

/// Hands each reply to its waiter until the consumer ends: cancelled by the broker (its
/// queue deleted) or interrupted without recovery.
async fn consume_replies(mut consumer: lapin::Consumer, channel: &Channel, pending: &Pending) {
    while let Some(delivery) = consumer.next().await {
        match delivery {
            Ok(delivery) => deliver_reply(pending, &delivery),
            Err(err) => {
                tracing::warn!(error = %super::redact(&err), "reply consumer interrupted; waiting for recovery");
                if let Err(err) = channel.wait_for_recovery(err).await {
                    tracing::error!(error = %super::redact(&err), "reply consumer cannot recover");
                    return;
                }
            }
        }
    }
    tracing::info!("reply consumer ended");
}

impl Inner {
    fn channels(&self) -> Arc<Channels> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_ready(&self) -> bool {
        self.link.is_connected() && self.channels().usable()
    }
}

/// Replaces connection and channels when they stay down past `RECOVERY_GRACE`, or at once
/// when the reply consumer has ended: lapin's recovery will not bring that back (e.g. the
/// broker still holds the exclusive reply queue of a connection it has not yet seen die).
async fn supervise(inner: Weak<Inner>) {
    let mut down_for = Duration::ZERO;
    let mut generation = 0u64;
    let tick = Duration::from_millis(500);
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.is_ready() {
            down_for = Duration::ZERO;
            continue;
        }
        down_for += tick;
        let consumer_ended = !inner.channels().consuming.load(Ordering::Relaxed);
        if down_for < RECOVERY_GRACE && !consumer_ended {
            continue;
        }
        tracing::error!(
            consumer_ended,
            "broker connection not usable and not recovered; replacing it"
        );
        loop {
            let conn = inner.link.reconnect().await;
            generation += 1;
            let name = format!("{}-{generation}", inner.instance);
            match open(&conn, &inner.topology, &name, &inner.pending).await {
                Ok(fresh) => {
                    *inner.channels.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %super::redact(&e), "could not reopen channels; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        down_for = Duration::ZERO;
    }
}

/// Removes the waiter however the call ends (reply, timeout, or the request dropped).
struct PendingGuard<'a> {
    pending: &'a Pending,
    key: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(self.key);
    }
}

fn deliver_reply(pending: &Pending, delivery: &lapin::message::Delivery) {
    let Some(cid) = delivery.properties.correlation_id().as_ref() else {
        tracing::warn!("reply without correlation_id dropped");
        return;
    };
    let reply: Reply = match serde_json::from_slice(&delivery.data) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable reply dropped");
            return;
        }
    };
    match lock(pending).remove(cid.as_str()) {
        Some(tx) => {
            let _ = tx.send(reply);
        }
        None => tracing::debug!(command_id = cid.as_str(), "late reply dropped"),
    }
}
