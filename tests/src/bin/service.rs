//! `service ingress|worker|mailer`: one of Roster's services, run as its `main.rs` runs it
//! (settings from the environment, telemetry, `run` until SIGTERM or Ctrl-C, the runtime
//! shut down as `main` returns), for tests that signal a real process
//! (`tests/e2e/broker_gone.rs`). One difference: `TEST_QUEUE_EXPIRES_MS` gives its queues
//! the expiry every test topology has, so a test's queues do not outlive it.

use anyhow::Context;
use common::{Settings, shutdown::signal, telemetry};
use std::{net::SocketAddr, time::Duration};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut settings = Settings::from_env().context("reading settings")?;
    if let Some(ms) = std::env::var("TEST_QUEUE_EXPIRES_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.queue_expires = Some(Duration::from_millis(ms));
    }
    telemetry::init(&settings.rust_log, settings.log_format);
    let health = |default: u16| {
        settings
            .health_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], default)))
    };
    match std::env::args().nth(1).as_deref() {
        Some("ingress") => {
            let app = ingress::Application::build(settings).await?;
            tracing::info!(addr = %app.local_addr(), "ingress listening");
            app.run(signal()).await
        }
        Some("worker") => {
            let addr = health(9090);
            let worker = worker::Worker::connect(&settings).await;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            worker.run(listener, signal()).await
        }
        Some("mailer") => {
            let addr = health(9091);
            let mailer = mailer::Mailer::connect(&settings).await?;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            mailer.run(listener, signal()).await
        }
        other => anyhow::bail!("usage: service ingress|worker|mailer (got {other:?})"),
    }
}
