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

/// How long closing a connection may take at shutdown before it is abandoned.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes the broker connection and the database pool, each within `CLOSE_TIMEOUT`, so a
/// stuck peer cannot keep a stopping service alive.
pub async fn close_connections(
    amqp: &lapin::Connection,
    db: &sea_orm::DatabaseConnection,
    who: &str,
) {
    let reason = format!("{who} shutting down");
    if tokio::time::timeout(CLOSE_TIMEOUT, amqp.close(200, reason.as_str().into()))
        .await
        .is_err()
    {
        tracing::warn!("broker connection did not close in time; abandoning it");
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, db.clone().close())
        .await
        .is_err()
    {
        tracing::warn!("database pool did not close in time; abandoning it");
    }
}
