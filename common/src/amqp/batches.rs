//! Deliveries handed from a consume loop to the tasks that handle them in batches (the
//! worker's appliers, the mailer's senders): [`Batches::submit`] hands one over and waits
//! until it is settled, so the consume loop's bound on deliveries in hand counts it until
//! then; a taker waits for one and takes the others already waiting with it.

use super::{
    Topology,
    consume::{ConsumeOptions, Ended, consume_until},
};
use lapin::{Connection, message::Delivery};
use std::{pin::Pin, sync::Arc};
use tokio::sync::{Mutex, MutexGuard, mpsc, oneshot};

/// A delivery and the way to tell the consume loop it is settled.
pub type Job = (Delivery, oneshot::Sender<()>);

/// The deliveries waiting to be taken, held by one taker at a time.
pub type Waiting<'a> = MutexGuard<'a, mpsc::UnboundedReceiver<Job>>;

/// The consume loop's end of the hand-off.
#[derive(Clone)]
pub struct Batches {
    tx: mpsc::UnboundedSender<Job>,
}

/// The takers' end.
pub struct Takers {
    rx: Mutex<mpsc::UnboundedReceiver<Job>>,
}

/// A hand-off; the takers see the end once every `Batches` clone is dropped.
pub fn hand_off() -> (Batches, Arc<Takers>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Batches { tx }, Arc::new(Takers { rx: Mutex::new(rx) }))
}

impl Batches {
    /// Hands the delivery over and waits until it is settled.
    pub async fn submit(&self, delivery: Delivery) {
        let (done, settled) = oneshot::channel();
        if self.tx.send((delivery, done)).is_ok() {
            let _ = settled.await;
        }
        // Not handed over (the takers are gone): the delivery goes back to the queue when
        // its channel closes.
    }
}

/// Consumes as [`consume_until`] does, handing every delivery to `batches`. Once the
/// consume loop has drained (or given up on) the deliveries in hand, the takers
/// (`takers`, named `what` in a log) finish what they hold and stop, or are aborted
/// (`crate::shutdown::join_or_abort`).
pub async fn consume_in_batches<S>(
    conn: &Connection,
    topology: &Topology,
    opts: ConsumeOptions<'_>,
    shutdown: Pin<&mut S>,
    (batches, takers): (Batches, tokio::task::JoinSet<()>),
    what: &str,
) -> lapin::Result<Ended>
where
    S: Future<Output = ()> + ?Sized,
{
    let ended = consume_until(conn, topology, opts, shutdown, |delivery| {
        let batches = batches.clone();
        async move { batches.submit(delivery).await }
    })
    .await;
    drop(batches);
    crate::shutdown::join_or_abort(takers, what).await;
    ended
}

impl Takers {
    /// Waits for a delivery and takes it with the ones already waiting, at most `max` in
    /// all; `None` once the hand-off has ended. The taker keeps the waiting deliveries to
    /// itself while it holds them (to gather more, as the worker does), so takers take in
    /// turn.
    pub async fn take(&self, max: usize) -> Option<(Vec<Job>, Waiting<'_>)> {
        let mut rx = self.rx.lock().await;
        let first = rx.recv().await?;
        let mut jobs = vec![first];
        take_ready(&mut rx, &mut jobs, max);
        Some((jobs, rx))
    }
}

/// Adds the deliveries already waiting, up to `max` in all.
pub fn take_ready<T>(rx: &mut mpsc::UnboundedReceiver<T>, jobs: &mut Vec<T>, max: usize) {
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Splits taken jobs into their deliveries and what tells the consume loop they are
/// settled ([`Settled::all`], once they are).
pub fn unzip(jobs: Vec<Job>) -> (Vec<Delivery>, Settled) {
    let (deliveries, done) = jobs.into_iter().unzip();
    (deliveries, Settled(done))
}

/// Tells the consume loop that a batch's deliveries are settled.
pub struct Settled(Vec<oneshot::Sender<()>>);

impl Settled {
    pub fn all(self) {
        for d in self.0 {
            let _ = d.send(());
        }
    }
}
