//! AMQP: connecting (retrying, with lapin's automatic recovery), the topology every
//! service declares, confirmed publishing, and the request/reply client the ingress uses.

pub mod batches;
pub mod consume;
pub mod dead_letter;
pub mod link;
pub mod publish;
pub mod retry;
pub mod rpc;
pub mod topology;

pub use publish::{PublishError, Publisher, Raw};
pub use topology::Topology;

use backon::Retryable;
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;

/// The header that carries the request's correlation id on every message.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// How long one connection attempt (TCP and AMQP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How often lapin's own recovery tries to reconnect a dropped connection before it gives
/// up (about 25 s with its backoff). By then the connection's holder has replaced it
/// (`link::RECOVERY_GRACE`), possibly on another node; a recovery that never ended would
/// keep a thread trying a node that is gone for the life of the process.
const RECOVERY_ATTEMPTS: usize = 10;

/// The broker nodes `AMQP_URL` names: one URL, or several separated by commas (the nodes
/// of one cluster), whitespace around each ignored.
pub fn nodes(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Checks every node of `AMQP_URL` and returns how many there are. The error names a bad
/// node by its position and never repeats it: it holds a password.
pub fn check_nodes(list: &str) -> Result<usize, String> {
    let nodes = nodes(list);
    if nodes.is_empty() {
        return Err("no broker URL".into());
    }
    for (i, node) in nodes.iter().enumerate() {
        if let Err(e) = node.parse::<lapin::uri::AMQPUri>() {
            // "Invalid URL: '…'" repeats the input; the other reasons are fixed texts.
            let why = if e.starts_with("Invalid URL") {
                "not a URL with a host".to_owned()
            } else {
                crate::secret::redact_urls(&e)
            };
            return Err(format!(
                "node {} of {} is not an AMQP URL like amqp://user:password@host:5672/%2f ({why})",
                i + 1,
                nodes.len()
            ));
        }
    }
    Ok(nodes.len())
}

/// A broker error as text, without the credentials of any URL it repeats (a refused
/// virtual host is repeated by the broker).
pub fn redact(err: &lapin::Error) -> String {
    crate::secret::redact_urls(&err.to_string())
}

/// Connects to the broker (the first node of `list` that answers), retrying with backoff
/// until one does. Once connected, lapin reconnects to that node and replays the declared
/// topology and consumers by itself.
pub async fn connect(list: &str, name: &str) -> Connection {
    connect_from(list, name, 0).await.0
}

/// Connects to the first node of `list` that answers, trying them in turn from `first`
/// (a failed round of every node waits with backoff before the next); returns the
/// connection and the node's index.
pub async fn connect_from(list: &str, name: &str, first: usize) -> (Connection, usize) {
    let nodes = nodes(list);
    let count = nodes.len().max(1);
    let props = || {
        ConnectionProperties::default()
            .with_connection_name(name.into())
            .enable_auto_recover()
            .with_backoff(crate::retry::broker_recovery(RECOVERY_ATTEMPTS))
    };
    // Bounded: a broker (or a load balancer in front of it) that takes the TCP connection
    // and never answers the handshake must not hold the service for ever.
    let one = |node: &str| {
        let node = node.to_owned();
        async move {
            reachable(&node).await?;
            let connecting = Connection::connect_with_runtime(&node, props(), io_runtime());
            tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                .await
                .map_err(|_| {
                    lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no AMQP handshake within {CONNECT_TIMEOUT:?}"),
                    ))
                })?
        }
    };
    let round = || async {
        let mut last = None;
        for k in 0..count {
            let i = (first + k) % count;
            match one(nodes.get(i).copied().unwrap_or(list)).await {
                Ok(conn) => return Ok((conn, i)),
                Err(e) => {
                    if count > 1 {
                        tracing::warn!(error = %redact(&e), node = i + 1, nodes = count, "cannot reach this RabbitMQ node; trying the next");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| lapin::Error::from(std::io::Error::other("no broker URL"))))
    };
    let retry = round
        .retry(crate::retry::until_reachable())
        .notify(|err: &lapin::Error, after: Duration| {
            tracing::warn!(error = %redact(err), retry_in_ms = after.as_millis() as u64, "cannot reach RabbitMQ");
        });
    match retry.await {
        Ok(found) => found,
        // `without_max_times` never gives up, so this arm is unreachable in practice.
        Err(e) => panic!("RabbitMQ connection retries ended: {}", redact(&e)),
    }
}

/// How long the TCP probe before a connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `node` takes a TCP connection, checked before lapin connects: lapin retries a
/// refused connection within one attempt (its recovery's backoff applies to the first
/// connection too), so a node that is down would cost the whole `CONNECT_TIMEOUT` before
/// the next is tried; refused here, it costs nothing.
async fn reachable(node: &str) -> lapin::Result<()> {
    let Ok(uri) = node.parse::<lapin::uri::AMQPUri>() else {
        return Ok(()); // checked at start (`check_nodes`); lapin will say what is wrong
    };
    let addr = (uri.authority.host.clone(), uri.authority.port);
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no TCP connection within {PROBE_TIMEOUT:?}"),
        ))),
    }
}

/// The runtime lapin's connections do their I/O on: one of their own, never shut down.
/// On the service's runtime, a connection still being recovered when the service stops
/// panics in lapin's I/O thread as that runtime shuts down ("A Tokio 1.x context was
/// found, but it is being shutdown"); on this one it simply ends with the process.
fn io_runtime() -> async_rs::TokioRuntime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("amqp-io")
            .enable_all()
            .build()
            // Only fails when the OS refuses a thread: nothing could run anyway.
            .unwrap_or_else(|e| panic!("cannot start the AMQP I/O runtime: {e}"))
    });
    async_rs::Runtime::tokio_with_handle(runtime.handle().clone())
}

/// Whether the connection is usable right now (for `/readyz`).
pub fn is_connected(conn: &Connection) -> bool {
    conn.status().connected()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_vhost_is_logged_without_passwords() {
        // What the broker answered when a list of nodes was taken as one URL: the rest of
        // the list became the virtual host, and the refusal repeated it.
        let err = lapin::Error::from(std::io::Error::other(
            "NOT_ALLOWED - access to vhost '/,amqp://roster:n0de-2-pw@rabbit-2:5672/%2f,amqp://roster:n0de-3-pw@rabbit-3:5672/%2f' refused for user 'roster'",
        ));
        let text = redact(&err);
        assert!(
            !text.contains("n0de-2-pw") && !text.contains("n0de-3-pw"),
            "{text}"
        );
        assert!(text.contains("rabbit-2:5672"), "the rest is kept: {text}");
    }
}
