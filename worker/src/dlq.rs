//! The operator's dead-letter tooling, `worker dlq list|show|replay|purge`
//! (docs/dead-letters.md): reads `<p>.dead-letter` without consuming it, shows one
//! message, republishes messages to their original route with publisher confirms (acking
//! each here only after its confirm), and purges.
//!
//! Reading never removes anything: messages are taken with `basic.get` and not acked, then
//! returned. How they go back matters, and RabbitMQ does not put them back where they
//! were (3.10's quorum queue, checked by `tests/e2e/dead_letters.rs`):
//! - returned messages go to the *back* of the queue, not the head;
//! - closing a channel returns its unacked messages in no useful order once there are more
//!   than 32 of them (an Erlang map's hash order), and more than 32 returns in flight at
//!   once are applied out of order too.
//!
//! So every read takes *all* the messages that were ready when it started, wanted or not,
//! and returns them one `basic.nack` (requeue) at a time in the order taken, in batches
//! that are each awaited: they end up in their original order, behind anything
//! dead-lettered during the read. Each return also counts as a delivery: the message gains
//! or bumps an `x-delivery-count` header, which `replay` drops.

use chrono::{DateTime, SecondsFormat, Utc};
use common::amqp::{PublishError, Publisher, Topology};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueuePurgeOptions,
    },
    types::{AMQPValue, DeliveryTag, FieldTable},
};
use serde_json::Value;
use std::{fmt, io::Write, time::Duration};

/// Why the worker (or mailer) dead-lettered a message (`common::amqp::dead_letter`).
pub const ERROR_HEADER: &str = "x-roster-error";
/// The exchange it was delivered from when it failed (`""` after a broker-side retry).
pub const ORIGINAL_EXCHANGE_HEADER: &str = "x-roster-original-exchange";
/// Its routing key then.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-roster-original-routing-key";
/// When the worker dead-lettered it (RFC 3339).
pub const FAILED_AT_HEADER: &str = "x-roster-failed-at";
/// What RabbitMQ adds when it dead-letters a message itself (e.g. the delivery limit).
pub const DEATH_HEADER: &str = "x-death";

/// Returned messages in flight at once (RabbitMQ's quorum queue client reorders above 32).
const RETURN_BATCH: usize = 16;

/// How many messages `list` shows unless told otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 100;

pub const USAGE: &str = "usage: worker dlq list [--limit N] | show <message-id> | replay <message-id>|--all | purge --yes";

/// Why a `dlq` subcommand did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("cannot reach RabbitMQ: {0}")]
    Connect(String),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    /// `what` names the message and its route.
    #[error("republishing {what}: {source}")]
    Republish { what: String, source: PublishError },
    #[error("no dead-lettered message has the id {0:?} (see `worker dlq list`)")]
    NotFound(String),
    #[error(
        "purge deletes every dead-lettered message for good: run `worker dlq list` first, \
         then `worker dlq purge --yes`"
    )]
    PurgeNotConfirmed,
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// One `worker dlq …` invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DlqCommand {
    List { limit: usize },
    Show { id: String },
    Replay(Selection),
    Purge { confirmed: bool },
}

/// Which messages `replay` republishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every message with this id (copies of one command are replayed together).
    Id(String),
    All,
}

impl DlqCommand {
    /// Parses the arguments after `dlq`.
    pub fn parse<I, S>(args: I) -> Result<Self, DlqError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        let usage = |what: &str| Err(DlqError::Usage(what.to_owned()));
        match (args.first().map(String::as_str), rest.as_slice()) {
            (Some("list"), []) => Ok(Self::List {
                limit: DEFAULT_LIST_LIMIT,
            }),
            (Some("list"), ["--limit", n]) => parse_limit(n),
            (Some("list"), [flag]) if flag.starts_with("--limit=") => {
                parse_limit(&flag["--limit=".len()..])
            }
            (Some("show"), [id]) if !id.starts_with("--") => Ok(Self::Show {
                id: (*id).to_owned(),
            }),
            (Some("replay"), ["--all"]) => Ok(Self::Replay(Selection::All)),
            (Some("replay"), [id]) if !id.starts_with("--") => {
                Ok(Self::Replay(Selection::Id((*id).to_owned())))
            }
            (Some("purge"), []) => Ok(Self::Purge { confirmed: false }),
            (Some("purge"), ["--yes"]) => Ok(Self::Purge { confirmed: true }),
            (Some(cmd @ ("list" | "show" | "replay" | "purge")), _) => {
                usage(&format!("unexpected arguments to `dlq {cmd}`"))
            }
            (Some(other), _) => usage(&format!("unknown dlq subcommand {other:?}")),
            (None, _) => usage("missing dlq subcommand"),
        }
    }
}

fn parse_limit(n: &str) -> Result<DlqCommand, DlqError> {
    match n.parse::<usize>() {
        Ok(limit) if limit > 0 => Ok(DlqCommand::List { limit }),
        _ => Err(DlqError::Usage(format!(
            "--limit takes a positive number, not {n:?}"
        ))),
    }
}

/// Connects once (no endless retries: an operator at a terminal wants an answer).
pub async fn connect(url: &str) -> Result<Connection, DlqError> {
    // `AMQP_URL` may name several nodes of a cluster: the first that answers is used.
    let mut last = "no broker URL".to_owned();
    for node in common::amqp::nodes(url) {
        let props = ConnectionProperties::default().with_connection_name("roster-dlq".into());
        match tokio::time::timeout(Duration::from_secs(10), Connection::connect(node, props)).await
        {
            Ok(Ok(conn)) => return Ok(conn),
            // The broker's refusal may repeat the URL: never its password.
            Ok(Err(e)) => last = common::amqp::redact(&e),
            Err(_) => last = "no answer within 10 s".into(),
        }
    }
    Err(DlqError::Connect(last))
}

/// Runs one subcommand, writing what the operator sees to `out`.
pub async fn run(
    conn: &Connection,
    topology: &Topology,
    cmd: &DlqCommand,
    out: &mut impl Write,
) -> Result<(), DlqError> {
    match cmd {
        DlqCommand::List { limit } => write_listing(out, &list(conn, topology, *limit).await?)?,
        DlqCommand::Show { id } => match show(conn, topology, id).await? {
            Some(shown) => write_shown(out, &shown)?,
            None => return Err(DlqError::NotFound(id.clone())),
        },
        DlqCommand::Replay(selection) => {
            let report = replay(conn, topology, selection).await?;
            if let Selection::Id(id) = selection
                && report.replayed.is_empty()
                && report.skipped.is_empty()
            {
                return Err(DlqError::NotFound(id.clone()));
            }
            write_replay(out, &report)?;
        }
        DlqCommand::Purge { confirmed: false } => return Err(DlqError::PurgeNotConfirmed),
        DlqCommand::Purge { confirmed: true } => {
            let n = purge(conn, topology).await?;
            writeln!(
                out,
                "purged {n} message(s) from {}",
                topology.dead_letter_queue()
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// What one dead-lettered message says about itself (pure; unit-tested below).

/// Where a message was going before it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub exchange: String,
    pub routing_key: String,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exchange = if self.exchange.is_empty() {
            "(default)"
        } else {
            &self.exchange
        };
        write!(f, "{exchange} → {}", self.routing_key)
    }
}

/// The summary of one dead-lettered message: one line of `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// AMQP `message_id`, else the envelope's `id`, else `body-<hash>`.
    pub id: String,
    /// AMQP `type`, else the envelope's `type`.
    pub kind: Option<String>,
    pub org_id: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub route: Option<Route>,
}

impl DeadLetter {
    pub fn of(props: &BasicProperties, body: &[u8]) -> Self {
        let empty = FieldTable::default();
        let headers = props.headers().as_ref().unwrap_or(&empty);
        let envelope = serde_json::from_slice::<Value>(body).ok();
        let field = |name: &str| {
            envelope
                .as_ref()
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: message_id(props.message_id().as_ref().map(|s| s.as_str()), body),
            kind: props
                .kind()
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .or_else(|| field("type")),
            org_id: field("org_id"),
            failed_at: failed_at(headers),
            reason: reason(headers),
            route: original_route(headers),
        }
    }
}

/// The id an operator names a message by: the AMQP `message_id`, else the envelope's `id`,
/// else a short, stable hash of the body.
pub fn message_id(amqp_message_id: Option<&str>, body: &[u8]) -> String {
    if let Some(id) = amqp_message_id.filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    let envelope_id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
    envelope_id
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
        .unwrap_or_else(|| format!("body-{:016x}", fnv1a(body)))
}

/// FNV-1a (64 bit): stable across builds and Rust versions, unlike `DefaultHasher`. An
/// identifier for the operator to type, not a security property.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why it failed: `x-roster-error`, else a summary of RabbitMQ's `x-death`.
pub fn reason(headers: &FieldTable) -> String {
    if let Some(error) = header_str(headers, ERROR_HEADER) {
        return one_line(&error);
    }
    let deaths: Vec<String> = deaths(headers)
        .iter()
        .map(|death| {
            let reason = table_str(death, "reason").unwrap_or_else(|| "unknown".into());
            let count = death.inner().get("count").and_then(as_integer).unwrap_or(1);
            match table_str(death, "queue") {
                Some(queue) => format!("{reason} ×{count} (queue {queue})"),
                None => format!("{reason} ×{count}"),
            }
        })
        .collect();
    if deaths.is_empty() {
        "unknown (neither x-roster-error nor x-death is set)".into()
    } else {
        format!("x-death: {}", deaths.join("; "))
    }
}

/// Where it was going: `x-roster-original-*`, else the first `x-death` entry's exchange and
/// first routing key.
pub fn original_route(headers: &FieldTable) -> Option<Route> {
    if let (Some(exchange), Some(routing_key)) = (
        header_str(headers, ORIGINAL_EXCHANGE_HEADER),
        header_str(headers, ORIGINAL_ROUTING_KEY_HEADER),
    ) {
        return Some(Route {
            exchange,
            routing_key,
        });
    }
    let first = deaths(headers).into_iter().next()?;
    let exchange = table_str(first, "exchange")?;
    let routing_key = match first.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(as_string)?,
        _ => return None,
    };
    Some(Route {
        exchange,
        routing_key,
    })
}

/// When it failed: `x-roster-failed-at`, else the first `x-death` entry's `time`.
pub fn failed_at(headers: &FieldTable) -> Option<DateTime<Utc>> {
    if let Some(at) = header_str(headers, FAILED_AT_HEADER) {
        return DateTime::parse_from_rfc3339(&at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
    }
    match deaths(headers).first()?.inner().get("time")? {
        AMQPValue::Timestamp(secs) => DateTime::from_timestamp(i64::try_from(*secs).ok()?, 0),
        _ => None,
    }
}

/// A time as `list` and `show` print it: RFC 3339, to the second.
fn to_second(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The properties a replayed message is published with: the original ones, minus what
/// dead-lettering and the dead-letter queue added.
pub fn replay_properties(props: &BasicProperties) -> BasicProperties {
    let Some(headers) = props.headers() else {
        return props.clone();
    };
    let kept: std::collections::BTreeMap<_, _> = headers
        .inner()
        .iter()
        .filter(|(k, _)| !is_dead_letter_header(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    props.clone().with_headers(FieldTable::from(kept))
}

fn is_dead_letter_header(name: &str) -> bool {
    name.starts_with("x-roster-")
        || name == DEATH_HEADER
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
        || name == "x-delivery-count"
}

fn deaths(headers: &FieldTable) -> Vec<&FieldTable> {
    match headers.inner().get(DEATH_HEADER) {
        Some(AMQPValue::FieldArray(entries)) => entries
            .as_slice()
            .iter()
            .filter_map(|e| match e {
                AMQPValue::FieldTable(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn header_str(headers: &FieldTable, name: &str) -> Option<String> {
    headers.inner().get(name).and_then(as_string)
}

fn table_str(table: &FieldTable, name: &str) -> Option<String> {
    table.inner().get(name).and_then(as_string)
}

fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_integer(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

fn timestamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map_or_else(
            || secs.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A header value as an operator reads it.
pub fn render_value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::DecimalValue(d) => format!("{}e-{}", d.value, d.scale),
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Timestamp(t) => timestamp(*t),
        AMQPValue::FieldArray(a) => format!(
            "[{}]",
            a.as_slice()
                .iter()
                .map(render_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AMQPValue::FieldTable(t) => format!(
            "{{{}}}",
            t.inner()
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AMQPValue::ByteArray(b) => hex(b.as_slice()),
        AMQPValue::Void => "(void)".into(),
        other => as_integer(other).map_or_else(|| format!("{other:?}"), |n| n.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Talking to the broker.

/// A channel on which dead letters are taken without acking, and then returned one by
/// one in the order they were taken (see the module doc).
struct Peek {
    channel: Channel,
    queue: String,
    /// Ready messages when it opened. Every read takes exactly these, so a message
    /// dead-lettered again while we work (a replayed one that still fails) is not met twice.
    at_start: u32,
    taken: u32,
    /// Delivery tags not acked, in the order taken.
    unacked: Vec<DeliveryTag>,
}

impl Peek {
    async fn open(conn: &Connection, topology: &Topology) -> Result<Self, DlqError> {
        let channel = conn.create_channel().await?;
        topology.declare(&channel).await?;
        let queue = topology.dead_letter_queue();
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            channel,
            queue,
            at_start: declared.message_count(),
            taken: 0,
            unacked: Vec::new(),
        })
    }

    /// The next message of the snapshot, or `None` once all of it has been taken.
    async fn next(&mut self) -> Result<Option<Delivery>, DlqError> {
        if self.taken >= self.at_start {
            return Ok(None);
        }
        let got = self
            .channel
            .basic_get(
                self.queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?;
        self.taken += 1;
        Ok(got.map(|m| {
            self.unacked.push(m.delivery.delivery_tag);
            m.delivery
        }))
    }

    /// Removes a message from the queue for good.
    async fn ack(&mut self, d: &Delivery) -> Result<(), DlqError> {
        d.ack(BasicAckOptions::default()).await?;
        self.unacked.retain(|tag| *tag != d.delivery_tag);
        Ok(())
    }

    /// Returns what was not acked, one `basic.nack` (requeue) at a time in the order taken
    /// — closing the channel with them unacked returns them in hash order once there are
    /// more than 32 — whatever `result` was.
    ///
    /// The quorum queue applies returns asynchronously, and once more than 32 are in
    /// flight it stashes the rest and applies them out of order. So they are sent in
    /// batches, each awaited until the queue has taken it back — which also means the next
    /// command does not count, read and return only some of them and rotate the queue.
    async fn close<T>(self, result: Result<T, DlqError>) -> Result<T, DlqError> {
        let returned = self.return_unacked().await;
        let closed = self
            .channel
            .close(200, "dlq: messages returned".into())
            .await;
        let value = result?;
        returned?;
        closed?;
        Ok(value)
    }
}

impl Peek {
    async fn return_unacked(&self) -> lapin::Result<()> {
        let mut sent = 0;
        for batch in self.unacked.chunks(RETURN_BATCH) {
            for tag in batch {
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                self.channel.basic_nack(*tag, requeue).await?;
            }
            sent += batch.len();
            self.wait_until_ready(sent).await?;
        }
        Ok(())
    }

    /// Waits (10 s at most) until the queue holds at least `n` ready messages: as every
    /// message was taken, those are the ones returned (or newer ones, which is harmless).
    async fn wait_until_ready(&self, n: usize) -> lapin::Result<()> {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let ready = self
                .channel
                .queue_declare(
                    self.queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?
                .message_count();
            if ready as usize >= n {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            returned = n,
            "the dead-letter queue has not taken back every message read yet"
        );
        Ok(())
    }
}

/// Ready messages in the dead-letter queue (those being read by someone are not counted).
pub async fn depth(conn: &Connection, topology: &Topology) -> Result<u32, DlqError> {
    let peek = Peek::open(conn, topology).await?;
    let n = peek.at_start;
    peek.close(Ok(n)).await
}

/// What `list` found.
#[derive(Clone, Debug)]
pub struct Listing {
    pub queue: String,
    /// Ready messages in the queue when it was read.
    pub total: u32,
    /// The `limit` oldest of them (by failure time), oldest first.
    pub messages: Vec<DeadLetter>,
}

/// The `limit` oldest dead letters, left in the queue in their order.
pub async fn list(
    conn: &Connection,
    topology: &Topology,
    limit: usize,
) -> Result<Listing, DlqError> {
    let mut peek = Peek::open(conn, topology).await?;
    let read = async {
        let mut messages = Vec::new();
        while let Some(d) = peek.next().await? {
            messages.push(DeadLetter::of(&d.properties, &d.data));
        }
        // Stable: messages without a time keep their queue order, first.
        messages.sort_by_key(|m| m.failed_at);
        messages.truncate(limit);
        Ok(messages)
    }
    .await;
    let (queue, total) = (peek.queue.clone(), peek.at_start);
    Ok(Listing {
        queue,
        total,
        messages: peek.close(read).await?,
    })
}

/// One dead letter in full.
#[derive(Clone, Debug)]
pub struct Shown {
    pub summary: DeadLetter,
    /// How many messages in the queue carry this id (`replay <id>` replays them all).
    pub copies: usize,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

/// The first dead letter with this id, left in the queue.
pub async fn show(
    conn: &Connection,
    topology: &Topology,
    id: &str,
) -> Result<Option<Shown>, DlqError> {
    let mut peek = Peek::open(conn, topology).await?;
    let found = async {
        let (mut found, mut copies) = (None, 0);
        while let Some(d) = peek.next().await? {
            let summary = DeadLetter::of(&d.properties, &d.data);
            if summary.id != id {
                continue;
            }
            copies += 1;
            if found.is_none() {
                found = Some((summary, d.properties, d.data));
            }
        }
        Ok(found.map(|(summary, properties, body)| Shown {
            summary,
            copies,
            properties,
            body,
        }))
    }
    .await;
    peek.close(found).await
}

/// What `replay` did.
#[derive(Clone, Debug, Default)]
pub struct ReplayReport {
    /// Republished (confirmed) and removed from the dead-letter queue.
    pub replayed: Vec<(String, Route)>,
    /// Left in the dead-letter queue, with why.
    pub skipped: Vec<(String, String)>,
}

/// Republishes the selected dead letters to their original route, each confirmed by the
/// broker before it is acked (removed) here. A crash in between leaves it in both places;
/// replaying it again is harmless, because the worker applies a command id once.
pub async fn replay(
    conn: &Connection,
    topology: &Topology,
    selection: &Selection,
) -> Result<ReplayReport, DlqError> {
    let publisher = Publisher::open(conn).await?;
    let mut peek = Peek::open(conn, topology).await?;
    let done = async {
        let mut report = ReplayReport::default();
        while let Some(d) = peek.next().await? {
            let summary = DeadLetter::of(&d.properties, &d.data);
            if matches!(selection, Selection::Id(id) if *id != summary.id) {
                continue; // not acked: returned when the channel closes
            }
            match replay_one(&publisher, topology, &d, &summary).await? {
                Ok(route) => {
                    // Only now, with the broker's confirm in hand, is it removed here.
                    peek.ack(&d).await?;
                    report.replayed.push((summary.id, route));
                }
                Err(why) => report.skipped.push((summary.id, why)),
            }
        }
        Ok(report)
    }
    .await;
    let _ = publisher
        .channel()
        .close(200, "dlq: replay done".into())
        .await;
    peek.close(done).await
}

/// Republishes one message with confirms: `Ok(Ok(route))` confirmed, `Ok(Err(why))` not
/// republished (leave it), `Err` when the broker failed.
async fn replay_one(
    publisher: &Publisher,
    topology: &Topology,
    d: &Delivery,
    summary: &DeadLetter,
) -> Result<Result<Route, String>, DlqError> {
    let Some(route) = summary.route.clone() else {
        return Ok(Err("no original route in its headers".into()));
    };
    if route.exchange == topology.dead_letter_exchange() {
        return Ok(Err(format!(
            "its original route {route} is the dead-letter exchange itself"
        )));
    }
    let from_integration = d
        .properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key("x-roster-credential-hint"));
    if from_integration {
        // Its credential was taken out when it was dead-lettered, and Roster will not
        // republish another service's command as its own.
        return Ok(Err(
            "an integration's command (its credential is not kept): the integration must \
             publish it again"
                .into(),
        ));
    }
    let published = publisher
        .publish_raw(
            &route.exchange,
            &route.routing_key,
            &d.data,
            replay_properties(&d.properties),
            true,
        )
        .await;
    match published {
        Ok(()) => Ok(Ok(route)),
        Err(e @ (PublishError::Nacked | PublishError::Unroutable)) => {
            Ok(Err(format!("{route} did not accept it: {e}")))
        }
        Err(source) => Err(DlqError::Republish {
            what: format!("{} to {route}", summary.id),
            source,
        }),
    }
}

/// Deletes every ready message in the dead-letter queue; returns how many.
pub async fn purge(conn: &Connection, topology: &Topology) -> Result<u32, DlqError> {
    let channel = conn.create_channel().await?;
    topology.declare(&channel).await?;
    let purged = channel
        .queue_purge(
            topology.dead_letter_queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await;
    let _ = channel.close(200, "dlq: purged".into()).await;
    Ok(purged?)
}

// ---------------------------------------------------------------------------------------
// What the operator sees.

/// `list`: a header and one aligned line per message.
pub fn write_listing(out: &mut impl Write, listing: &Listing) -> std::io::Result<()> {
    if listing.messages.is_empty() {
        return writeln!(out, "{} is empty", listing.queue);
    }
    let dash = || "-".to_owned();
    let rows: Vec<[String; 6]> = listing
        .messages
        .iter()
        .map(|m| {
            [
                m.id.clone(),
                m.kind.clone().unwrap_or_else(dash),
                m.org_id.clone().unwrap_or_else(dash),
                m.failed_at.as_ref().map_or_else(dash, to_second),
                m.route.as_ref().map_or_else(dash, Route::to_string),
                m.reason.clone(),
            ]
        })
        .collect();
    let header = ["ID", "TYPE", "ORG", "FAILED AT", "ROUTE", "REASON"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            let pad = w - cell.chars().count();
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 2));
        }
        line.push_str(&row[5]);
        writeln!(out, "{line}")?;
    }
    let shown = listing.messages.len();
    if (shown as u64) < u64::from(listing.total) {
        writeln!(
            out,
            "{shown} of {} dead-lettered message(s) in {} (oldest first; --limit N for more)",
            listing.total, listing.queue
        )
    } else {
        writeln!(
            out,
            "{shown} dead-lettered message(s) in {} (oldest first)",
            listing.queue
        )
    }
}

/// `show`: the summary, every property and header, and the body.
pub fn write_shown(out: &mut impl Write, shown: &Shown) -> std::io::Result<()> {
    let s = &shown.summary;
    let dash = || "-".to_owned();
    writeln!(out, "message    {}", s.id)?;
    if shown.copies > 1 {
        writeln!(
            out,
            "copies     {} in the queue carry this id",
            shown.copies
        )?;
    }
    writeln!(out, "type       {}", s.kind.clone().unwrap_or_else(dash))?;
    writeln!(out, "org        {}", s.org_id.clone().unwrap_or_else(dash))?;
    writeln!(
        out,
        "failed at  {}",
        s.failed_at.as_ref().map_or_else(dash, to_second)
    )?;
    writeln!(
        out,
        "route      {}",
        s.route.as_ref().map_or_else(dash, Route::to_string)
    )?;
    writeln!(out, "reason     {}", s.reason)?;
    writeln!(out, "properties:")?;
    for (name, value) in properties(&shown.properties) {
        writeln!(out, "  {name}: {value}")?;
    }
    writeln!(out, "headers:")?;
    if let Some(headers) = shown.properties.headers() {
        for (name, value) in headers {
            writeln!(out, "  {name}: {}", render_value(value))?;
        }
    }
    let body = &shown.body;
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            redact_credential(&mut json);
            writeln!(out, "body ({} bytes, JSON):", body.len())?;
            let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
            writeln!(out, "{pretty}")
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => writeln!(out, "body ({} bytes, not JSON):\n{text}", body.len()),
            Err(_) => writeln!(
                out,
                "body ({} bytes, binary, hex):\n{}",
                body.len(),
                hex(body)
            ),
        },
    }
}

/// A credential is never printed (the worker takes it out of what it dead-letters; a
/// message the broker dead-lettered itself may still carry one).
fn redact_credential(envelope: &mut Value) {
    if let Some(c) = envelope.get_mut("credential").filter(|c| !c.is_null()) {
        *c = Value::String("[redacted]".into());
    }
}

fn properties(p: &BasicProperties) -> Vec<(&'static str, String)> {
    let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
    [
        ("message_id", s(p.message_id())),
        ("type", s(p.kind())),
        ("content_type", s(p.content_type())),
        ("content_encoding", s(p.content_encoding())),
        ("delivery_mode", p.delivery_mode().map(|m| m.to_string())),
        ("priority", p.priority().map(|m| m.to_string())),
        ("correlation_id", s(p.correlation_id())),
        ("reply_to", s(p.reply_to())),
        ("expiration", s(p.expiration())),
        ("timestamp", p.timestamp().map(timestamp)),
        ("user_id", s(p.user_id())),
        ("app_id", s(p.app_id())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

/// `replay`: how many, and what was left behind.
pub fn write_replay(out: &mut impl Write, report: &ReplayReport) -> std::io::Result<()> {
    for (id, route) in &report.replayed {
        writeln!(out, "replayed {id} → {route}")?;
    }
    for (id, why) in &report.skipped {
        writeln!(out, "skipped  {id}: {why} (left in the dead-letter queue)")?;
    }
    writeln!(
        out,
        "{} message(s) replayed, {} skipped",
        report.replayed.len(),
        report.skipped.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString};

    fn ls(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    /// What RabbitMQ 3.10 puts on a message a quorum queue dead-letters at its delivery limit.
    fn x_death() -> FieldTable {
        let death = table(&[
            ("count", AMQPValue::LongLongInt(1)),
            ("reason", ls("delivery_limit")),
            ("queue", ls("roster.commands")),
            ("time", AMQPValue::Timestamp(1_700_000_000)),
            ("exchange", ls("roster.commands")),
            (
                "routing-keys",
                AMQPValue::FieldArray(FieldArray::from(vec![ls("user.create")])),
            ),
        ]);
        table(&[
            (
                DEATH_HEADER,
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
            ),
            ("x-first-death-reason", ls("delivery_limit")),
            ("x-correlation-id", ls("corr-1")),
        ])
    }

    fn roster_headers() -> FieldTable {
        table(&[
            (
                ERROR_HEADER,
                ls("undecodable message: unknown command type\n\"user.explode\""),
            ),
            (ORIGINAL_EXCHANGE_HEADER, ls("roster.commands")),
            (ORIGINAL_ROUTING_KEY_HEADER, ls("user.explode")),
            (FAILED_AT_HEADER, ls("2026-03-01T10:20:30.123456789+00:00")),
            ("x-correlation-id", ls("corr-2")),
            ("x-delivery-count", AMQPValue::LongInt(2)),
        ])
    }

    #[test]
    fn the_reason_is_the_workers_error_on_one_line() {
        assert_eq!(
            reason(&roster_headers()),
            "undecodable message: unknown command type \"user.explode\""
        );
    }

    #[test]
    fn without_the_workers_error_the_reason_summarises_x_death() {
        assert_eq!(
            reason(&x_death()),
            "x-death: delivery_limit ×1 (queue roster.commands)"
        );
        assert!(reason(&FieldTable::default()).starts_with("unknown"));
    }

    #[test]
    fn the_route_comes_from_the_workers_headers_else_from_x_death() {
        let expected = |key: &str| {
            Some(Route {
                exchange: "roster.commands".into(),
                routing_key: key.into(),
            })
        };
        assert_eq!(original_route(&roster_headers()), expected("user.explode"));
        assert_eq!(original_route(&x_death()), expected("user.create"));
        assert_eq!(original_route(&FieldTable::default()), None);
        // Half of the worker's pair is not a route.
        let half = table(&[(ORIGINAL_EXCHANGE_HEADER, ls("roster.commands"))]);
        assert_eq!(original_route(&half), None);
    }

    #[test]
    fn the_default_exchange_is_a_route_too() {
        let h = table(&[
            (ORIGINAL_EXCHANGE_HEADER, ls("")),
            (ORIGINAL_ROUTING_KEY_HEADER, ls("roster.commands")),
        ]);
        let route = original_route(&h).expect("a route");
        assert_eq!(route.exchange, "");
        assert_eq!(route.to_string(), "(default) → roster.commands");
    }

    #[test]
    fn failure_time_is_shown_to_the_second() {
        assert_eq!(
            failed_at(&roster_headers())
                .as_ref()
                .map(to_second)
                .as_deref(),
            Some("2026-03-01T10:20:30Z")
        );
        assert_eq!(
            failed_at(&x_death()).as_ref().map(to_second).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(failed_at(&FieldTable::default()), None);
    }

    #[test]
    fn the_id_is_the_message_id_else_the_envelopes_else_a_stable_hash() {
        let envelope = br#"{"id":"0192f0c4-aaaa","type":"user.create"}"#;
        assert_eq!(message_id(Some("m-1"), envelope), "m-1");
        assert_eq!(message_id(None, envelope), "0192f0c4-aaaa");
        assert_eq!(message_id(Some(""), envelope), "0192f0c4-aaaa");
        let junk = message_id(None, b"not json");
        assert_eq!(junk, message_id(None, b"not json"), "stable");
        assert_ne!(junk, message_id(None, b"not json!"));
        assert!(junk.starts_with("body-") && junk.len() == "body-".len() + 16);
        // FNV-1a's published test vector, so the ids never change between builds.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_summary_falls_back_to_the_envelope() {
        let body = br#"{"id":"e-1","type":"user.explode","org_id":"o-1","schema_version":1}"#;
        let props = BasicProperties::default().with_headers(roster_headers());
        let dl = DeadLetter::of(&props, body);
        assert_eq!(dl.id, "e-1");
        assert_eq!(dl.kind.as_deref(), Some("user.explode"));
        assert_eq!(dl.org_id.as_deref(), Some("o-1"));
        let typed = props.with_type("user.create".into());
        assert_eq!(
            DeadLetter::of(&typed, body).kind.as_deref(),
            Some("user.create")
        );
    }

    #[test]
    fn show_never_prints_a_credential() {
        let mut env = serde_json::json!({"id": "e-1", "credential": "rst_int_sesame"});
        redact_credential(&mut env);
        assert_eq!(env["credential"], "[redacted]");
        let mut none = serde_json::json!({"id": "e-2"});
        redact_credential(&mut none);
        assert!(none.get("credential").is_none());
    }

    #[test]
    fn replay_drops_only_what_dead_lettering_added() {
        let mut h = roster_headers();
        for (k, v) in x_death().inner() {
            h.insert(k.clone(), v.clone());
        }
        let props = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_reply_to("r".into())
            .with_headers(h);
        let replayed = replay_properties(&props);
        let kept: Vec<&str> = replayed
            .headers()
            .as_ref()
            .expect("headers")
            .inner()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(kept, ["x-correlation-id"]);
        assert_eq!(replayed.message_id(), props.message_id());
        assert_eq!(replayed.reply_to(), props.reply_to());
    }

    #[test]
    fn arguments_parse_into_subcommands() {
        let p = |args: &[&str]| DlqCommand::parse(args);
        assert_eq!(
            p(&["list"]).ok(),
            Some(DlqCommand::List {
                limit: DEFAULT_LIST_LIMIT
            })
        );
        assert_eq!(
            p(&["list", "--limit", "5"]).ok(),
            Some(DlqCommand::List { limit: 5 })
        );
        assert_eq!(
            p(&["list", "--limit=7"]).ok(),
            Some(DlqCommand::List { limit: 7 })
        );
        assert!(p(&["list", "--limit", "0"]).is_err());
        assert_eq!(
            p(&["show", "m-1"]).ok(),
            Some(DlqCommand::Show { id: "m-1".into() })
        );
        assert_eq!(
            p(&["replay", "--all"]).ok(),
            Some(DlqCommand::Replay(Selection::All))
        );
        assert_eq!(
            p(&["replay", "m-1"]).ok(),
            Some(DlqCommand::Replay(Selection::Id("m-1".into())))
        );
        assert_eq!(
            p(&["purge"]).ok(),
            Some(DlqCommand::Purge { confirmed: false })
        );
        assert_eq!(
            p(&["purge", "--yes"]).ok(),
            Some(DlqCommand::Purge { confirmed: true })
        );
        for bad in [
            &[][..],
            &["replay"][..],
            &["show"][..],
            &["purge", "-y"][..],
            &["drop"][..],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_listing_aligns_its_columns() {
        let dl = |id: &str, reason: &str| DeadLetter {
            id: id.into(),
            kind: Some("user.create".into()),
            org_id: None,
            failed_at: DateTime::from_timestamp(1_772_360_430, 0),
            reason: reason.into(),
            route: Some(Route {
                exchange: "roster.commands".into(),
                routing_key: "user.create".into(),
            }),
        };
        let listing = Listing {
            queue: "roster.dead-letter".into(),
            total: 3,
            messages: vec![dl("a", "first"), dl("longer-id", "second")],
        };
        let mut out = Vec::new();
        write_listing(&mut out, &listing).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let at = |line: &str| line.find("user.create");
        assert_eq!(at(lines[1]), at(lines[2]), "{text}");
        assert!(lines[3].starts_with("2 of 3 dead-lettered"), "{text}");
    }
}
