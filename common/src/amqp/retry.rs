//! Broker-side retries: a message that still fails transiently after in-process retries is
//! republished (confirmed) to the retry queue of its next attempt, where it waits out the
//! delay and returns to its queue; past the last attempt it is dead-lettered with the
//! reason. The original delivery is acked only once the copy is safely with the broker.

use super::{
    Publisher, Raw, Topology,
    consume::{ack, requeue},
    dead_letter::dead_letter,
    topology::RetryTarget,
};
use lapin::{
    message::Delivery,
    types::{AMQPValue, LongString},
};

/// How many broker-side retries a message has had.
pub const ATTEMPTS_HEADER: &str = "x-roster-attempts";
/// The error of the last failed attempt.
pub const LAST_ERROR_HEADER: &str = "x-roster-last-error";

/// The attempt count a delivery carries (0 for a first delivery).
pub fn attempts(delivery: &Delivery) -> u32 {
    let Some(headers) = delivery.properties.headers() else {
        return 0;
    };
    match headers.inner().get(ATTEMPTS_HEADER) {
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// What became of a failed message.
#[derive(Debug, PartialEq, Eq)]
pub enum Retry {
    /// Waiting in the retry queue for its `attempt`-th retry.
    Scheduled { attempt: u32 },
    /// Out of attempts: in the dead-letter queue.
    DeadLettered,
    /// The broker did not take the copy: returned to its queue instead.
    Requeued,
}

pub async fn retry_later(
    publisher: &Publisher,
    topology: &Topology,
    target: RetryTarget,
    delivery: &Delivery,
    reason: &str,
) -> Retry {
    let done = attempts(delivery);
    if usize::try_from(done).unwrap_or(usize::MAX) >= topology.retry_attempts() {
        let why = format!("gave up after {done} retries: {reason}");
        return if dead_letter(publisher, topology, delivery, &why).await {
            Retry::DeadLettered
        } else {
            Retry::Requeued
        };
    }
    let attempt = done + 1;
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ATTEMPTS_HEADER.into(),
        AMQPValue::LongInt(i32::try_from(attempt).unwrap_or(i32::MAX)),
    );
    headers.insert(
        LAST_ERROR_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    let props = delivery.properties.clone().with_headers(headers);
    let queue = topology.retry_queue(target, attempt as usize);
    match publisher
        .publish_raw(Raw {
            exchange: "",
            routing_key: &queue,
            body: &delivery.data,
            props,
            mandatory: true,
        })
        .await
    {
        Ok(()) => {
            let _ = ack(delivery).await;
            let prefix = crate::metrics::prefix_of(topology);
            let target_queue = crate::metrics::queue_label(&prefix, &topology.target_queue(target));
            metrics::counter!(crate::metrics::RETRIES, "queue" => target_queue, "prefix" => prefix)
                .increment(1);
            tracing::warn!(attempt, queue = %queue, error = reason, "scheduled a retry");
            Retry::Scheduled { attempt }
        }
        Err(e) => {
            tracing::error!(error = %e, "could not schedule a retry; requeueing");
            let _ = requeue(delivery).await;
            Retry::Requeued
        }
    }
}
