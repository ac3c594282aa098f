//! `worker` applies commands; `worker migrate` applies database migrations and exits.

use anyhow::Context;
use common::{Settings, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("reading settings")?;
    telemetry::init(&settings.rust_log, settings.log_format);
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => {
            worker::migrate(&settings).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        None => {
            worker::migrate(&settings).await?;
            let worker = worker::Worker::connect(&settings).await;
            let health = tokio::net::TcpListener::bind(
                settings.health_addr.unwrap_or(([0, 0, 0, 0], 9090).into()),
            )
            .await
            .context("binding HEALTH_ADDR")?;
            worker.run(health, common::shutdown::signal()).await
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; usage: worker [migrate]"),
    }
}
