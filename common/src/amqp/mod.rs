//! AMQP: connecting (retrying, with lapin's automatic recovery), the topology every
//! service declares, confirmed publishing, and the request/reply client the ingress uses.

pub mod consume;
pub mod dead_letter;
pub mod link;
pub mod publish;
pub mod retry;
pub mod rpc;
pub mod topology;

pub use publish::{PublishError, Publisher};
pub use topology::Topology;

use backon::{ExponentialBuilder, Retryable};
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;

/// The header that carries the request's correlation id on every message.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// How long one connection attempt (TCP and AMQP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects to the broker, retrying with backoff until it answers. Once connected, lapin
/// reconnects and replays the declared topology and consumers by itself.
pub async fn connect(url: &str, name: &str) -> Connection {
    let props = || {
        ConnectionProperties::default()
            .with_connection_name(name.into())
            .enable_auto_recover()
            .with_backoff(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter()
                    .without_max_times(),
            )
    };
    // Bounded: a broker (or a load balancer in front of it) that takes the TCP connection
    // and never answers the handshake must not hold the service for ever.
    let attempt = || async {
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props()))
            .await
            .map_err(|_| {
                lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no AMQP handshake within {CONNECT_TIMEOUT:?}"),
                ))
            })?
    };
    let retry = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .without_max_times(),
        )
        .notify(|err: &lapin::Error, after: Duration| {
            tracing::warn!(error = %err, retry_in_ms = after.as_millis() as u64, "cannot reach RabbitMQ");
        });
    match retry.await {
        Ok(conn) => conn,
        // `without_max_times` never gives up, so this arm is unreachable in practice.
        Err(e) => panic!("RabbitMQ connection retries ended: {e}"),
    }
}

/// Whether the connection is usable right now (for `/readyz`).
pub fn is_connected(conn: &Connection) -> bool {
    conn.status().connected()
}
