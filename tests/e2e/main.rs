//! Roster end to end: real RabbitMQ, PostgreSQL and SMTP; one binary, one stack per test.

mod admin;
mod admin_page;
mod auth;
mod dead_letters;
mod deprovision_guard;
mod directory;
mod discovery;
mod faults;
mod groups;
mod hostile;
mod integrations;
mod invites;
mod metrics;
mod okta_assign;
mod provisioning_log;
mod queries;
mod queued_commands;
mod scaling;
mod tenants;
mod user_lifecycle;
