//! Roster's worker: consumes commands, applies them in one transaction each, replies after
//! commit, acks after the reply, and relays the outbox to the events exchange.

pub mod apply;
pub mod authorize;
pub mod depth;
pub mod dlq;
pub mod gc;
pub mod outbox;
pub mod provisioning_log;
pub mod run;

pub use run::{Worker, migrate};
