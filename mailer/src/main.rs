//! `mailer` sends invite emails for `user.created` events.

use anyhow::Context;
use common::{Settings, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("reading settings")?;
    telemetry::init(&settings.rust_log, settings.log_format);
    let mailer = mailer::Mailer::connect(&settings).await?;
    let health =
        tokio::net::TcpListener::bind(settings.health_addr.unwrap_or(([0, 0, 0, 0], 9091).into()))
            .await
            .context("binding HEALTH_ADDR")?;
    mailer.run(health, common::shutdown::signal()).await
}
