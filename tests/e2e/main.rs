//! Roster end to end: real RabbitMQ, PostgreSQL and SMTP; one binary, one stack per test.

mod admin;
mod admin_page;
mod auth;
mod dead_letters;
mod directory;
mod discovery;
mod faults;
mod groups;
mod hostile;
mod integrations;
mod invites;
mod metrics;
mod okta_assign;
mod org_chart;
mod queries;
mod queued_commands;
mod scaling;
mod tenants;
mod user_lifecycle;
