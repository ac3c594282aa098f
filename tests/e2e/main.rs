//! Roster end to end: real RabbitMQ, PostgreSQL and SMTP; one binary, one stack per test.

mod admin;
mod auth;
mod directory;
mod discovery;
mod groups;
mod invites;
mod okta_assign;
mod queries;
mod queued_commands;
mod tenants;
mod user_lifecycle;
