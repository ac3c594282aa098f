//! The consume loop every consumer runs: next delivery → spawn its handler (at most
//! `prefetch` at once, bounded by the broker) → on shutdown, cancel the consumer and let
//! in-flight handlers finish; what does not finish in time is requeued by the broker
//! when the channel closes.

use super::Topology;
use futures_util::StreamExt;
use lapin::{
    Connection,
    message::Delivery,
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::task::JoinSet;

/// How long in-flight handlers get to finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

pub struct ConsumeOptions<'a> {
    pub queue: &'a str,
    pub tag_prefix: &'a str,
    pub prefetch: u16,
    /// Set while the consumer runs (for `/readyz`).
    pub consuming: Arc<AtomicBool>,
}

/// Consumes `opts.queue` until `shutdown` resolves, handling each delivery in its own task.
pub async fn consume_until<F, Fut>(
    conn: &Connection,
    topology: &Topology,
    opts: ConsumeOptions<'_>,
    shutdown: impl Future<Output = ()>,
    handler: F,
) -> lapin::Result<()>
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let channel = conn.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .basic_qos(opts.prefetch.max(1), BasicQosOptions::default())
        .await?;
    let tag = format!("{}-{}", opts.tag_prefix, uuid::Uuid::new_v4());
    let mut consumer = channel
        .basic_consume(
            opts.queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    opts.consuming.store(true, Ordering::Relaxed);
    tracing::info!(queue = opts.queue, prefetch = opts.prefetch, "consuming");

    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let mut result = Ok(());
    loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            () = &mut shutdown => break,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    tasks.spawn(handler(delivery));
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, queue = opts.queue, "consumer interrupted; waiting for recovery");
                    if let Err(err) = channel.wait_for_recovery(err).await {
                        tracing::error!(error = %err, queue = opts.queue, "consumer cannot recover");
                        result = Err(err);
                        break;
                    }
                }
                None => break,
            },
        }
    }
    opts.consuming.store(false, Ordering::Relaxed);
    tracing::info!(
        in_flight = tasks.len(),
        queue = opts.queue,
        "no new deliveries; finishing in-flight ones"
    );
    let _ = channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await;
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "in-flight deliveries did not finish in time; the broker will redeliver them"
        );
        tasks.abort_all();
    }
    let _ = channel.close(200, "consumer stopped".into()).await;
    result
}
