//! A broker connection that heals. lapin's automatic recovery handles a dropped
//! connection first; if the connection is still not usable after `RECOVERY_GRACE` (a
//! recovery that stalled, or a broker that came back empty), its holder replaces it with a
//! fresh one and rebuilds what it declared. Every service holds its connection this way.
//!
//! `AMQP_URL` may name several nodes of one cluster: the link connects to the first that
//! answers, and a replacement starts with the node after the one that went away.

use lapin::Connection;
use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// How long lapin's own recovery gets before the connection is replaced.
pub const RECOVERY_GRACE: Duration = Duration::from_secs(10);

/// How long a replaced connection is watched. lapin's recovery can still bring it back
/// after it was replaced — with its consumers subscribed again, holding up to a prefetch
/// of deliveries that nothing reads — so whenever it is up in that time it is closed.
const RETIRE_WATCH: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct Link {
    current: Arc<RwLock<Arc<Connection>>>,
    url: Arc<String>,
    name: Arc<String>,
    /// The index (in `AMQP_URL`) of the node the connection in use is to.
    node: Arc<AtomicUsize>,
}

impl Link {
    /// Connects to the first node of `url` (one AMQP URL or several, comma-separated) that
    /// answers, retrying until one does.
    pub async fn connect(url: &str, name: &str) -> Self {
        let (conn, node) = super::connect_from(url, name, 0).await;
        if super::nodes(url).len() > 1 {
            tracing::info!(connection = name, node = node + 1, "connected to RabbitMQ");
        }
        Self {
            current: Arc::new(RwLock::new(Arc::new(conn))),
            url: Arc::new(url.to_owned()),
            name: Arc::new(name.to_owned()),
            node: Arc::new(AtomicUsize::new(node)),
        }
    }

    /// The connection in use now.
    pub fn current(&self) -> Arc<Connection> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_connected(&self) -> bool {
        super::is_connected(&self.current())
    }

    /// Replaces the connection with a fresh one (retrying until a node answers, starting
    /// with the one after the node that went away) and closes the old one if it is up (a
    /// connection still being recovered cannot be closed: its recovery ends by itself
    /// after `RECOVERY_ATTEMPTS`); if its recovery brings it back, it is closed then
    /// (`RETIRE_WATCH`). Callers that are stopping race this against their shutdown: it
    /// waits as long as no node answers.
    pub async fn reconnect(&self) -> Arc<Connection> {
        let old = self.current();
        if old.status().connected() {
            let _ = tokio::time::timeout(Duration::from_secs(2), old.close(320, "replaced".into()))
                .await;
        }
        let next = self.node.load(Ordering::Relaxed) + 1;
        let (conn, node) = super::connect_from(&self.url, &self.name, next).await;
        let fresh = Arc::new(conn);
        self.node.store(node, Ordering::Relaxed);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        tracing::warn!(connection = %self.name, node = node + 1, "broker connection replaced");
        tokio::spawn(retire(old, self.name.clone()));
        fresh
    }

    /// Closes the connection in use (at shutdown), within a bound. One that is down is
    /// left alone: there is nobody to tell, and nothing it held stays with the broker.
    pub async fn close(&self, reason: &str) {
        let conn = self.current();
        if !conn.status().connected() {
            tracing::info!(connection = %self.name, "broker connection is down; not closing it");
            return;
        }
        if tokio::time::timeout(
            crate::shutdown::CLOSE_TIMEOUT,
            conn.close(200, reason.into()),
        )
        .await
        .is_err()
        {
            tracing::warn!("broker connection did not close in time; abandoning it");
        }
    }
}

/// Closes a replaced connection whenever lapin's recovery brings it back, until it is
/// closed for good or `RETIRE_WATCH` has passed.
async fn retire(old: Arc<Connection>, name: Arc<String>) {
    let deadline = tokio::time::Instant::now() + RETIRE_WATCH;
    while tokio::time::Instant::now() < deadline {
        let status = old.status();
        if status.closed() {
            return;
        }
        if status.connected() {
            tracing::warn!(connection = %name, "a replaced broker connection came back; closing it");
            let _ = tokio::time::timeout(Duration::from_secs(2), old.close(320, "replaced".into()))
                .await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
