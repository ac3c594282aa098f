//! What Roster's services share: settings, telemetry, secrets, the AMQP topology and
//! message contracts, the SCIM model, and the database schema. Nothing here knows about
//! HTTP routing or SMTP.

pub mod amqp;
pub mod config;
pub mod db;
pub mod health;
pub mod html;
pub mod mapping;
pub mod message_schemas;
pub mod messages;
pub mod metrics;
pub mod org_chart;
pub mod retry;
pub mod scim;
pub mod sealed;
pub mod secret;
pub mod shutdown;
pub mod sso;
pub mod telemetry;

pub use config::Settings;
