//! Roster's ingress: SCIM 2.0 for identity providers, the admin API, invite links and
//! health, and employees' sign-in with OpenID Connect (`sso`). It reads PostgreSQL; every write is a command answered by a worker's reply.

pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod commands;
pub mod error;
pub mod health;
mod html;
pub mod invite;
pub mod metrics;
pub mod provisioning_log;
pub mod ratelimit;
pub mod request_id;
pub mod scim;
pub mod sso;
pub mod state;
pub mod store;
pub mod tokens;

pub use app::Application;
pub use state::AppState;
