//! `ingress` serves SCIM, the admin API and health on `INGRESS_ADDR`.

use anyhow::Context;
use common::{Settings, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("reading settings")?;
    telemetry::init(&settings.rust_log, settings.log_format);
    let app = ingress::Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr(), "ingress listening");
    app.run(common::shutdown::signal()).await
}
