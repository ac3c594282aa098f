//! `/healthz` (alive) and `/readyz` (PostgreSQL reachable; commands can be published and
//! their replies received) for the ingress. `/readyz` also shows whether SCIM tokens are
//! kept between requests (`scim_tokens_kept`, `crate::tokens`); without it every request
//! looks its token up, which is slower but still ready.

use crate::state::AppState;
use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = state.db.ping().await.is_ok();
    let broker = state.rpc.is_ready();
    let ready = db && broker;
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(
            json!({"status": if ready {"ready"} else {"not ready"}, "database": db, "broker": broker, "scim_tokens_kept": state.tokens.is_keeping()}),
        ),
    )
}
