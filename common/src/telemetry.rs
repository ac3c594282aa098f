//! Telemetry: one `tracing` subscriber, pretty on a terminal and JSON in production.

use crate::config::LogFormat;
use std::{fs::File, sync::Arc};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber, writing to stdout. Calling it twice is harmless (the
/// second call is ignored).
pub fn init(rust_log: &str, format: LogFormat) {
    let registry = tracing_subscriber::registry().with(filter(rust_log));
    let result = match format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry.with(json_layer()).try_init(),
    };
    let _ = result;
}

/// Installs the global subscriber writing JSON lines to `file` (which the caller opens,
/// e.g. in append mode, so several processes can share one file: each line is one
/// write). For tests that keep every log line to scan it afterwards; services use `init`.
pub fn init_json_file(rust_log: &str, file: File) {
    let _ = tracing_subscriber::registry()
        .with(filter(rust_log))
        .with(json_layer().with_ansi(false).with_writer(Arc::new(file)))
        .try_init();
}

/// The filter for `rust_log`, with PostgreSQL's notices ("relation already exists,
/// skipping") kept out unless asked for: they are noise at info.
fn filter(rust_log: &str) -> EnvFilter {
    let directives = if rust_log.contains("sqlx") {
        rust_log.to_owned()
    } else {
        format!("{rust_log},sqlx=warn")
    };
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"))
}

fn json_layer<S>() -> fmt::Layer<S, fmt::format::JsonFields, fmt::format::Format<fmt::format::Json>>
{
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
}
