//! The SCIM resources as plain data: validating what an identity provider sends into what
//! Roster stores, and rendering a stored resource back — [`user`] (RFC 7643 §4.1) and
//! [`group`] (§4.2), with what they share in [`attrs`].

mod attrs;
mod group;
mod user;

pub use attrs::{MAX_EXTERNAL_ID_LEN, canonical_attrs, etag, has_nul, parse_bool};
pub use group::*;
pub use user::*;

#[cfg(test)]
mod tests;
