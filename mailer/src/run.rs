//! The mailer's process: its connections, health probes and consume loop over the events
//! the relay routes to it (those of people with an invite pending); each event is handled
//! in batches (`crate::batch`, `crate::handle`).

use crate::{handle::Shared, smtp::Smtp};
use anyhow::Context;
use common::Settings;
use common::amqp::batches::consume_in_batches;
use common::amqp::consume::{ConsumeOptions, Ended, Session, Shutdown, sessions};
use common::amqp::{Publisher, Topology, link::Link};
use common::shutdown::unless;
use lapin::Connection;
use lettre::message::Mailbox;
use sea_orm::DatabaseConnection;
use std::{
    future::Future,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};
use tokio::net::TcpListener;

pub struct Mailer {
    db: DatabaseConnection,
    link: Link,
    topology: Topology,
    prefetch: u16,
    /// Invites sent at once (`MAILER_CONCURRENCY`), over as many SMTP connections.
    concurrency: usize,
    /// Batches sent at once: each holds one database connection across its SMTP
    /// exchanges (its invite rows' locks).
    senders: usize,
    /// Most invites in one batch.
    batch_max: usize,
    smtp: Arc<Smtp>,
    from: Mailbox,
    public_url: String,
    invite_ttl: Duration,
    invite_key: Arc<[u8]>,
}

/// The longest one send may take, a connection made for it (TCP, TLS, AUTH) included.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Most invites one batch sends: a batch holds one database connection, and its locks
/// until its slowest mail is out, so more, smaller batches lose less to one slow
/// recipient. (Its mails that fail transiently are tried again off the sender.)
const BATCH_MAX: usize = 4;

/// How many invites the mailer sends at once, in how many batches of at most how many,
/// how many events it holds unacknowledged, and the database connections it opens.
#[derive(Debug, PartialEq)]
struct Sizes {
    concurrency: usize,
    senders: usize,
    batch_max: usize,
    prefetch: u16,
    connections: u32,
}

impl Sizes {
    /// Sends at once are `MAILER_CONCURRENCY`, in batches of at most `BATCH_MAX`, each
    /// batch over one database connection: sends waiting on slow SMTP answers used to
    /// hold a connection each, and a small pool held up the invites queued behind them
    /// (docs/performance.md, "Invites: the mailer's concurrency"). The prefetch keeps
    /// every send fed.
    fn of(settings: &Settings) -> Self {
        let concurrency = settings.mailer_concurrency.clamp(1, 64);
        let sends = usize::from(concurrency);
        let senders = sends.div_ceil(BATCH_MAX);
        Self {
            concurrency: sends,
            senders,
            batch_max: sends.div_ceil(senders),
            prefetch: settings.worker_prefetch.clamp(1, 64).max(concurrency),
            connections: settings
                .db_max_connections
                .max(u32::try_from(senders).unwrap_or(u32::MAX) + 1),
        }
    }
}

impl Mailer {
    /// Connects to PostgreSQL and RabbitMQ (retrying) and prepares the SMTP transport.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let Sizes {
            concurrency,
            senders,
            batch_max,
            prefetch,
            connections,
        } = Sizes::of(settings);
        let smtp = Arc::new(Smtp::from_url(
            settings.smtp_url.expose(),
            SMTP_TIMEOUT,
            concurrency,
        )?);
        let from: Mailbox = settings
            .mail_from
            .parse()
            .context("MAIL_FROM is not a valid mailbox")?;
        let db = common::db::connect(settings.database_url.expose(), connections).await;
        let link = Link::connect(settings.amqp_url.expose(), "roster-mailer").await;
        Ok(Self {
            db,
            link,
            topology: Topology::from_settings(settings),
            prefetch,
            concurrency,
            senders,
            batch_max,
            smtp,
            from,
            public_url: settings.public_url.clone(),
            invite_ttl: settings.invite_ttl,
            invite_key: invite_key(settings)?,
        })
    }

    /// Consumes `user.created` events until `shutdown` resolves.
    pub async fn run(
        self,
        health: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let consuming = Arc::new(AtomicBool::new(false));
        let probes = common::health::Probes {
            db: self.db.clone(),
            amqp: self.link.clone(),
            consuming: consuming.clone(),
            outbox_unreadable: None,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let health_server =
            common::shutdown::TaskGuard::new(common::health::serve(health, probes, stop_rx));
        tokio::pin!(shutdown);
        let events = Events {
            mailer: &self,
            consuming,
        };
        sessions(&self.link, shutdown.as_mut(), &events).await;
        let _ = stop_tx.send(true);
        let _ = health_server.join().await;
        self.link.close("mailer shutting down").await;
        common::shutdown::close_db(&self.db).await;
        tracing::info!("mailer stopped");
        Ok(())
    }
}

/// The mailer's session on one connection: its publisher (retries, dead letters) and the
/// senders.
struct Events<'a> {
    mailer: &'a Mailer,
    consuming: Arc<AtomicBool>,
}

impl Session for Events<'_> {
    async fn run(&self, conn: &Connection, mut shutdown: Shutdown<'_>) -> lapin::Result<Ended> {
        let m = self.mailer;
        let Some(publisher) = unless(shutdown.as_mut(), Publisher::open(conn)).await else {
            return Ok(Ended::Shutdown);
        };
        let publisher = publisher?;
        let watch = vec![publisher.channel().clone()];
        let shared = Arc::new(Shared {
            db: m.db.clone(),
            publisher,
            topology: m.topology.clone(),
            smtp: m.smtp.clone(),
            from: m.from.clone(),
            public_url: m.public_url.clone(),
            invite_ttl: m.invite_ttl,
            invite_key: m.invite_key.clone(),
            prefix: common::metrics::prefix_of(&m.topology),
        });
        consume_in_batches(
            conn,
            &m.topology,
            ConsumeOptions {
                queue: &m.topology.mailer_queue(),
                tag_prefix: "mailer",
                prefetch: m.prefetch,
                concurrency: m.concurrency,
                consuming: self.consuming.clone(),
                watch,
            },
            shutdown,
            crate::batch::start(shared, m.senders, m.batch_max),
            "senders",
        )
        .await
    }
}

/// The key invite links are derived from: `ROSTER_INVITE_KEY`, else a random one for this
/// process (a resend after a restart then carries a new link).
fn invite_key(settings: &Settings) -> anyhow::Result<Arc<[u8]>> {
    if let Some(key) = &settings.invite_key {
        return Ok(common::config::invite_key(key.expose())?.into());
    }
    tracing::warn!(
        "ROSTER_INVITE_KEY is not set: invite links are derived from a random key made at \
         start, so an invite sent again after a restart carries a new link"
    );
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    Ok(key.to_vec().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_go_in_batches_of_at_most_four_each_over_one_connection() {
        let mut settings = Settings::defaults();
        let sizes = |settings: &Settings| {
            let s = Sizes::of(settings);
            (
                s.concurrency,
                s.senders,
                s.batch_max,
                s.prefetch,
                s.connections,
            )
        };
        // (sends at once, batches at once, batch bound, prefetch, database connections)
        assert_eq!(sizes(&settings), (15, 4, 4, 64, 16));
        settings.mailer_concurrency = 4;
        settings.worker_prefetch = 2;
        assert_eq!(sizes(&settings), (4, 1, 4, 4, 16));
        settings.mailer_concurrency = 32;
        assert_eq!(sizes(&settings), (32, 8, 4, 32, 16));
        settings.mailer_concurrency = 500;
        settings.db_max_connections = 4;
        assert_eq!(
            sizes(&settings),
            (64, 16, 4, 64, 17),
            "clamped; the pool grows to fit"
        );
    }
}
