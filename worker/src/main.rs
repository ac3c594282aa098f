//! `worker` applies commands; `worker migrate` applies database migrations and exits;
//! `worker dlq list|show|replay|purge` is the operator's dead-letter tooling; `worker gc
//! [--dry-run]` prunes expired rows and finishes erasures now (or says what would go).

use anyhow::Context;
use common::{Settings, amqp::Topology, telemetry};

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
        Some("dlq") => {
            let cmd = worker::dlq::DlqCommand::parse_or_exit(std::env::args().skip(2));
            let conn = worker::dlq::connect(settings.amqp_url.expose()).await?;
            let topology = Topology::from_settings(&settings);
            let result =
                worker::dlq::run(&conn, &topology, &cmd, &mut std::io::stdout().lock()).await;
            let _ = conn.close(200, "dlq done".into()).await;
            Ok(result?)
        }
        Some("gc") => {
            let dry_run = match std::env::args().nth(2).as_deref() {
                None => false,
                Some("--dry-run") => true,
                Some(other) => {
                    anyhow::bail!("unknown argument {other:?}; usage: worker gc [--dry-run]")
                }
            };
            worker::gc::cli_from_settings(&settings, dry_run, &mut std::io::stdout().lock()).await
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
        Some(other) => anyhow::bail!(
            "unknown command {other:?}; usage: worker [migrate | dlq list|show|replay|purge | gc [--dry-run]]"
        ),
    }
}
