//! Gathering a batch: an applier takes the deliveries already waiting and, while another
//! batch is under way, what arrives until that batch is done (at most [`GATHER_CAP`]).

use common::amqp::batches::take_ready;
use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};
use tokio::sync::{Notify, mpsc};

/// Longest an applier gathers while another batch is under way: a bound for a batch held
/// up (a lock wait, a database outage), far above a batch's usual few milliseconds.
pub(super) const GATHER_CAP: Duration = Duration::from_millis(20);

/// How many batches are under way, and a wake-up when one is done.
#[derive(Default)]
pub(super) struct Gate {
    pub(super) busy: AtomicUsize,
    pub(super) done: Notify,
}

/// While another batch is under way, adds what arrives until that batch is done, the
/// batch is full or `GATHER_CAP` has passed.
pub(super) async fn gather<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    jobs: &mut Vec<T>,
    max: usize,
    gate: &Gate,
) {
    let cap = tokio::time::sleep(GATHER_CAP);
    tokio::pin!(cap);
    let done = gate.done.notified();
    tokio::pin!(done);
    done.as_mut().enable();
    // Checked after registering for the wake-up, so a batch that ends now is not missed.
    if gate.busy.load(Ordering::Acquire) == 0 {
        return;
    }
    while jobs.len() < max {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    jobs.push(job);
                    take_ready(rx, jobs, max);
                }
                None => return,
            },
            () = &mut done => return,
            () = &mut cap => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::Arc, time::Instant};

    #[tokio::test]
    async fn an_applier_gathers_only_while_another_batch_is_under_way() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = Arc::new(Gate::default());
        // No batch under way: nothing is waited for.
        let mut jobs = vec![0];
        gather(&mut rx, &mut jobs, 64, &gate).await;
        assert_eq!(jobs, [0]);

        // One under way: what arrives joins until it is done.
        gate.busy.store(1, Ordering::Release);
        let feeder = {
            let gate = gate.clone();
            tokio::spawn(async move {
                for i in 1..=3 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    tx.send(i).expect("send");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                gate.busy.store(0, Ordering::Release);
                gate.done.notify_waiters();
                tx
            })
        };
        gather(&mut rx, &mut jobs, 64, &gate).await;
        assert_eq!(jobs, [0, 1, 2, 3], "until the other batch was done");
        let tx = feeder.await.expect("feeder");
        tx.send(4).expect("send");

        // A batch that never ends is waited for at most GATHER_CAP; a full batch not at all.
        gate.busy.store(1, Ordering::Release);
        let started = Instant::now();
        let mut jobs = vec![];
        gather(&mut rx, &mut jobs, 64, &gate).await;
        assert_eq!(jobs, [4]);
        assert!(started.elapsed() >= GATHER_CAP, "{:?}", started.elapsed());
        tx.send(5).expect("send");
        tx.send(6).expect("send");
        let mut jobs = vec![];
        gather(&mut rx, &mut jobs, 1, &gate).await;
        assert_eq!(jobs, [5], "full");
    }
}
