//! Roster end to end: real RabbitMQ, PostgreSQL and SMTP; one binary, one stack per test.

mod admin;
mod admin_page;
mod auth;
mod broker_gone;
mod cluster;
mod data_lifecycle;
mod dead_letters;
mod deprovision_guard;
mod directory;
mod discovery;
mod faults;
mod groups;
mod hostile;
mod integrations;
mod invites;
mod invites_active;
mod metrics;
mod okta_assign;
mod provisioning_log;
mod queries;
mod queued_commands;
mod scaling;
mod sso;
mod tenants;
mod truth;
mod user_lifecycle;
