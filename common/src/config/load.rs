//! Building [`Settings`] from defaults, a `.env` file and the environment.

use super::{
    ConfigError, LogFormat, Settings,
    values::{
        header_name, invite_key, parse, parse_delays, parse_ttl, parse_window, read_dotenv,
        session_key,
    },
};
use crate::secret::Secret;
use std::{collections::HashMap, fmt::Display, str::FromStr, time::Duration};

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
        let vars = Vars(vars);
        let log_format = match vars.get("LOG_FORMAT").as_deref() {
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
        let session_key = vars
            .get("ROSTER_SESSION_KEY")
            .map(|v| session_key(&v).map(|_| Secret::new(v)))
            .transpose()?;
        let invite_key = vars
            .get("ROSTER_INVITE_KEY")
            .map(|v| invite_key(&v).map(|_| Secret::new(v)))
            .transpose()?;
        let secrets_key = vars
            .get("ROSTER_SECRETS_KEY")
            .map(|v| {
                crate::sealed::SealKey::parse(&v).map_err(|reason| ConfigError {
                    name: "ROSTER_SECRETS_KEY",
                    reason,
                })
            })
            .transpose()?;
        let amqp_url = vars.string("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
        crate::amqp::check_nodes(&amqp_url).map_err(|reason| ConfigError {
            name: "AMQP_URL",
            reason,
        })?;
        let health_addr = match vars.get("HEALTH_ADDR") {
            Some(v) => Some(parse("HEALTH_ADDR", &v)?),
            None => None,
        };
        Self {
            database_url: Secret::new(
                vars.string("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/roster"),
            ),
            amqp_url: Secret::new(amqp_url),
            smtp_url: Secret::new(vars.string("SMTP_URL", "smtp://127.0.0.1:1025")),
            mail_from: vars.string("MAIL_FROM", "Roster <no-reply@roster.localhost>"),
            ingress_addr: vars.parsed("INGRESS_ADDR", "0.0.0.0:8080")?,
            health_addr,
            public_url: vars
                .string("PUBLIC_URL", "http://localhost:8080")
                .trim_end_matches('/')
                .to_owned(),
            operator_token: vars.get("ROSTER_OPERATOR_TOKEN").map(Secret::new),
            session_key,
            invite_key,
            secrets_key,
            rust_log: vars.string("RUST_LOG", "info"),
            log_format,
            amqp_prefix: vars.string("AMQP_PREFIX", "roster"),
            command_timeout: Duration::from_millis(vars.parsed("COMMAND_TIMEOUT_MS", "25000")?),
            worker_prefetch: vars.parsed("WORKER_PREFETCH", "128")?,
            mailer_concurrency: vars.parsed("MAILER_CONCURRENCY", "15")?,
            worker_concurrency: vars.parsed("WORKER_CONCURRENCY", "2")?,
            worker_batch_max: vars.parsed("WORKER_BATCH_MAX", "64")?,
            max_in_flight: vars.parsed("INGRESS_MAX_IN_FLIGHT", "1024")?,
            commands_queue_max_length: vars.parsed("COMMANDS_QUEUE_MAX_LENGTH", "100000")?,
            scim_rate_limit: vars.parsed("SCIM_RATE_LIMIT_PER_SECOND", "500")?,
            db_max_connections: vars.parsed("DATABASE_MAX_CONNECTIONS", "16")?,
            delivery_limit: vars.parsed("COMMAND_DELIVERY_LIMIT", "20")?,
            quorum_initial_group_size: Some(vars.parsed::<u32>("QUORUM_INITIAL_GROUP_SIZE", "0")?)
                .filter(|n| *n > 0),
            max_body_bytes: vars.parsed("MAX_BODY_BYTES", "1048576")?,
            header_read_timeout: Duration::from_millis(
                vars.parsed("HEADER_READ_TIMEOUT_MS", "10000")?,
            ),
            auth_failures_per_minute: vars.parsed("AUTH_FAILURES_PER_MINUTE", "10")?,
            auth_failures_global_per_minute: vars
                .parsed("AUTH_FAILURES_GLOBAL_PER_MINUTE", "1000")?,
            client_ip_header: vars
                .get("CLIENT_IP_HEADER")
                .map(|h| header_name("CLIENT_IP_HEADER", h))
                .transpose()?,
            queue_expires: None,
            retry_delays: parse_delays(&vars.string("RETRY_DELAYS_MS", "1000,10000,60000"))?,
            invite_ttl: parse_ttl(&vars.string("INVITE_TTL", "7d"))?,
            outbox_retention: vars.window("OUTBOX_RETENTION", "7d")?,
            processed_commands_retention: vars.window("PROCESSED_COMMANDS_RETENTION", "30d")?,
            activity_retention: vars.window("ACTIVITY_RETENTION", "400d")?,
            invite_retention: vars.window("INVITE_RETENTION", "30d")?,
            gc_interval: vars.window("GC_INTERVAL", "10s")?,
            provisioning_log_retention: Duration::from_secs(
                86_400
                    * vars
                        .parsed::<u64>("PROVISIONING_LOG_RETENTION_DAYS", "30")?
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

/// The variables settings are read from: trimmed, an empty one as if unset.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `name`, or `default` when unset.
    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// `name` parsed as a `T`, or `default` when unset.
    fn parsed<T: FromStr>(&self, name: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: Display,
    {
        parse(name, &self.string(name, default))
    }

    /// `name` as a time window (`10s`, `7d`), or `default` when unset.
    fn window(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        parse_window(name, &self.string(name, default))
    }
}
