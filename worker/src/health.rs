//! `/healthz` (the process is alive) and `/readyz` (PostgreSQL and RabbitMQ reachable,
//! consumer running) for the worker.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use common::health::Probes;
use serde_json::{Value, json};

pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(probes)
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
