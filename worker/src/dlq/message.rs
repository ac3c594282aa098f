//! What one dead-lettered message says about itself, read from its properties, headers
//! and body (pure; no broker): its id, route, failure time and reason, and the properties
//! a replay publishes it with.

use super::headers::{as_integer, as_string, deaths, header_str, table_str};
use chrono::{DateTime, Utc};
use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};
use serde_json::Value;
use std::fmt;

/// Why the worker (or mailer) dead-lettered a message (`common::amqp::dead_letter`).
pub const ERROR_HEADER: &str = "x-roster-error";
/// The exchange it was delivered from when it failed (`""` after a broker-side retry).
pub const ORIGINAL_EXCHANGE_HEADER: &str = "x-roster-original-exchange";
/// Its routing key then.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-roster-original-routing-key";
/// When the worker dead-lettered it (RFC 3339).
pub const FAILED_AT_HEADER: &str = "x-roster-failed-at";
/// What RabbitMQ adds when it dead-letters a message itself (e.g. the delivery limit).
pub const DEATH_HEADER: &str = "x-death";

/// Where a message was going before it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub exchange: String,
    pub routing_key: String,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exchange = if self.exchange.is_empty() {
            "(default)"
        } else {
            &self.exchange
        };
        write!(f, "{exchange} → {}", self.routing_key)
    }
}

/// The summary of one dead-lettered message: one line of `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// AMQP `message_id`, else the envelope's `id`, else `body-<hash>`.
    pub id: String,
    /// AMQP `type`, else the envelope's `type`.
    pub kind: Option<String>,
    pub org_id: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub route: Option<Route>,
}

impl DeadLetter {
    pub fn of(props: &BasicProperties, body: &[u8]) -> Self {
        let empty = FieldTable::default();
        let headers = props.headers().as_ref().unwrap_or(&empty);
        let envelope = serde_json::from_slice::<Value>(body).ok();
        let field = |name: &str| {
            envelope
                .as_ref()
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: message_id(props.message_id().as_ref().map(|s| s.as_str()), body),
            kind: props
                .kind()
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .or_else(|| field("type")),
            org_id: field("org_id"),
            failed_at: failed_at(headers),
            reason: reason(headers),
            route: original_route(headers),
        }
    }
}

/// The id an operator names a message by: the AMQP `message_id`, else the envelope's `id`,
/// else a short, stable hash of the body.
pub fn message_id(amqp_message_id: Option<&str>, body: &[u8]) -> String {
    if let Some(id) = amqp_message_id.filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    let envelope_id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
    envelope_id
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
        .unwrap_or_else(|| format!("body-{:016x}", fnv1a(body)))
}

/// FNV-1a (64 bit): stable across builds and Rust versions, unlike `DefaultHasher`. An
/// identifier for the operator to type, not a security property.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why it failed: `x-roster-error`, else a summary of RabbitMQ's `x-death`.
pub fn reason(headers: &FieldTable) -> String {
    if let Some(error) = header_str(headers, ERROR_HEADER) {
        return one_line(&error);
    }
    let deaths: Vec<String> = deaths(headers)
        .iter()
        .map(|death| {
            let reason = table_str(death, "reason").unwrap_or_else(|| "unknown".into());
            let count = death.inner().get("count").and_then(as_integer).unwrap_or(1);
            match table_str(death, "queue") {
                Some(queue) => format!("{reason} ×{count} (queue {queue})"),
                None => format!("{reason} ×{count}"),
            }
        })
        .collect();
    if deaths.is_empty() {
        "unknown (neither x-roster-error nor x-death is set)".into()
    } else {
        format!("x-death: {}", deaths.join("; "))
    }
}

/// Where it was going: `x-roster-original-*`, else the first `x-death` entry's exchange and
/// first routing key.
pub fn original_route(headers: &FieldTable) -> Option<Route> {
    if let (Some(exchange), Some(routing_key)) = (
        header_str(headers, ORIGINAL_EXCHANGE_HEADER),
        header_str(headers, ORIGINAL_ROUTING_KEY_HEADER),
    ) {
        return Some(Route {
            exchange,
            routing_key,
        });
    }
    let first = deaths(headers).into_iter().next()?;
    let exchange = table_str(first, "exchange")?;
    let routing_key = match first.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(as_string)?,
        _ => return None,
    };
    Some(Route {
        exchange,
        routing_key,
    })
}

/// When it failed: `x-roster-failed-at`, else the first `x-death` entry's `time`.
pub fn failed_at(headers: &FieldTable) -> Option<DateTime<Utc>> {
    if let Some(at) = header_str(headers, FAILED_AT_HEADER) {
        return DateTime::parse_from_rfc3339(&at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
    }
    match deaths(headers).first()?.inner().get("time")? {
        AMQPValue::Timestamp(secs) => DateTime::from_timestamp(i64::try_from(*secs).ok()?, 0),
        _ => None,
    }
}

/// The properties a replayed message is published with: the original ones, minus what
/// dead-lettering and the dead-letter queue added.
pub fn replay_properties(props: &BasicProperties) -> BasicProperties {
    let Some(headers) = props.headers() else {
        return props.clone();
    };
    let kept: std::collections::BTreeMap<_, _> = headers
        .inner()
        .iter()
        .filter(|(k, _)| !is_dead_letter_header(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    props.clone().with_headers(FieldTable::from(kept))
}

fn is_dead_letter_header(name: &str) -> bool {
    name.starts_with("x-roster-")
        || name == DEATH_HEADER
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
        || name == "x-delivery-count"
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::render::to_second;
    use lapin::types::{FieldArray, LongString};

    fn ls(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    /// What RabbitMQ 3.10 puts on a message a quorum queue dead-letters at its delivery limit.
    fn x_death() -> FieldTable {
        let death = table(&[
            ("count", AMQPValue::LongLongInt(1)),
            ("reason", ls("delivery_limit")),
            ("queue", ls("roster.commands")),
            ("time", AMQPValue::Timestamp(1_700_000_000)),
            ("exchange", ls("roster.commands")),
            (
                "routing-keys",
                AMQPValue::FieldArray(FieldArray::from(vec![ls("user.create")])),
            ),
        ]);
        table(&[
            (
                DEATH_HEADER,
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
            ),
            ("x-first-death-reason", ls("delivery_limit")),
            ("x-correlation-id", ls("corr-1")),
        ])
    }

    fn roster_headers() -> FieldTable {
        table(&[
            (
                ERROR_HEADER,
                ls("undecodable message: unknown command type\n\"user.explode\""),
            ),
            (ORIGINAL_EXCHANGE_HEADER, ls("roster.commands")),
            (ORIGINAL_ROUTING_KEY_HEADER, ls("user.explode")),
            (FAILED_AT_HEADER, ls("2026-03-01T10:20:30.123456789+00:00")),
            ("x-correlation-id", ls("corr-2")),
            ("x-delivery-count", AMQPValue::LongInt(2)),
        ])
    }

    #[test]
    fn the_reason_is_the_workers_error_on_one_line() {
        assert_eq!(
            reason(&roster_headers()),
            "undecodable message: unknown command type \"user.explode\""
        );
    }

    #[test]
    fn without_the_workers_error_the_reason_summarises_x_death() {
        assert_eq!(
            reason(&x_death()),
            "x-death: delivery_limit ×1 (queue roster.commands)"
        );
        assert!(reason(&FieldTable::default()).starts_with("unknown"));
    }

    #[test]
    fn the_route_comes_from_the_workers_headers_else_from_x_death() {
        let expected = |key: &str| {
            Some(Route {
                exchange: "roster.commands".into(),
                routing_key: key.into(),
            })
        };
        assert_eq!(original_route(&roster_headers()), expected("user.explode"));
        assert_eq!(original_route(&x_death()), expected("user.create"));
        assert_eq!(original_route(&FieldTable::default()), None);
        // Half of the worker's pair is not a route.
        let half = table(&[(ORIGINAL_EXCHANGE_HEADER, ls("roster.commands"))]);
        assert_eq!(original_route(&half), None);
    }

    #[test]
    fn the_default_exchange_is_a_route_too() {
        let h = table(&[
            (ORIGINAL_EXCHANGE_HEADER, ls("")),
            (ORIGINAL_ROUTING_KEY_HEADER, ls("roster.commands")),
        ]);
        let route = original_route(&h).expect("a route");
        assert_eq!(route.exchange, "");
        assert_eq!(route.to_string(), "(default) → roster.commands");
    }

    #[test]
    fn failure_time_is_shown_to_the_second() {
        assert_eq!(
            failed_at(&roster_headers())
                .as_ref()
                .map(to_second)
                .as_deref(),
            Some("2026-03-01T10:20:30Z")
        );
        assert_eq!(
            failed_at(&x_death()).as_ref().map(to_second).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(failed_at(&FieldTable::default()), None);
    }

    #[test]
    fn the_id_is_the_message_id_else_the_envelopes_else_a_stable_hash() {
        let envelope = br#"{"id":"0192f0c4-aaaa","type":"user.create"}"#;
        assert_eq!(message_id(Some("m-1"), envelope), "m-1");
        assert_eq!(message_id(None, envelope), "0192f0c4-aaaa");
        assert_eq!(message_id(Some(""), envelope), "0192f0c4-aaaa");
        let junk = message_id(None, b"not json");
        assert_eq!(junk, message_id(None, b"not json"), "stable");
        assert_ne!(junk, message_id(None, b"not json!"));
        assert!(junk.starts_with("body-") && junk.len() == "body-".len() + 16);
        // FNV-1a's published test vector, so the ids never change between builds.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_summary_falls_back_to_the_envelope() {
        let body = br#"{"id":"e-1","type":"user.explode","org_id":"o-1","schema_version":1}"#;
        let props = BasicProperties::default().with_headers(roster_headers());
        let dl = DeadLetter::of(&props, body);
        assert_eq!(dl.id, "e-1");
        assert_eq!(dl.kind.as_deref(), Some("user.explode"));
        assert_eq!(dl.org_id.as_deref(), Some("o-1"));
        let typed = props.with_type("user.create".into());
        assert_eq!(
            DeadLetter::of(&typed, body).kind.as_deref(),
            Some("user.create")
        );
    }

    #[test]
    fn replay_drops_only_what_dead_lettering_added() {
        let mut h = roster_headers();
        for (k, v) in x_death().inner() {
            h.insert(k.clone(), v.clone());
        }
        let props = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_reply_to("r".into())
            .with_headers(h);
        let replayed = replay_properties(&props);
        let kept: Vec<&str> = replayed
            .headers()
            .as_ref()
            .expect("headers")
            .inner()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(kept, ["x-correlation-id"]);
        assert_eq!(replayed.message_id(), props.message_id());
        assert_eq!(replayed.reply_to(), props.reply_to());
    }
}
