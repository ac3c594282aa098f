//! Reading one setting's value: keys, numbers, header names, delays, windows, and the
//! `.env` file.

use super::ConfigError;
use std::{collections::HashMap, time::Duration};

/// The bytes of a `ROSTER_SESSION_KEY` (standard or URL-safe base64, at least 64 bytes).
pub fn session_key(value: &str) -> Result<Vec<u8>, ConfigError> {
    key_bytes("ROSTER_SESSION_KEY", value, 64)
}

/// The bytes of a `ROSTER_INVITE_KEY` (standard or URL-safe base64, at least 32 bytes).
pub fn invite_key(value: &str) -> Result<Vec<u8>, ConfigError> {
    key_bytes("ROSTER_INVITE_KEY", value, 32)
}

pub(super) fn key_bytes(
    name: &'static str,
    value: &str,
    min: usize,
) -> Result<Vec<u8>, ConfigError> {
    use base64::{Engine, engine::general_purpose};
    let err = |reason: &str| ConfigError {
        name,
        reason: reason.to_owned(),
    };
    let value = value.trim();
    let bytes = general_purpose::STANDARD
        .decode(value)
        .or_else(|_| general_purpose::URL_SAFE.decode(value))
        .or_else(|_| general_purpose::STANDARD_NO_PAD.decode(value))
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(value))
        .map_err(|_| err("not base64"))?;
    if bytes.len() < min {
        return Err(err(&format!(
            "must decode to at least {min} bytes (e.g. `openssl rand -base64 {min}`)"
        )));
    }
    Ok(bytes)
}

pub(super) fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError {
        name,
        reason: e.to_string(),
    })
}

/// An HTTP header name (letters, digits, `-`, `_`), lowercased.
pub(super) fn header_name(name: &'static str, value: String) -> Result<String, ConfigError> {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(ConfigError {
            name,
            reason: format!("{value:?} is not a header name"),
        })
    }
}

pub(super) fn parse_delays(value: &str) -> Result<Vec<Duration>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| parse::<u64>("RETRY_DELAYS_MS", v).map(Duration::from_millis))
        .collect()
}

/// A positive duration with a unit: `7d`, `36h`, `90m` or `600s`.
pub(super) fn parse_ttl(value: &str) -> Result<Duration, ConfigError> {
    with_unit("INVITE_TTL", value, "7d", 366, "a year")
}

/// A retention window or interval: `400d`, `36h`, `90m` or `600s`, at least a second
/// and at most 100 years.
pub(super) fn parse_window(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    with_unit(name, value, "400d", 36_500, "100 years")
}

/// A duration `<number><d|h|m|s>` of at least a second and at most `max_days`
/// (`max_text` in the error); `days_example` shows the `d` form in the error.
fn with_unit(
    name: &'static str,
    value: &str,
    days_example: &str,
    max_days: u64,
    max_text: &str,
) -> Result<Duration, ConfigError> {
    let err = || ConfigError {
        name,
        reason: format!("{value:?} is not a duration like {days_example}, 36h, 90m or 600s"),
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit.trim() {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(err()),
    };
    match number.checked_mul(unit_secs) {
        Some(secs) if secs > 0 && secs <= max_days * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(ConfigError {
            name,
            reason: format!("{value:?} must be more than 0 and at most {max_text}"),
        }),
    }
}

/// `KEY=VALUE` lines; `#` comments, blank lines and optional quotes. A missing file is empty.
pub(super) fn read_dotenv(path: &str) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line
                .strip_prefix("export ")
                .unwrap_or(line)
                .split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}
