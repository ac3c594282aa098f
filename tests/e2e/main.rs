//! Roster end to end: real RabbitMQ, PostgreSQL and SMTP; one binary, one stack per test.

mod admin;
mod auth;
mod discovery;
mod invites;
mod okta_assign;
mod queued_commands;
mod queries;
mod tenants;
mod user_lifecycle;
