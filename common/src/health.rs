//! Readiness probes shared by the consumers: PostgreSQL answers, the broker connection is
//! up, and the consumer is running. Each service serves them on its own `/readyz`.

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

impl Probes {
    /// Whether the service is ready, and a JSON report of each dependency.
    pub async fn check(&self) -> (bool, Value) {
        let db = self.db.ping().await.is_ok();
        let broker = crate::amqp::is_connected(&self.amqp);
        let consuming = self.consuming.load(Ordering::Relaxed);
        let ready = db && broker && consuming;
        (
            ready,
            json!({
                "status": if ready { "ready" } else { "not ready" },
                "database": db,
                "broker": broker,
                "consuming": consuming,
            }),
        )
    }
}
