//! Roster's worker: consumes commands, applies the ones that are ready together in one
//! transaction (group commit, `batch`), replies after commit, acks after the reply, and
//! relays the outbox to the events exchange.

pub mod apply;
pub mod authorize;
pub mod batch;
pub mod depth;
pub mod dlq;
pub mod gc;
pub mod outbox;
pub mod provisioning_log;
pub mod run;
pub mod settle;

pub use run::{Worker, migrate};
