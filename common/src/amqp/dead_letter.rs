//! Dead-lettering with a reason: the message goes unchanged to the dead-letter exchange
//! with headers naming the error and its original route, then is acked. If that publish
//! fails the message is returned to its queue instead, so nothing is lost.

use super::{Publisher, Topology};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
    types::{AMQPValue, LongString},
};

/// Returns whether the message was dead-lettered (else it went back to its queue).
pub async fn dead_letter(
    publisher: &Publisher,
    topology: &Topology,
    delivery: &Delivery,
    reason: &str,
) -> bool {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    for (k, v) in [
        ("x-roster-error", reason.to_owned()),
        ("x-roster-original-exchange", delivery.exchange.to_string()),
        (
            "x-roster-original-routing-key",
            delivery.routing_key.to_string(),
        ),
        ("x-roster-failed-at", chrono::Utc::now().to_rfc3339()),
    ] {
        headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
    }
    let props = delivery.properties.clone().with_headers(headers);
    let published = publisher
        .publish_raw(
            &topology.dead_letter_exchange(),
            delivery.routing_key.as_str(),
            &delivery.data,
            props,
            true,
        )
        .await;
    match published {
        Ok(()) => {
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let prefix = crate::metrics::prefix_of(topology);
            let queue = source_queue(topology, &prefix, delivery);
            metrics::counter!(crate::metrics::DEAD_LETTERED, "queue" => queue, "prefix" => prefix)
                .increment(1);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not dead-letter; requeueing");
            requeue(delivery).await;
            false
        }
    }
}

/// The `queue` metrics label of the queue a delivery came from: commands arrive through
/// the commands exchange, events through the events exchange (the mailer's queue), and
/// messages back from a retry queue through the default exchange, keyed by their queue.
fn source_queue(topology: &Topology, prefix: &str, delivery: &Delivery) -> String {
    let exchange = delivery.exchange.as_str();
    let queue = if exchange == topology.commands_exchange() {
        topology.commands_queue()
    } else if exchange == topology.events_exchange() {
        topology.mailer_queue()
    } else if exchange.is_empty() {
        delivery.routing_key.to_string()
    } else {
        exchange.to_owned()
    };
    crate::metrics::queue_label(prefix, &queue)
}

/// Returns the message to its queue (the delivery limit bounds how often).
pub async fn requeue(delivery: &Delivery) {
    let _ = delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await;
}
