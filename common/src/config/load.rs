//! Building [`Settings`] from defaults, a `.env` file and the environment.

use super::{
    ConfigError, LogFormat, Settings,
    values::{
        header_name, invite_key, parse, parse_delays, parse_ttl, parse_window, read_dotenv,
        session_key,
    },
};
use crate::secret::Secret;
use std::{collections::HashMap, time::Duration};

impl Settings {
    /// Reads the process environment, after loading a `.env` file if one exists
    /// (variables already set win over the file).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars: HashMap<String, String> = read_dotenv(".env");
        vars.extend(std::env::vars());
        Self::from_vars(&vars)
    }

    /// Builds settings from a map of variables; anything missing takes its default.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let string = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let log_format = match get("LOG_FORMAT").as_deref() {
            None => {
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                }
            }
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    name: "LOG_FORMAT",
                    reason: format!("{other:?} is neither \"pretty\" nor \"json\""),
                });
            }
        };
        let session_key = get("ROSTER_SESSION_KEY")
            .map(|v| session_key(&v).map(|_| Secret::new(v)))
            .transpose()?;
        let invite_key = get("ROSTER_INVITE_KEY")
            .map(|v| invite_key(&v).map(|_| Secret::new(v)))
            .transpose()?;
        let secrets_key = get("ROSTER_SECRETS_KEY")
            .map(|v| {
                crate::sealed::SealKey::parse(&v).map_err(|reason| ConfigError {
                    name: "ROSTER_SECRETS_KEY",
                    reason,
                })
            })
            .transpose()?;
        let amqp_url = string("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
        crate::amqp::check_nodes(&amqp_url).map_err(|reason| ConfigError {
            name: "AMQP_URL",
            reason,
        })?;
        let health_addr = match get("HEALTH_ADDR") {
            Some(v) => Some(parse("HEALTH_ADDR", &v)?),
            None => None,
        };
        Self {
            database_url: Secret::new(string(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/roster",
            )),
            amqp_url: Secret::new(amqp_url),
            smtp_url: Secret::new(string("SMTP_URL", "smtp://127.0.0.1:1025")),
            mail_from: string("MAIL_FROM", "Roster <no-reply@roster.localhost>"),
            ingress_addr: parse("INGRESS_ADDR", &string("INGRESS_ADDR", "0.0.0.0:8080"))?,
            health_addr,
            public_url: string("PUBLIC_URL", "http://localhost:8080")
                .trim_end_matches('/')
                .to_owned(),
            operator_token: get("ROSTER_OPERATOR_TOKEN").map(Secret::new),
            session_key,
            invite_key,
            secrets_key,
            rust_log: string("RUST_LOG", "info"),
            log_format,
            amqp_prefix: string("AMQP_PREFIX", "roster"),
            command_timeout: Duration::from_millis(parse(
                "COMMAND_TIMEOUT_MS",
                &string("COMMAND_TIMEOUT_MS", "25000"),
            )?),
            worker_prefetch: parse("WORKER_PREFETCH", &string("WORKER_PREFETCH", "128"))?,
            worker_concurrency: parse("WORKER_CONCURRENCY", &string("WORKER_CONCURRENCY", "2"))?,
            worker_batch_max: parse("WORKER_BATCH_MAX", &string("WORKER_BATCH_MAX", "64"))?,
            max_in_flight: parse(
                "INGRESS_MAX_IN_FLIGHT",
                &string("INGRESS_MAX_IN_FLIGHT", "1024"),
            )?,
            commands_queue_max_length: parse(
                "COMMANDS_QUEUE_MAX_LENGTH",
                &string("COMMANDS_QUEUE_MAX_LENGTH", "100000"),
            )?,
            scim_rate_limit: parse(
                "SCIM_RATE_LIMIT_PER_SECOND",
                &string("SCIM_RATE_LIMIT_PER_SECOND", "500"),
            )?,
            db_max_connections: parse(
                "DATABASE_MAX_CONNECTIONS",
                &string("DATABASE_MAX_CONNECTIONS", "16"),
            )?,
            delivery_limit: parse(
                "COMMAND_DELIVERY_LIMIT",
                &string("COMMAND_DELIVERY_LIMIT", "20"),
            )?,
            quorum_initial_group_size: Some(parse::<u32>(
                "QUORUM_INITIAL_GROUP_SIZE",
                &string("QUORUM_INITIAL_GROUP_SIZE", "0"),
            )?)
            .filter(|n| *n > 0),
            max_body_bytes: parse("MAX_BODY_BYTES", &string("MAX_BODY_BYTES", "1048576"))?,
            header_read_timeout: Duration::from_millis(parse(
                "HEADER_READ_TIMEOUT_MS",
                &string("HEADER_READ_TIMEOUT_MS", "10000"),
            )?),
            auth_failures_per_minute: parse(
                "AUTH_FAILURES_PER_MINUTE",
                &string("AUTH_FAILURES_PER_MINUTE", "10"),
            )?,
            auth_failures_global_per_minute: parse(
                "AUTH_FAILURES_GLOBAL_PER_MINUTE",
                &string("AUTH_FAILURES_GLOBAL_PER_MINUTE", "1000"),
            )?,
            client_ip_header: get("CLIENT_IP_HEADER")
                .map(|h| header_name("CLIENT_IP_HEADER", h))
                .transpose()?,
            queue_expires: None,
            retry_delays: parse_delays(&string("RETRY_DELAYS_MS", "1000,10000,60000"))?,
            invite_ttl: parse_ttl(&string("INVITE_TTL", "7d"))?,
            outbox_retention: parse_window("OUTBOX_RETENTION", &string("OUTBOX_RETENTION", "7d"))?,
            processed_commands_retention: parse_window(
                "PROCESSED_COMMANDS_RETENTION",
                &string("PROCESSED_COMMANDS_RETENTION", "30d"),
            )?,
            activity_retention: parse_window(
                "ACTIVITY_RETENTION",
                &string("ACTIVITY_RETENTION", "400d"),
            )?,
            invite_retention: parse_window("INVITE_RETENTION", &string("INVITE_RETENTION", "30d"))?,
            gc_interval: parse_window("GC_INTERVAL", &string("GC_INTERVAL", "10s"))?,
            provisioning_log_retention: Duration::from_secs(
                86_400
                    * parse::<u64>(
                        "PROVISIONING_LOG_RETENTION_DAYS",
                        &string("PROVISIONING_LOG_RETENTION_DAYS", "30"),
                    )?
                    .max(1),
            ),
        }
        .checked()
    }

    /// Refuses a stored-reply window a redelivered command could outlive: the broker-side
    /// retries plus the command timeout (what a command can spend queued before a
    /// redelivery, not counting an operator's replay from the dead-letter queue).
    fn checked(self) -> Result<Self, ConfigError> {
        let redelivery: Duration =
            self.retry_delays.iter().sum::<Duration>() + self.command_timeout;
        if self.processed_commands_retention <= redelivery * 2 {
            return Err(ConfigError {
                name: "PROCESSED_COMMANDS_RETENTION",
                reason: format!(
                    "must be more than twice the longest redelivery (RETRY_DELAYS_MS plus \
                     COMMAND_TIMEOUT_MS = {} s), or a redelivered command could be applied twice",
                    redelivery.as_secs()
                ),
            });
        }
        Ok(self)
    }

    /// The settings every default gives: what tests start from.
    pub fn defaults() -> Self {
        let mut vars = HashMap::new();
        vars.insert("LOG_FORMAT".to_owned(), "pretty".to_owned());
        // Defaults always parse; a failure here is a bug caught by the unit test below.
        Self::from_vars(&vars).unwrap_or_else(|e| panic!("default settings are invalid: {e}"))
    }
}
