//! Every read the ingress makes from PostgreSQL, as named functions, one module per
//! service; handlers hold no SQL (writes are commands the worker applies). Reads are built
//! with sea-query or sea-orm's entities (`common::db::entities`), so no placeholder is
//! numbered by hand, except on the measured hot path (docs/performance.md): the SCIM
//! lookups and list pages (`scim`, `page`) and the token check every SCIM request makes
//! (`auth`), whose hand-written SQL each module says why it keeps.

pub mod admin;
pub mod auth;
pub mod commands;
pub mod directory;
pub mod invite;
pub mod page;
pub mod scim;
pub mod sso;
