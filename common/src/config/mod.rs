//! `Settings`: one struct built from defaults and the environment (CONTRACT.md), with
//! secrets wrapped so they never print.
//!
//! [`load`] builds the settings from the variables, with the readers of single values in
//! [`values`].

mod load;
mod values;

pub use values::{invite_key, session_key};

use crate::secret::Secret;
use std::{net::SocketAddr, time::Duration};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting of every service. Unknown variables are ignored; bad values are errors.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: Secret<String>,
    pub amqp_url: Secret<String>,
    pub smtp_url: Secret<String>,
    pub mail_from: String,
    pub ingress_addr: SocketAddr,
    /// `HEALTH_ADDR`; `None` means the service's own default (worker 9090, mailer 9091).
    pub health_addr: Option<SocketAddr>,
    pub public_url: String,
    pub operator_token: Option<Secret<String>>,
    /// `ROSTER_SESSION_KEY`: base64 of at least 64 bytes, the key that signs the admin
    /// page's session cookie. Unset: the ingress makes a random one at start.
    pub session_key: Option<Secret<String>>,
    /// `ROSTER_INVITE_KEY`: base64 of at least 32 bytes, the mailer's key that derives each
    /// invite's link from the invite (HMAC-SHA-256), so every resend carries the same link.
    /// Unset: the mailer makes a random one at start (a resend after a restart then carries
    /// a new link, and the first one stops working).
    pub invite_key: Option<Secret<String>>,
    /// `ROSTER_SECRETS_KEY`: base64 of 32 bytes, the AES-256-GCM key that seals secrets
    /// Roster must use again (an org's OpenID Connect client secret). Unset: employee
    /// sign-in cannot be configured.
    pub secrets_key: Option<crate::sealed::SealKey>,
    pub rust_log: String,
    pub log_format: LogFormat,
    /// Prefix of every exchange and queue name (`AMQP_PREFIX`, default `roster`).
    pub amqp_prefix: String,
    /// How long the ingress waits for the worker's reply before answering 503.
    pub command_timeout: Duration,
    /// Most PostgreSQL connections each process opens (`DATABASE_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// Transactions (batches of commands) a worker applies at once (`WORKER_CONCURRENCY`,
    /// default 2).
    pub worker_concurrency: usize,
    /// Most commands a worker applies in one transaction (`WORKER_BATCH_MAX`, default 64).
    pub worker_batch_max: usize,
    /// Commands the ingress waits on at once; past it, `503` at once (`INGRESS_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// Most commands waiting in the queue; past it the broker refuses new ones and the
    /// ingress answers `503` (`COMMANDS_QUEUE_MAX_LENGTH`, `0` = unbounded).
    pub commands_queue_max_length: u32,
    /// SCIM requests per second one org may make; bursts up to twice that
    /// (`SCIM_RATE_LIMIT_PER_SECOND`, `0` = off).
    pub scim_rate_limit: u32,
    /// Unacknowledged commands a worker holds at once (`WORKER_PREFETCH`).
    pub worker_prefetch: u16,
    /// Invites the mailer sends at once (`MAILER_CONCURRENCY`, 1 to 64), each over an SMTP
    /// connection, in batches of at most four that each hold one PostgreSQL connection
    /// (their invite rows' locks) across their SMTP exchanges.
    pub mailer_concurrency: u16,
    /// Deliveries of one command before the broker dead-letters it (`COMMAND_DELIVERY_LIMIT`).
    pub delivery_limit: u32,
    /// Members each quorum queue starts with (`QUORUM_INITIAL_GROUP_SIZE`, set as
    /// `x-quorum-initial-group-size`; the broker caps it at the cluster's size). `None`
    /// (unset or `0`): the broker's own default (`quorum_cluster_size`, 3).
    pub quorum_initial_group_size: Option<u32>,
    /// Largest request body the ingress reads (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// How long a client has to send a request's headers, and how long an idle keep-alive
    /// connection stays open (`HEADER_READ_TIMEOUT_MS`): a slow client cannot hold a
    /// connection open for free.
    pub header_read_timeout: Duration,
    /// Failed authentications (a wrong admin key, SCIM token or operator token) one client
    /// address may make per minute; past it every authentication from that address is
    /// `429` until its minute is over (`AUTH_FAILURES_PER_MINUTE`, `0` = off).
    pub auth_failures_per_minute: u32,
    /// Failed authentications per minute from all addresses together; past it, addresses
    /// that failed at least once this minute are refused (`AUTH_FAILURES_GLOBAL_PER_MINUTE`,
    /// `0` = off). Clients that never fail are not affected.
    pub auth_failures_global_per_minute: u32,
    /// A header the ingress's reverse proxy sets to the client's address
    /// (`CLIENT_IP_HEADER`, e.g. `X-Forwarded-For`: its last entry is used). Unset: the
    /// TCP peer's address. Set it only when every request comes through that proxy.
    pub client_ip_header: Option<String>,
    /// Queue expiry for per-test topologies; `None` (the default) in production.
    pub queue_expires: Option<Duration>,
    /// Delays of the broker-side retries of a command or invite that keeps failing
    /// transiently (`RETRY_DELAYS_MS`, comma-separated); after the last, it is dead-lettered.
    pub retry_delays: Vec<Duration>,
    /// How long an invite link stays valid after the email is sent (`INVITE_TTL`, e.g.
    /// `7d`, `36h`, `90m`; default 7 days).
    pub invite_ttl: Duration,
    /// Retention windows (docs/data-lifecycle.md), each `7d`/`36h`/`90m`/`600s`:
    /// published outbox events (`OUTBOX_RETENTION`, default 7 days).
    pub outbox_retention: Duration,
    /// Processed command ids and their stored replies (`PROCESSED_COMMANDS_RETENTION`,
    /// default 30 days). A command redelivered or replayed after its id is pruned would be
    /// applied a second time, so this must exceed the longest time a command can spend in
    /// the queues, retry queues and dead-letter queue before it is applied.
    pub processed_commands_retention: Duration,
    /// Activity entries (`ACTIVITY_RETENTION`, default 400 days; the operator can set
    /// another per org).
    pub activity_retention: Duration,
    /// Accepted invites, and expired ones, after accepting or expiring
    /// (`INVITE_RETENTION`, default 30 days).
    pub invite_retention: Duration,
    /// How often the worker prunes and erases in the background (`GC_INTERVAL`, default
    /// 10 s); a deleted person's remaining data is gone within about this (plus the outbox
    /// relay's lag).
    pub gc_interval: Duration,
    /// `PROVISIONING_LOG_RETENTION_DAYS`: how long the provisioning log keeps an entry.
    pub provisioning_log_retention: Duration,
}

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

#[cfg(test)]
mod tests;
