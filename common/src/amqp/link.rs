//! A broker connection that heals. lapin's automatic recovery handles a dropped
//! connection first; if the connection is still not usable after `RECOVERY_GRACE` (a
//! recovery that stalled, or a broker that came back empty), its holder replaces it with a
//! fresh one and rebuilds what it declared. Every service holds its connection this way.

use lapin::Connection;
use std::{
    sync::{Arc, RwLock},
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
}

impl Link {
    /// Connects, retrying until the broker answers.
    pub async fn connect(url: &str, name: &str) -> Self {
        let conn = super::connect(url, name).await;
        Self {
            current: Arc::new(RwLock::new(Arc::new(conn))),
            url: Arc::new(url.to_owned()),
            name: Arc::new(name.to_owned()),
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

    /// Replaces the connection with a fresh one (retrying until the broker answers) and
    /// closes the old one, so its own recovery stops; if that recovery brings it back all
    /// the same, it is closed again (`RETIRE_WATCH`).
    pub async fn reconnect(&self) -> Arc<Connection> {
        let old = self.current();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), old.close(320, "replaced".into())).await;
        let fresh = Arc::new(super::connect(&self.url, &self.name).await);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        tracing::warn!(connection = %self.name, "broker connection replaced");
        tokio::spawn(retire(old, self.name.clone()));
        fresh
    }

    /// Closes the connection in use (at shutdown), within a bound.
    pub async fn close(&self, reason: &str) {
        let conn = self.current();
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
