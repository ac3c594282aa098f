//! Health of the consumers (worker, mailer): `/healthz` (alive), `/readyz` (PostgreSQL
//! answers, the broker connection is up, the consumer runs) and `/metrics` (the process's
//! metrics, see `crate::metrics`) on `HEALTH_ADDR`. This is the only HTTP in `common`:
//! three fixed routes, so the consumers need no web layer of their own.

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    routing::get,
};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

#[derive(Clone)]
pub struct Probes {
    pub db: DatabaseConnection,
    pub amqp: crate::amqp::link::Link,
    pub consuming: Arc<AtomicBool>,
    /// The worker's count of outbox rows it cannot read (shown, not failing readiness:
    /// another worker would find them unreadable too).
    pub outbox_unreadable: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Probes {
    /// Whether the service is ready, and a JSON report of each dependency.
    pub async fn check(&self) -> (bool, Value) {
        let db = self.db.ping().await.is_ok();
        let broker = self.amqp.is_connected();
        let consuming = self.consuming.load(Ordering::Relaxed);
        let ready = db && broker && consuming;
        let mut report = json!({
            "status": if ready { "ready" } else { "not ready" },
            "database": db,
            "broker": broker,
            "consuming": consuming,
        });
        if let Some(n) = &self.outbox_unreadable {
            report["outbox_unreadable"] = json!(n.load(Ordering::Relaxed));
        }
        (ready, report)
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `stop` turns true. Installs the
/// metrics recorder (once per process), so the consumer records from the start.
pub fn serve(
    listener: tokio::net::TcpListener,
    probes: Probes,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let metrics = crate::metrics::install();
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                    crate::metrics::render(&metrics),
                )
            }),
        )
        .with_state(probes);
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "health server failed");
        }
    })
}

async fn readyz(State(p): State<Probes>) -> (StatusCode, Json<Value>) {
    let (ready, report) = p.check().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
