//! Roster's mailer: one invite email per person created, when the org has invites on.

mod handle;
pub mod invite;
pub mod run;

pub use run::Mailer;
