//! The worker's process: the consume loop hands each delivery to the appliers (`batch`:
//! decode → authorise → apply in batches, with in-process retries of transient failures →
//! settle: reply → ack, `settle`); undecodable and refused commands go to the dead-letter
//! queue with the reason (and an error reply when one is awaited); SIGTERM stops consuming
//! and lets in-flight commands finish. Beside it: the outbox relay, the provisioning log's
//! writer, background pruning, queue depth sampling and health.

use crate::{apply::ApplyContext, batch, depth, gc, outbox, provisioning_log, settle::Settler};
use common::Settings;
use common::amqp::batches::consume_in_batches;
use common::amqp::consume::{ConsumeOptions, Ended, Session, Shutdown, sessions};
use common::amqp::{Publisher, Topology, link::Link};
use common::db::redact;
use common::shutdown::{TaskGuard, unless};
use lapin::Connection;
use sea_orm::DatabaseConnection;
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Duration,
};
use tokio::{net::TcpListener, sync::Notify};

/// Applies pending migrations (`worker migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    common::db::migration::migrate(settings.database_url.expose())
        .await
        .map_err(|e| anyhow::anyhow!("migration failed: {}", redact(&e)))
}

pub struct Worker {
    db: DatabaseConnection,
    link: Link,
    topology: Topology,
    prefetch: u16,
    concurrency: usize,
    batch_max: usize,
    ctx: ApplyContext,
    windows: gc::Windows,
    gc_interval: Duration,
    /// `PROVISIONING_LOG_RETENTION_DAYS`.
    log_retention: Duration,
    /// One connection of its own for the provisioning log's writer and prune, so the log
    /// never takes a connection the commands need.
    log_db: DatabaseConnection,
}

impl Worker {
    /// Connects to PostgreSQL and RabbitMQ, retrying until both answer.
    pub async fn connect(settings: &Settings) -> Self {
        let db = common::db::connect(
            settings.database_url.expose(),
            settings.db_max_connections.max(2),
        )
        .await;
        let link = Link::connect(settings.amqp_url.expose(), "roster-worker").await;
        let log_db = common::db::connect(settings.database_url.expose(), 1).await;
        Self {
            log_db,
            db,
            link,
            topology: Topology::from_settings(settings),
            prefetch: settings.worker_prefetch.max(1),
            concurrency: settings.worker_concurrency.max(1),
            batch_max: settings.worker_batch_max.max(1),
            log_retention: settings.provisioning_log_retention,
            ctx: ApplyContext {
                scim_base: format!("{}/scim/v2", settings.public_url),
                prefix: common::metrics::prefix_of(&Topology::from_settings(settings)),
            },
            windows: gc::Windows::from_settings(settings),
            gc_interval: settings.gc_interval,
        }
    }

    /// Consumes until `shutdown` resolves, serving health on `health`. A broker connection
    /// that does not recover is replaced, and consuming goes on.
    pub async fn run(
        self,
        health: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let consuming = Arc::new(AtomicBool::new(false));
        let unreadable = Arc::new(AtomicU64::new(0));
        let probes = common::health::Probes {
            db: self.db.clone(),
            amqp: self.link.clone(),
            consuming: consuming.clone(),
            outbox_unreadable: Some(unreadable.clone()),
        };
        let health_server = TaskGuard::new(common::health::serve(health, probes, stop_rx.clone()));
        let depths = TaskGuard::spawn(depth::sample(
            self.link.clone(),
            self.topology.clone(),
            stop_rx.clone(),
        ));
        let gc = gc::Gc {
            db: self.db.clone(),
            ctx: self.ctx.clone(),
            windows: self.windows.clone(),
            prefix: common::metrics::prefix_of(&self.topology),
        };
        let pruning = TaskGuard::spawn(gc.run(self.gc_interval, stop_rx.clone()));
        let log_writer = TaskGuard::spawn(provisioning_log::consume(
            self.link.clone(),
            self.topology.clone(),
            self.log_db.clone(),
            stop_rx.clone(),
        ));
        let log_prune = TaskGuard::spawn(provisioning_log::prune(
            self.log_db.clone(),
            self.log_retention,
            self.ctx.prefix.clone(),
            provisioning_log::PRUNE_INTERVAL,
            stop_rx.clone(),
        ));
        let commands = Commands {
            worker: &self,
            consuming,
            unreadable,
            committed: Arc::new(Notify::new()),
        };
        tokio::pin!(shutdown);
        sessions(&self.link, shutdown.as_mut(), &commands).await;
        let _ = stop_tx.send(true);
        let _ = health_server.join().await;
        // Only metrics: a sample stuck on a broker that is gone is not waited for.
        let _ = depths.join_within(Duration::from_secs(1)).await;
        // A pass stops between batches; one stuck on an unreachable database is aborted.
        if pruning.join_within(Duration::from_secs(5)).await.is_none() {
            tracing::warn!("background pruning did not stop in time; aborted");
        }
        let _ = log_writer.join().await;
        let _ = log_prune.join().await;
        // Closing the connection returns any unacknowledged deliveries to the queue.
        self.link.close("worker shutting down").await;
        common::shutdown::close_db(&self.db).await;
        common::shutdown::close_db(&self.log_db).await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// How long the outbox relay gets to stop when its connection is replaced.
const RELAY_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The command consumer's session on one connection: its two publishers (replies;
/// the outbox relay's events), the topology, the relay, and the appliers.
struct Commands<'a> {
    worker: &'a Worker,
    consuming: Arc<AtomicBool>,
    unreadable: Arc<AtomicU64>,
    /// Wakes the relay after each commit.
    committed: Arc<Notify>,
}

impl Session for Commands<'_> {
    async fn run(&self, conn: &Connection, mut shutdown: Shutdown<'_>) -> lapin::Result<Ended> {
        let w = self.worker;
        let opened = unless(shutdown.as_mut(), async {
            let publisher = Publisher::open(conn).await?;
            let relay_publisher = Publisher::open(conn).await?;
            // The whole topology before the relay's first publish: an event published to an
            // exchange declared again but not yet bound to the mailer queue would be
            // confirmed and dropped.
            w.topology.declare(publisher.channel()).await?;
            Ok::<_, lapin::Error>((publisher, relay_publisher))
        })
        .await;
        let Some(opened) = opened else {
            return Ok(Ended::Shutdown);
        };
        let (publisher, relay_publisher) = opened?;
        let watch = vec![
            publisher.channel().clone(),
            relay_publisher.channel().clone(),
        ];
        let shared = Arc::new(batch::Shared {
            db: w.db.clone(),
            settler: Settler {
                db: w.db.clone(),
                publisher,
                topology: w.topology.clone(),
                prefix: common::metrics::prefix_of(&w.topology),
            },
            ctx: w.ctx.clone(),
            committed: self.committed.clone(),
            batch_max: w.batch_max,
        });
        let (relay_stop, relay_rx) = tokio::sync::watch::channel(false);
        let relay = TaskGuard::spawn(outbox::relay(
            w.db.clone(),
            relay_publisher,
            w.topology.clone(),
            self.committed.clone(),
            relay_rx,
            self.unreadable.clone(),
        ));
        // The consume loop drains (or gives up on) the deliveries in hand, then the
        // appliers finish what they hold and stop.
        let ended = consume_in_batches(
            conn,
            &w.topology,
            ConsumeOptions {
                queue: &w.topology.commands_queue(),
                tag_prefix: "worker",
                prefetch: w.prefetch,
                // Every delivery held goes to the appliers, which batch what is ready.
                concurrency: usize::from(w.prefetch),
                consuming: self.consuming.clone(),
                watch,
            },
            shutdown,
            batch::start(shared, w.concurrency),
            "appliers",
        )
        .await;
        let _ = relay_stop.send(true);
        // A relay stuck on a broker that is gone would hold the relay lock (and its
        // transaction) for ever: it gets a few seconds, then is aborted and its transaction
        // rolled back; the batch is published again by the next relay.
        if relay.join_within(RELAY_STOP_TIMEOUT).await.is_none() {
            tracing::warn!("outbox relay did not stop in time; aborted");
        }
        ended
    }
}
