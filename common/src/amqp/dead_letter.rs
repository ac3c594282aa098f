//! Dead-lettering with a reason: the message goes to the dead-letter exchange with headers
//! naming the error and its original route, then is acked. It goes unchanged but for an
//! integration credential, which is taken out of the envelope (its last four characters
//! stay, in `x-roster-credential-hint`): a dead letter is kept for days and read by
//! operators, and a live credential must not rest there. If that publish
//! fails the message is returned to its queue instead, so nothing is lost.

use super::{
    Publisher, Raw, Topology,
    consume::{ack, requeue},
};
use lapin::{
    message::Delivery,
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
    // An event reached the mailer's queue through the relay's `BCC` route, not its own
    // routing key: a replay goes straight back to that queue, not to every consumer.
    let (exchange, routing_key) = if delivery.exchange.as_str() == topology.events_exchange() {
        (String::new(), topology.mailer_queue())
    } else {
        (
            delivery.exchange.to_string(),
            delivery.routing_key.to_string(),
        )
    };
    for (k, v) in [
        ("x-roster-error", reason.to_owned()),
        ("x-roster-original-exchange", exchange),
        ("x-roster-original-routing-key", routing_key),
        ("x-roster-failed-at", chrono::Utc::now().to_rfc3339()),
    ] {
        headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
    }
    let body = match without_credential(&delivery.data) {
        Some((body, hint)) => {
            headers.insert(
                "x-roster-credential-hint".into(),
                AMQPValue::LongString(LongString::from(hint)),
            );
            std::borrow::Cow::Owned(body)
        }
        None => std::borrow::Cow::Borrowed(delivery.data.as_slice()),
    };
    let props = delivery.properties.clone().with_headers(headers);
    let published = publisher
        .publish_raw(Raw {
            exchange: &topology.dead_letter_exchange(),
            routing_key: delivery.routing_key.as_str(),
            body: &body,
            props,
            mandatory: true,
        })
        .await;
    match published {
        Ok(()) => {
            let _ = ack(delivery).await;
            let prefix = crate::metrics::prefix_of(topology);
            let queue = source_queue(topology, &prefix, delivery);
            metrics::counter!(crate::metrics::DEAD_LETTERED, "queue" => queue, "prefix" => prefix)
                .increment(1);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not dead-letter; requeueing");
            let _ = requeue(delivery).await;
            false
        }
    }
}

/// The body without the envelope's `credential`, and the credential's last four
/// characters; `None` when there is none (or the body is not a JSON object).
fn without_credential(data: &[u8]) -> Option<(Vec<u8>, String)> {
    let mut value: serde_json::Value = serde_json::from_slice(data).ok()?;
    let credential = value.as_object_mut()?.remove("credential")?;
    let hint = crate::secret::hint(credential.as_str().unwrap_or_default());
    Some((serde_json::to_vec(&value).ok()?, hint))
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

#[cfg(test)]
mod tests {
    use super::without_credential;

    #[test]
    fn a_dead_letter_keeps_no_credential() {
        let body =
            br#"{"id":"x","type":"user.create","credential":"rst_int_secretABCD","payload":{}}"#;
        let (stripped, hint) = without_credential(body).expect("a credential to strip");
        let text = String::from_utf8(stripped).expect("utf-8");
        assert!(!text.contains("rst_int_"), "{text}");
        assert!(text.contains(r#""type":"user.create""#), "{text}");
        assert_eq!(hint, "ABCD");
        assert!(without_credential(br#"{"id":"x","payload":{}}"#).is_none());
        assert!(without_credential(b"not json").is_none());
    }
}
