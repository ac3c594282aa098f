//! The consume loop every consumer runs: next delivery → spawn its handler (at most
//! `prefetch` at once, bounded by the broker) → on shutdown, cancel the consumer and let
//! in-flight handlers finish; what does not finish in time is requeued by the broker
//! when the channel closes. A connection, consuming channel or watched publishing channel
//! that is not usable for `RECOVERY_GRACE` ends the loop with `Ended::Lost`, so the caller
//! can replace the connection. Handlers ack with [`ack`], which gives up after
//! `ACK_TIMEOUT`, so a handler never waits on a connection that is gone.

use super::{
    Topology,
    link::{Link, RECOVERY_GRACE},
};
use futures_util::StreamExt;
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::FieldTable,
};
use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::task::JoinSet;

/// How long in-flight handlers get to finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// How long an ack or nack may take. It is one frame; while the connection is down or
/// being recovered it cannot be sent, and waiting would hold the handler (and a drain)
/// for nothing: the broker redelivers what it did not get.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an ack or nack did not reach the broker (which will deliver the message again).
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("not sent within {0:?}")]
    Timeout(Duration),
}

/// Acknowledges the delivery, waiting at most `ACK_TIMEOUT`.
pub async fn ack(delivery: &Delivery) -> Result<(), AckError> {
    bounded(delivery.ack(BasicAckOptions::default())).await
}

/// Returns the delivery to its queue (the delivery limit bounds how often), waiting at
/// most `ACK_TIMEOUT`.
pub async fn requeue(delivery: &Delivery) -> Result<(), AckError> {
    bounded(delivery.nack(BasicNackOptions {
        requeue: true,
        ..Default::default()
    }))
    .await
}

async fn bounded(op: impl Future<Output = lapin::Result<bool>>) -> Result<(), AckError> {
    tokio::time::timeout(ACK_TIMEOUT, op)
        .await
        .map_err(|_| AckError::Timeout(ACK_TIMEOUT))??;
    Ok(())
}

pub struct ConsumeOptions<'a> {
    pub queue: &'a str,
    pub tag_prefix: &'a str,
    pub prefetch: u16,
    /// Deliveries handled at once (at most `prefetch`, which bounds what is held).
    pub concurrency: usize,
    /// Set while the consumer runs (for `/readyz`).
    pub consuming: Arc<AtomicBool>,
    /// The channels the handlers publish on (replies, events, retries): one that stays
    /// unusable ends the loop like a lost connection, since lapin does not reopen a channel
    /// the broker closed (e.g. after a publish to an exchange that was deleted).
    pub watch: Vec<Channel>,
}

/// Why the consume loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was requested.
    Shutdown,
    /// The connection was lost and not recovered in time: replace it and consume again.
    Lost,
}

/// One broker session of a consumer (the worker's commands, the mailer's events): what it
/// opens on a connection, then its consume loop. [`sessions`] runs one after another.
pub trait Session {
    /// Opens what the session needs on `conn`, racing every wait on the broker against
    /// `shutdown`, and consumes until the connection is lost (`Ended::Lost`) or `shutdown`
    /// resolves (`Ended::Shutdown`).
    fn run(
        &self,
        conn: &Connection,
        shutdown: Shutdown<'_>,
    ) -> impl Future<Output = lapin::Result<Ended>> + Send;
}

/// The shutdown a [`Session`] races its waits against.
pub type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>;

/// The consume-with-reconnect loop the worker and the mailer share: `session` runs on
/// `link`'s connection; a lost connection or a failed session (logged) is followed by a
/// new connection, raced against the shutdown, and another session; a shutdown ends it.
pub async fn sessions<S, T>(link: &Link, mut shutdown: Pin<&mut S>, session: &T)
where
    S: Future<Output = ()> + Send,
    T: Session,
{
    loop {
        let conn = link.current();
        match session.run(&conn, shutdown.as_mut()).await {
            Ok(Ended::Shutdown) => return,
            Ok(Ended::Lost) => {}
            Err(e) => {
                tracing::error!(error = %super::redact(&e), "the broker session failed; connecting again");
            }
        }
        if crate::shutdown::unless(shutdown.as_mut(), link.reconnect())
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Consumes `opts.queue` until `shutdown` resolves (then `Ended::Shutdown`; the future is
/// not polled again) or the connection is lost for good (`Ended::Lost`), handling each
/// delivery in its own task.
pub async fn consume_until<S, F, Fut>(
    conn: &Connection,
    topology: &Topology,
    opts: ConsumeOptions<'_>,
    mut shutdown: std::pin::Pin<&mut S>,
    handler: F,
) -> lapin::Result<Ended>
where
    S: Future<Output = ()> + ?Sized,
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tag = format!("{}-{}", opts.tag_prefix, uuid::Uuid::new_v4());
    // Each step waits on the broker: one that is gone must not hold up a shutdown.
    let setup = async {
        let channel = conn.create_channel().await?;
        topology.declare(&channel).await?;
        channel
            .basic_qos(opts.prefetch.max(1), BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                opts.queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((channel, consumer))
    };
    let Some(set_up) = crate::shutdown::unless(shutdown.as_mut(), setup).await else {
        return Ok(Ended::Shutdown);
    };
    let (channel, mut consumer) = set_up?;
    opts.consuming.store(true, Ordering::Relaxed);
    tracing::info!(queue = opts.queue, prefetch = opts.prefetch, "consuming");

    let mut tasks = JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(
        opts.concurrency.clamp(1, usize::from(opts.prefetch.max(1))),
    ));
    let mut ended = Ended::Shutdown;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut down_since: Option<tokio::time::Instant> = None;
    loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            () = shutdown.as_mut() => break,
            // A handler finishing frees a slot: wake up to take the next delivery.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = check.tick() => {
                // A recovery that never finishes shows only as a connection that stays down.
                let usable = super::is_connected(conn)
                    && channel.status().connected()
                    && opts.watch.iter().all(|c| c.status().connected());
                if usable {
                    down_since = None;
                } else if down_since.get_or_insert_with(tokio::time::Instant::now).elapsed() > RECOVERY_GRACE {
                    tracing::error!(queue = opts.queue, "broker connection or channel not recovered in time");
                    ended = Ended::Lost;
                    break;
                }
            }
            // Only take a delivery when a handler slot is free (this loop is the only
            // taker, so the slot is still free once the delivery arrives).
            next = consumer.next(), if permits.available_permits() > 0 => match next {
                Some(Ok(delivery)) => {
                    let permit = permits.clone().try_acquire_owned();
                    let work = handler(delivery);
                    tasks.spawn(async move {
                        work.await;
                        drop(permit);
                    });
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %super::redact(&err), queue = opts.queue, "consumer interrupted; waiting for recovery");
                    match tokio::time::timeout(RECOVERY_GRACE, channel.wait_for_recovery(err)).await {
                        Ok(Ok(())) => tracing::info!(queue = opts.queue, "consumer recovered"),
                        Ok(Err(err)) => {
                            tracing::error!(error = %super::redact(&err), queue = opts.queue, "consumer cannot recover");
                            ended = Ended::Lost;
                            break;
                        }
                        Err(_) => {
                            tracing::error!(queue = opts.queue, "consumer recovery timed out");
                            ended = Ended::Lost;
                            break;
                        }
                    }
                }
                None => {
                    ended = Ended::Lost;
                    break;
                }
            },
        }
    }
    opts.consuming.store(false, Ordering::Relaxed);
    tracing::info!(
        in_flight = tasks.len(),
        queue = opts.queue,
        "no new deliveries; finishing in-flight ones"
    );
    // Bounded: on a channel that is gone the cancel would wait for ever.
    let _ = tokio::time::timeout(
        ACK_TIMEOUT,
        channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
    )
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
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        channel.close(200, "consumer stopped".into()),
    )
    .await;
    Ok(ended)
}
