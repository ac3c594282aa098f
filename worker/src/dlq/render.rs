//! What the operator sees: `list`'s aligned table, `show`'s full message (a credential
//! never printed), `replay`'s report, and header values as text.

use super::{
    broker::{Listing, ReplayReport, Shown},
    headers::as_integer,
    message::Route,
};
use chrono::{DateTime, SecondsFormat, Utc};
use lapin::{BasicProperties, types::AMQPValue};
use serde_json::Value;
use std::io::Write;

/// `list`: a header and one aligned line per message.
pub fn write_listing(out: &mut impl Write, listing: &Listing) -> std::io::Result<()> {
    if listing.messages.is_empty() {
        return writeln!(out, "{} is empty", listing.queue);
    }
    let dash = || "-".to_owned();
    let rows: Vec<[String; 6]> = listing
        .messages
        .iter()
        .map(|m| {
            [
                m.id.clone(),
                m.kind.clone().unwrap_or_else(dash),
                m.org_id.clone().unwrap_or_else(dash),
                m.failed_at.as_ref().map_or_else(dash, to_second),
                m.route.as_ref().map_or_else(dash, Route::to_string),
                m.reason.clone(),
            ]
        })
        .collect();
    let header = ["ID", "TYPE", "ORG", "FAILED AT", "ROUTE", "REASON"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            let pad = w - cell.chars().count();
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 2));
        }
        line.push_str(&row[5]);
        writeln!(out, "{line}")?;
    }
    let shown = listing.messages.len();
    if (shown as u64) < u64::from(listing.total) {
        writeln!(
            out,
            "{shown} of {} dead-lettered message(s) in {} (oldest first; --limit N for more)",
            listing.total, listing.queue
        )
    } else {
        writeln!(
            out,
            "{shown} dead-lettered message(s) in {} (oldest first)",
            listing.queue
        )
    }
}

/// `show`: the summary, every property and header, and the body.
pub fn write_shown(out: &mut impl Write, shown: &Shown) -> std::io::Result<()> {
    let s = &shown.summary;
    let dash = || "-".to_owned();
    writeln!(out, "message    {}", s.id)?;
    if shown.copies > 1 {
        writeln!(
            out,
            "copies     {} in the queue carry this id",
            shown.copies
        )?;
    }
    writeln!(out, "type       {}", s.kind.clone().unwrap_or_else(dash))?;
    writeln!(out, "org        {}", s.org_id.clone().unwrap_or_else(dash))?;
    writeln!(
        out,
        "failed at  {}",
        s.failed_at.as_ref().map_or_else(dash, to_second)
    )?;
    writeln!(
        out,
        "route      {}",
        s.route.as_ref().map_or_else(dash, Route::to_string)
    )?;
    writeln!(out, "reason     {}", s.reason)?;
    writeln!(out, "properties:")?;
    for (name, value) in properties(&shown.properties) {
        writeln!(out, "  {name}: {value}")?;
    }
    writeln!(out, "headers:")?;
    if let Some(headers) = shown.properties.headers() {
        for (name, value) in headers {
            writeln!(out, "  {name}: {}", render_value(value))?;
        }
    }
    let body = &shown.body;
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            redact_credential(&mut json);
            writeln!(out, "body ({} bytes, JSON):", body.len())?;
            let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
            writeln!(out, "{pretty}")
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => writeln!(out, "body ({} bytes, not JSON):\n{text}", body.len()),
            Err(_) => writeln!(
                out,
                "body ({} bytes, binary, hex):\n{}",
                body.len(),
                hex(body)
            ),
        },
    }
}

/// A credential is never printed (the worker takes it out of what it dead-letters; a
/// message the broker dead-lettered itself may still carry one).
fn redact_credential(envelope: &mut Value) {
    if let Some(c) = envelope.get_mut("credential").filter(|c| !c.is_null()) {
        *c = Value::String("[redacted]".into());
    }
}

fn properties(p: &BasicProperties) -> Vec<(&'static str, String)> {
    let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
    [
        ("message_id", s(p.message_id())),
        ("type", s(p.kind())),
        ("content_type", s(p.content_type())),
        ("content_encoding", s(p.content_encoding())),
        ("delivery_mode", p.delivery_mode().map(|m| m.to_string())),
        ("priority", p.priority().map(|m| m.to_string())),
        ("correlation_id", s(p.correlation_id())),
        ("reply_to", s(p.reply_to())),
        ("expiration", s(p.expiration())),
        ("timestamp", p.timestamp().map(timestamp)),
        ("user_id", s(p.user_id())),
        ("app_id", s(p.app_id())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

/// `replay`: how many, and what was left behind.
pub fn write_replay(out: &mut impl Write, report: &ReplayReport) -> std::io::Result<()> {
    for (id, route) in &report.replayed {
        writeln!(out, "replayed {id} → {route}")?;
    }
    for (id, why) in &report.skipped {
        writeln!(out, "skipped  {id}: {why} (left in the dead-letter queue)")?;
    }
    writeln!(
        out,
        "{} message(s) replayed, {} skipped",
        report.replayed.len(),
        report.skipped.len()
    )
}

/// A time as `list` and `show` print it: RFC 3339, to the second.
pub(super) fn to_second(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn timestamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map_or_else(
            || secs.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// A header value as an operator reads it.
pub fn render_value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::DecimalValue(d) => format!("{}e-{}", d.value, d.scale),
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Timestamp(t) => timestamp(*t),
        AMQPValue::FieldArray(a) => format!(
            "[{}]",
            a.as_slice()
                .iter()
                .map(render_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AMQPValue::FieldTable(t) => format!(
            "{{{}}}",
            t.inner()
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AMQPValue::ByteArray(b) => hex(b.as_slice()),
        AMQPValue::Void => "(void)".into(),
        other => as_integer(other).map_or_else(|| format!("{other:?}"), |n| n.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::message::DeadLetter;

    #[test]
    fn show_never_prints_a_credential() {
        let mut env = serde_json::json!({"id": "e-1", "credential": "rst_int_sesame"});
        redact_credential(&mut env);
        assert_eq!(env["credential"], "[redacted]");
        let mut none = serde_json::json!({"id": "e-2"});
        redact_credential(&mut none);
        assert!(none.get("credential").is_none());
    }

    #[test]
    fn a_listing_aligns_its_columns() {
        let dl = |id: &str, reason: &str| DeadLetter {
            id: id.into(),
            kind: Some("user.create".into()),
            org_id: None,
            failed_at: DateTime::from_timestamp(1_772_360_430, 0),
            reason: reason.into(),
            route: Some(Route {
                exchange: "roster.commands".into(),
                routing_key: "user.create".into(),
            }),
        };
        let listing = Listing {
            queue: "roster.dead-letter".into(),
            total: 3,
            messages: vec![dl("a", "first"), dl("longer-id", "second")],
        };
        let mut out = Vec::new();
        write_listing(&mut out, &listing).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let at = |line: &str| line.find("user.create");
        assert_eq!(at(lines[1]), at(lines[2]), "{text}");
        assert!(lines[3].starts_with("2 of 3 dead-lettered"), "{text}");
    }
}
