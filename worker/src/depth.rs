//! Queue depths for the metrics: every `INTERVAL` the worker asks the broker (a passive
//! `queue_declare`, on a channel of its own) how many messages wait in the commands,
//! mailer and dead-letter queues, and sets `roster_queue_messages{queue,prefix}`. A failed
//! look-up drops the channel (a missing queue closes it) and skips that sample.

use common::{
    amqp::{Topology, link::Link},
    metrics::{QUEUE_MESSAGES, prefix_of, queue_label},
};
use lapin::{Channel, options::QueueDeclareOptions, types::FieldTable};
use std::time::Duration;
use tokio::sync::watch;

/// How often depths are sampled.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How long one look-up may take before the sample is skipped.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Samples until `stop` turns true.
pub async fn sample(link: Link, topology: Topology, mut stop: watch::Receiver<bool>) {
    let prefix = prefix_of(&topology);
    let queues = [
        topology.commands_queue(),
        topology.mailer_queue(),
        topology.dead_letter_queue(),
    ];
    let mut channel: Option<Channel> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        for queue in &queues {
            match depth(&link, &mut channel, queue).await {
                Some(n) => metrics::gauge!(
                    QUEUE_MESSAGES,
                    "queue" => queue_label(&prefix, queue),
                    "prefix" => prefix.clone()
                )
                .set(f64::from(n)),
                None => {
                    channel = None;
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {},
            _ = stop.changed() => {},
        }
    }
}

/// Messages ready in `queue`, opening a channel on the worker's connection if needed.
async fn depth(link: &Link, channel: &mut Option<Channel>, queue: &str) -> Option<u32> {
    let ch = match channel.as_ref().filter(|c| c.status().connected()) {
        Some(c) => c.clone(),
        None => {
            let opened = tokio::time::timeout(LOOKUP_TIMEOUT, link.current().create_channel())
                .await
                .ok()?
                .ok()?;
            channel.insert(opened).clone()
        }
    };
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = tokio::time::timeout(
        LOOKUP_TIMEOUT,
        ch.queue_declare(queue.into(), passive, FieldTable::default()),
    )
    .await;
    match declared {
        Ok(Ok(q)) => Some(q.message_count()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, queue, "queue depth not available");
            None
        }
        Err(_) => {
            tracing::debug!(queue, "queue depth look-up timed out");
            None
        }
    }
}
