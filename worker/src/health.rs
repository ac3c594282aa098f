//! `/healthz` (the process is alive) and `/readyz` (PostgreSQL and RabbitMQ reachable,
//! consumer running) for the worker.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use lapin::Connection;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

#[derive(Clone)]
pub struct Probes {
    pub db: DatabaseConnection,
    pub amqp: Arc<Connection>,
    pub consuming: Arc<AtomicBool>,
}

pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(probes)
}

async fn readyz(State(p): State<Probes>) -> (StatusCode, Json<Value>) {
    let db = p.db.ping().await.is_ok();
    let amqp = common::amqp::is_connected(&p.amqp);
    let consuming = p.consuming.load(Ordering::Relaxed);
    let ok = db && amqp && consuming;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(json!({"status": if ok {"ready"} else {"not ready"}, "database": db, "broker": amqp, "consuming": consuming})),
    )
}
