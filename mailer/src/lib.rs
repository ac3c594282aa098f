//! Roster's mailer: one invite email per person created, when the org has invites on.

pub mod invite;
pub mod run;

pub use run::Mailer;
