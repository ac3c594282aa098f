//! The operator's dead-letter tooling, `worker dlq list|show|replay|purge`
//! (docs/dead-letters.md): the command line (`cli`), what a dead-lettered message says
//! about itself (`message`, over `headers`), reading, republishing and purging the queue (`broker`), and
//! what the operator sees (`render`). `run` ties them together for one subcommand.

mod broker;
mod cli;
mod headers;
mod message;
mod render;

pub use broker::{Listing, ReplayReport, Shown, connect, depth, list, purge, replay, show};
pub use cli::{DEFAULT_LIST_LIMIT, DlqCommand, Selection};
pub use message::{
    DEATH_HEADER, DeadLetter, ERROR_HEADER, FAILED_AT_HEADER, ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER, Route, failed_at, message_id, original_route, reason,
    replay_properties,
};
pub use render::{render_value, write_listing, write_replay, write_shown};

use common::amqp::{PublishError, Topology};
use lapin::Connection;
use std::io::Write;

/// Why a `dlq` subcommand did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The command line was not understood, or asked for `--help` (clap's message, with
    /// the usage).
    #[error("{0}")]
    Usage(Box<clap::Error>),
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
