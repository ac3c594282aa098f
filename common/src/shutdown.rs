//! The shutdown signal every service's `run` takes: SIGTERM or Ctrl-C in production, a
//! future of the test's choosing in tests.

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

/// Runs `work` unless `shutdown` resolves first (then `None`, and `shutdown` must not be
/// polled again): a step that waits on a broker or database that is gone must not hold up
/// a stopping service.
pub async fn unless<S, F>(shutdown: std::pin::Pin<&mut S>, work: F) -> Option<F::Output>
where
    S: std::future::Future<Output = ()> + ?Sized,
    F: std::future::Future,
{
    tokio::select! {
        () = shutdown => None,
        out = work => Some(out),
    }
}

/// How long closing a connection may take at shutdown before it is abandoned.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes the database pool within `CLOSE_TIMEOUT`, so a stuck peer cannot keep a
/// stopping service alive.
pub async fn close_db(db: &sea_orm::DatabaseConnection) {
    if tokio::time::timeout(CLOSE_TIMEOUT, db.clone().close())
        .await
        .is_err()
    {
        tracing::warn!("database pool did not close in time; abandoning it");
    }
}

/// How long batch takers (the worker's appliers, the mailer's senders) get to stop once
/// the consume loop has drained: they have had its `DRAIN_TIMEOUT` already, so one still
/// busy is stuck.
pub const TAKERS_STOP_TIMEOUT: std::time::Duration = CLOSE_TIMEOUT;

/// Waits for tasks that end by themselves once their input is closed (the worker's
/// appliers, the mailer's senders) for at most `TAKERS_STOP_TIMEOUT`, then aborts them:
/// ones stuck on a broker or database that is gone get their deliveries back when the
/// connection closes, and a transaction not committed is rolled back.
pub async fn join_or_abort(mut tasks: tokio::task::JoinSet<()>, what: &str) {
    let joined = tokio::time::timeout(TAKERS_STOP_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        tracing::warn!("{what} did not stop in time; aborted");
        tasks.abort_all();
    }
}

/// A spawned helper task (outbox relay, health server) that dies with its owner: dropping
/// the guard aborts it, so a service's `run` future taken down mid-flight leaves nothing
/// behind, as a crashed process would not.
pub struct TaskGuard<T>(Option<tokio::task::JoinHandle<T>>);

impl<T: Send + 'static> TaskGuard<T> {
    pub fn spawn(fut: impl std::future::Future<Output = T> + Send + 'static) -> Self {
        Self(Some(tokio::spawn(fut)))
    }

    pub fn new(handle: tokio::task::JoinHandle<T>) -> Self {
        Self(Some(handle))
    }

    /// Waits for the task to end by itself.
    pub async fn join(mut self) -> Option<T> {
        match self.0.take() {
            Some(h) => h.await.ok(),
            None => None,
        }
    }

    /// Waits for the task to end by itself for at most `limit`, then aborts it (`None`).
    pub async fn join_within(mut self, limit: std::time::Duration) -> Option<T> {
        let handle = self.0.as_mut()?;
        let ended = tokio::time::timeout(limit, handle).await.ok()?;
        self.0 = None;
        ended.ok()
    }
}

impl<T> Drop for TaskGuard<T> {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}
