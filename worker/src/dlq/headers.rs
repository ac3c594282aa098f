//! Reading AMQP field tables as the dead-letter headers need them: strings, integers,
//! and RabbitMQ's `x-death` entries.

use lapin::types::{AMQPValue, FieldTable};

/// RabbitMQ's `x-death` entries, newest first.
pub(super) fn deaths(headers: &FieldTable) -> Vec<&FieldTable> {
    match headers.inner().get(super::DEATH_HEADER) {
        Some(AMQPValue::FieldArray(entries)) => entries
            .as_slice()
            .iter()
            .filter_map(|e| match e {
                AMQPValue::FieldTable(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A header's value, when it is a string.
pub(super) fn header_str(headers: &FieldTable, name: &str) -> Option<String> {
    headers.inner().get(name).and_then(as_string)
}

/// A field of an `x-death` entry, when it is a string.
pub(super) fn table_str(table: &FieldTable, name: &str) -> Option<String> {
    table.inner().get(name).and_then(as_string)
}

/// A long or short string as text.
pub(super) fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Any of AMQP's integer types as an `i64`.
pub(super) fn as_integer(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}
