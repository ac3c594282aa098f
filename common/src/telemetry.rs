//! Telemetry: one `tracing` subscriber, pretty on a terminal and JSON in production.

use crate::config::LogFormat;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(rust_log: &str, format: LogFormat) {
    // PostgreSQL's notices ("relation already exists, skipping") are noise at info.
    let directives = if rust_log.contains("sqlx") {
        rust_log.to_owned()
    } else {
        format!("{rust_log},sqlx=warn")
    };
    let filter =
        EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    };
    let _ = result;
}
