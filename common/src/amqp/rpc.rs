//! Request/reply over AMQP (DESIGN "The synchronous reply"): each ingress instance owns a
//! reply queue, publishes each command confirmed with `reply_to` and `correlation_id`,
//! and hands the worker's reply to the waiting request.

use super::{PublishError, Publisher, Topology, publish::PublishOptions};
use crate::messages::{Envelope, Reply};
use futures_util::StreamExt;
use lapin::{
    Connection,
    options::{BasicConsumeOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::oneshot;

/// Why a command got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Not confirmed by the broker: nothing will happen.
    #[error("command not accepted: {0}")]
    NotAccepted(#[from] PublishError),
    /// Accepted, but no reply in time: it will still be applied.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// Publishes commands and awaits their replies.
#[derive(Clone)]
pub struct RpcClient {
    publisher: Publisher,
    topology: Topology,
    reply_queue: String,
    pending: Pending,
    timeout: Duration,
}

impl RpcClient {
    /// Declares this instance's reply queue and starts consuming it.
    pub async fn start(
        conn: &Connection,
        topology: &Topology,
        instance: &str,
        timeout: Duration,
    ) -> lapin::Result<Self> {
        let publisher = Publisher::open(conn).await?;
        topology.declare(publisher.channel()).await?;
        let reply_queue = topology.reply_queue(instance);
        let channel = conn.create_channel().await?;
        let mut args = FieldTable::default();
        // Classic, exclusive, deleted with its connection; lapin re-declares it on recovery.
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
        let mut consumer = channel
            .basic_consume(
                reply_queue.as_str().into(),
                format!("ingress-{instance}").as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending: Pending = Arc::default();
        let dispatch = pending.clone();
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                match delivery {
                    Ok(delivery) => deliver_reply(&dispatch, &delivery),
                    Err(err) => {
                        tracing::warn!(error = %err, "reply consumer interrupted; waiting for recovery");
                        if let Err(err) = channel.wait_for_recovery(err).await {
                            tracing::error!(error = %err, "reply consumer cannot recover");
                            return;
                        }
                    }
                }
            }
        });
        Ok(Self {
            publisher,
            topology: topology.clone(),
            reply_queue,
            pending,
            timeout,
        })
    }

    /// Publishes the command and waits for the worker's reply.
    pub async fn call(&self, envelope: &Envelope) -> Result<Reply, RpcError> {
        let key = envelope.id.to_string();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(key.clone(), tx);
        let _guard = PendingGuard {
            pending: &self.pending,
            key: &key,
        };
        self.publisher
            .publish(
                &self.topology.commands_exchange(),
                &envelope.kind,
                envelope,
                PublishOptions {
                    reply_to: Some(&self.reply_queue),
                    correlation_id: Some(&key),
                    mandatory: true,
                    headers: Vec::new(),
                },
            )
            .await?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(RpcError::Timeout(self.timeout)),
        }
    }

    /// Commands waiting for a reply right now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes the waiter however the call ends (reply, timeout, or the request dropped).
struct PendingGuard<'a> {
    pending: &'a Pending,
    key: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.key);
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
    let waiter = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(cid.as_str());
    match waiter {
        Some(tx) => {
            let _ = tx.send(reply);
        }
        None => tracing::debug!(command_id = cid.as_str(), "late reply dropped"),
    }
}
