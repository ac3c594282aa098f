//! The test harness: each test spawns ingress, worker and mailer in-process against real
//! RabbitMQ, PostgreSQL and SMTP, on its own database and its own queue names, and talks
//! to them as Okta would.

pub mod bulk;
pub mod events;
pub mod feed;
pub mod harness;
pub mod maildev;
pub mod okta;
pub mod proxy;
