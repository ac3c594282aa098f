//! Sends in batches: the consume loop hands every delivery to [`Batcher::submit`]; each of
//! a few senders takes the deliveries that are ready, at most `max`, and handles them
//! together (`crate::handle::batch`): one transaction locks their invites, their mails go
//! out at once, and one commit records them. So the mailer sends many invites at once over
//! few database connections. A sender never waits for more: a lone event starts at once,
//! and while every sender is busy the next batch fills by itself.

use crate::handle::{Shared, batch};
use lapin::message::Delivery;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// A delivery and the way to tell the consume loop it is settled.
type Job = (Delivery, oneshot::Sender<()>);

/// The hand-off between the consume loop and the senders.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts `senders` senders taking batches of at most `max`; they stop once every
    /// `Batcher` clone is dropped and the deliveries handed over are settled.
    pub(crate) fn start(
        shared: Arc<Shared>,
        senders: usize,
        max: usize,
    ) -> (Self, tokio::task::JoinSet<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..senders.max(1) {
            set.spawn(sender(shared.clone(), rx.clone(), max.max(1)));
        }
        (Self { tx }, set)
    }

    /// Hands the delivery over and waits until it is settled (the consume loop's bound on
    /// deliveries in hand counts it until then).
    pub(crate) async fn submit(&self, delivery: Delivery) {
        let (done, settled) = oneshot::channel();
        if self.tx.send((delivery, done)).is_ok() {
            let _ = settled.await;
        }
        // Not handed over (the senders are gone): the delivery goes back to the queue when
        // its channel closes.
    }
}

async fn sender(shared: Arc<Shared>, rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>, max: usize) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let (deliveries, done): (Vec<Delivery>, Vec<oneshot::Sender<()>>) =
            jobs.into_iter().unzip();
        batch(&shared, deliveries).await;
        for d in done {
            let _ = d.send(());
        }
    }
}
