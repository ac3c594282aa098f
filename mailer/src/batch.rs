//! Sends in batches: the consume loop hands every delivery over
//! (`common::amqp::batches`); each of a few senders takes the deliveries that are ready,
//! at most `max`, and handles them together (`crate::handle::batch`): one transaction
//! locks their invites, their mails go out at once, and one commit records them. So the
//! mailer sends many invites at once over few database connections. A sender never waits
//! for more: a lone event starts at once, and while every sender is busy the next batch
//! fills by itself.

use crate::handle::{Shared, batch, retry};
use common::amqp::batches::{Batches, Takers, hand_off};
use std::sync::Arc;

/// Starts `senders` senders taking batches of at most `max`; they stop once every
/// `Batches` clone is dropped and the deliveries handed over are settled.
pub(crate) fn start(
    shared: Arc<Shared>,
    senders: usize,
    max: usize,
) -> (Batches, tokio::task::JoinSet<()>) {
    let (batches, takers) = hand_off();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..senders.max(1) {
        set.spawn(sender(shared.clone(), takers.clone(), max.max(1)));
    }
    (batches, set)
}

async fn sender(shared: Arc<Shared>, takers: Arc<Takers>, max: usize) {
    // Each batch's events that failed transiently are tried again in a task of their own,
    // so a greylisting recipient's pauses (seconds) do not hold the sender. Their number
    // is bounded by the consume loop: an event holds its slot until it is settled. Once
    // the hand-off ends they are waited for (or aborted with the sender, their deliveries
    // then returned to the queue).
    let mut retries = tokio::task::JoinSet::new();
    while let Some((jobs, waiting)) = takers.take(max).await {
        drop(waiting);
        while retries.try_join_next().is_some() {}
        let again = batch(&shared, jobs).await;
        if !again.is_empty() {
            let shared = shared.clone();
            retries.spawn(async move { retry(&shared, again).await });
        }
    }
    while retries.join_next().await.is_some() {}
}
