//! Roster's mailer: one invite email per person created, when the org has invites on.

mod batch;
mod handle;
pub mod invite;
pub mod run;
mod send;
mod smtp;
mod sql;

pub use run::Mailer;
