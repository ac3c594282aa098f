//! `Settings`: one struct built from defaults and the environment (CONTRACT.md), with
//! secrets wrapped so they never print.

use crate::secret::Secret;
use std::{collections::HashMap, net::SocketAddr, time::Duration};

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
            worker_prefetch: parse("WORKER_PREFETCH", &string("WORKER_PREFETCH", "32"))?,
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

/// The bytes of a `ROSTER_SESSION_KEY` (standard or URL-safe base64, at least 64 bytes).
pub fn session_key(value: &str) -> Result<Vec<u8>, ConfigError> {
    key_bytes("ROSTER_SESSION_KEY", value, 64)
}

/// The bytes of a `ROSTER_INVITE_KEY` (standard or URL-safe base64, at least 32 bytes).
pub fn invite_key(value: &str) -> Result<Vec<u8>, ConfigError> {
    key_bytes("ROSTER_INVITE_KEY", value, 32)
}

fn key_bytes(name: &'static str, value: &str, min: usize) -> Result<Vec<u8>, ConfigError> {
    use base64::{Engine, engine::general_purpose};
    let err = |reason: &str| ConfigError {
        name,
        reason: reason.to_owned(),
    };
    let value = value.trim();
    let bytes = general_purpose::STANDARD
        .decode(value)
        .or_else(|_| general_purpose::URL_SAFE.decode(value))
        .or_else(|_| general_purpose::STANDARD_NO_PAD.decode(value))
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(value))
        .map_err(|_| err("not base64"))?;
    if bytes.len() < min {
        return Err(err(&format!(
            "must decode to at least {min} bytes (e.g. `openssl rand -base64 {min}`)"
        )));
    }
    Ok(bytes)
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError {
        name,
        reason: e.to_string(),
    })
}

/// An HTTP header name (letters, digits, `-`, `_`), lowercased.
fn header_name(name: &'static str, value: String) -> Result<String, ConfigError> {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(ConfigError {
            name,
            reason: format!("{value:?} is not a header name"),
        })
    }
}

fn parse_delays(value: &str) -> Result<Vec<Duration>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| parse::<u64>("RETRY_DELAYS_MS", v).map(Duration::from_millis))
        .collect()
}

/// A positive duration with a unit: `7d`, `36h`, `90m` or `600s`.
fn parse_ttl(value: &str) -> Result<Duration, ConfigError> {
    let err = || ConfigError {
        name: "INVITE_TTL",
        reason: format!("{value:?} is not a duration like 7d, 36h, 90m or 600s"),
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit.trim() {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(err()),
    };
    match number.checked_mul(unit_secs) {
        Some(secs) if secs > 0 && secs <= 366 * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(ConfigError {
            name: "INVITE_TTL",
            reason: format!("{value:?} must be more than 0 and at most a year"),
        }),
    }
}

/// A retention window or interval: `400d`, `36h`, `90m` or `600s`, at least a second
/// and at most 100 years.
fn parse_window(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let err = || ConfigError {
        name,
        reason: format!("{value:?} is not a duration like 400d, 36h, 90m or 600s"),
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit.trim() {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(err()),
    };
    match number.checked_mul(unit_secs) {
        Some(secs) if secs > 0 && secs <= 36_500 * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(ConfigError {
            name,
            reason: format!("{value:?} must be more than 0 and at most 100 years"),
        }),
    }
}

/// `KEY=VALUE` lines; `#` comments, blank lines and optional quotes. A missing file is empty.
fn read_dotenv(path: &str) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line
                .strip_prefix("export ")
                .unwrap_or(line)
                .split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::defaults();
        assert_eq!(
            s.database_url.expose(),
            "postgres://postgres@127.0.0.1:5432/roster"
        );
        assert_eq!(s.amqp_url.expose(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.smtp_url.expose(), "smtp://127.0.0.1:1025");
        assert_eq!(s.ingress_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.public_url, "http://localhost:8080");
        assert!(s.operator_token.is_none());
        assert!(s.session_key.is_none());
        assert!(s.command_timeout < Duration::from_secs(60));
        assert_eq!(s.invite_ttl, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn invite_ttl_takes_a_unit() {
        assert_eq!(
            parse_ttl("36h").expect("hours"),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(
            parse_ttl("90m").expect("minutes"),
            Duration::from_secs(90 * 60)
        );
        assert_eq!(parse_ttl("1d").expect("a day"), Duration::from_secs(86_400));
        for bad in [
            "7",
            "d",
            "0d",
            "7 weeks",
            "-1d",
            "400d",
            "99999999999999999999d",
        ] {
            let err = parse_ttl(bad).expect_err(bad);
            assert_eq!(err.name, "INVITE_TTL");
        }
    }

    #[test]
    fn limits_have_defaults_and_a_proxy_header_is_a_header_name() {
        let s = Settings::defaults();
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.auth_failures_per_minute, 10);
        assert_eq!(s.auth_failures_global_per_minute, 1000);
        assert_eq!(s.client_ip_header, None);
        let mut vars = HashMap::new();
        vars.insert("CLIENT_IP_HEADER".to_owned(), "X-Forwarded-For".to_owned());
        let s = Settings::from_vars(&vars).expect("valid");
        assert_eq!(s.client_ip_header.as_deref(), Some("x-forwarded-for"));
        vars.insert(
            "CLIENT_IP_HEADER".to_owned(),
            "X-Forwarded-For: 1".to_owned(),
        );
        let err = Settings::from_vars(&vars).expect_err("not a header name");
        assert_eq!(err.name, "CLIENT_IP_HEADER");
    }

    #[test]
    fn retention_windows_have_defaults_and_the_reply_window_outlives_redelivery() {
        let s = Settings::defaults();
        assert_eq!(s.outbox_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(
            s.processed_commands_retention,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(s.activity_retention, Duration::from_secs(400 * 86_400));
        assert_eq!(s.invite_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(s.gc_interval, Duration::from_secs(10));
        let mut vars = HashMap::new();
        vars.insert("OUTBOX_RETENTION".to_owned(), "90s".to_owned());
        assert_eq!(
            Settings::from_vars(&vars).expect("valid").outbox_retention,
            Duration::from_secs(90)
        );
        vars.insert("OUTBOX_RETENTION".to_owned(), "0d".to_owned());
        assert_eq!(
            Settings::from_vars(&vars).expect_err("zero").name,
            "OUTBOX_RETENTION"
        );
        vars.remove("OUTBOX_RETENTION");
        // 1 + 10 + 60 s of retries and a 25 s timeout: a minute of stored replies is too short.
        vars.insert("PROCESSED_COMMANDS_RETENTION".to_owned(), "1m".to_owned());
        let err = Settings::from_vars(&vars).expect_err("too short");
        assert_eq!(err.name, "PROCESSED_COMMANDS_RETENTION");
        vars.insert("PROCESSED_COMMANDS_RETENTION".to_owned(), "1h".to_owned());
        assert!(Settings::from_vars(&vars).is_ok());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let mut vars = HashMap::new();
        vars.insert("WORKER_PREFETCH".to_owned(), "lots".to_owned());
        let err = Settings::from_vars(&vars).expect_err("must fail");
        assert_eq!(err.name, "WORKER_PREFETCH");
    }

    #[test]
    fn secrets_do_not_print() {
        let mut vars = HashMap::new();
        vars.insert(
            "ROSTER_OPERATOR_TOKEN".to_owned(),
            "hunter2-operator".to_owned(),
        );
        vars.insert("SMTP_URL".to_owned(), "smtps://me:pa55word@mail".to_owned());
        let s = Settings::from_vars(&vars).expect("valid");
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pa55word"), "{printed}");
    }

    fn amqp(value: &str) -> Result<Settings, ConfigError> {
        let mut vars = HashMap::new();
        vars.insert("AMQP_URL".to_owned(), value.to_owned());
        Settings::from_vars(&vars)
    }

    #[test]
    fn amqp_url_is_one_node_or_several() {
        assert_eq!(crate::amqp::check_nodes("amqp://u:p@h:5672/%2f"), Ok(1));
        let list = " amqp://u:p@rc1:5681/%2f ,amqp://u:p@rc2:5682/%2f,\n\tamqps://u:p@rc3/%2f?heartbeat=15 ,";
        assert_eq!(crate::amqp::check_nodes(list), Ok(3));
        assert_eq!(
            crate::amqp::nodes(list),
            [
                "amqp://u:p@rc1:5681/%2f",
                "amqp://u:p@rc2:5682/%2f",
                "amqps://u:p@rc3/%2f?heartbeat=15"
            ]
        );
        let s = amqp(list).expect("three nodes");
        assert_eq!(s.amqp_url.expose(), list.trim());
        assert!(!format!("{s:?}").contains("u:p@"));
    }

    #[test]
    fn a_bad_amqp_node_is_named_by_position_without_its_password() {
        for (value, position) in [
            (
                "amqp://u:pw-one@rc1:5681/%2f,u:pw-two@rc2:5682",
                "node 2 of 2",
            ),
            (
                "amqp://u:pw-one@rc1:5681/%2f,http://u:pw-two@rc2/",
                "node 2 of 2",
            ),
            ("amqp://u:pw-one@rc1:99999/%2f", "node 1 of 1"),
            ("amqp://u:pw-one@rc1/%2f,,mailto:pw-two@x", "node 2 of 2"),
        ] {
            let err = amqp(value).expect_err(value);
            assert_eq!(err.name, "AMQP_URL");
            let text = err.to_string();
            assert!(text.contains(position), "{value}: {text}");
            assert!(
                !text.contains("pw-one") && !text.contains("pw-two"),
                "{value}: {text}"
            );
        }
        let err = amqp(" , ").expect_err("commas only");
        assert_eq!(err.to_string(), "invalid value for AMQP_URL: no broker URL");
    }

    #[test]
    fn quorum_group_size_is_the_brokers_unless_set() {
        assert_eq!(Settings::defaults().quorum_initial_group_size, None);
        let mut vars = HashMap::new();
        vars.insert("QUORUM_INITIAL_GROUP_SIZE".to_owned(), "5".to_owned());
        let s = Settings::from_vars(&vars).expect("valid");
        assert_eq!(s.quorum_initial_group_size, Some(5));
        vars.insert("QUORUM_INITIAL_GROUP_SIZE".to_owned(), "0".to_owned());
        let s = Settings::from_vars(&vars).expect("valid");
        assert_eq!(s.quorum_initial_group_size, None);
        vars.insert("QUORUM_INITIAL_GROUP_SIZE".to_owned(), "three".to_owned());
        let err = Settings::from_vars(&vars).expect_err("not a number");
        assert_eq!(err.name, "QUORUM_INITIAL_GROUP_SIZE");
    }

    #[test]
    fn session_key_is_base64_of_at_least_64_bytes() {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let mut vars = HashMap::new();
        vars.insert("ROSTER_SESSION_KEY".to_owned(), STANDARD.encode([7u8; 63]));
        let err = Settings::from_vars(&vars).expect_err("too short");
        assert_eq!(err.name, "ROSTER_SESSION_KEY");
        vars.insert("ROSTER_SESSION_KEY".to_owned(), "not base64!".to_owned());
        assert!(Settings::from_vars(&vars).is_err());
        vars.insert("ROSTER_SESSION_KEY".to_owned(), STANDARD.encode([7u8; 64]));
        let s = Settings::from_vars(&vars).expect("valid");
        assert!(s.session_key.is_some());
        assert!(!format!("{s:?}").contains(&STANDARD.encode([7u8; 64])));
    }

    #[test]
    fn secrets_key_is_base64_of_32_bytes_and_never_prints() {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let mut vars = HashMap::new();
        vars.insert("ROSTER_SECRETS_KEY".to_owned(), STANDARD.encode([5u8; 16]));
        let err = Settings::from_vars(&vars).expect_err("too short");
        assert_eq!(err.name, "ROSTER_SECRETS_KEY");
        vars.insert("ROSTER_SECRETS_KEY".to_owned(), STANDARD.encode([5u8; 32]));
        let s = Settings::from_vars(&vars).expect("valid");
        assert!(s.secrets_key.is_some());
        assert!(!format!("{s:?}").contains(&STANDARD.encode([5u8; 32])));
    }
}
