//! The consume loop: next delivery → decode → authorise (`authorize`) → apply (with
//! in-process retries of transient failures) → reply → ack; undecodable and refused
//! commands go to the dead-letter queue with the reason (and an error reply when one is
//! awaited); SIGTERM stops consuming and lets in-flight commands finish.

use crate::{
    apply::{Applied, ApplyContext, apply, record_unapplied},
    authorize::{Caller, Refusal, authorize, failed_outcome},
    depth, gc, outbox, provisioning_log,
};
use backon::{ExponentialBuilder, Retryable};
use common::shutdown::{TaskGuard, unless};
use common::{
    Settings,
    amqp::{
        self, CORRELATION_HEADER, Publisher, Topology,
        consume::{ConsumeOptions, Ended, ack, consume_until},
        dead_letter::dead_letter,
        link::Link,
        retry::{Retry, retry_later},
        topology::RetryTarget,
    },
    db::{is_transient, is_unique_violation, redact},
    messages::{Command, Envelope, Reply},
    metrics::{
        COMMAND_DURATION, COMMANDS_EXPIRED, COMMANDS_PROCESSED, COMMANDS_REFUSED, status_class,
    },
};
use lapin::{
    BasicProperties,
    message::Delivery,
    types::{AMQPValue, FieldTable, LongString},
};
use sea_orm::{DatabaseConnection, DbErr};
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64},
    },
    time::{Duration, Instant},
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
    ctx: ApplyContext,
    windows: gc::Windows,
    gc_interval: Duration,
    /// `PROVISIONING_LOG_RETENTION_DAYS`.
    log_retention: Duration,
    /// One connection of its own for the provisioning log's writer and prune, so the log
    /// never takes a connection the commands need.
    log_db: DatabaseConnection,
}

struct Shared {
    db: DatabaseConnection,
    publisher: Publisher,
    topology: Topology,
    ctx: ApplyContext,
    committed: Arc<Notify>,
    /// The `prefix` metrics label.
    prefix: String,
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
        shutdown: impl Future<Output = ()>,
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
        let committed = Arc::new(Notify::new());
        tokio::pin!(shutdown);
        // Every wait on the broker (opening channels, declaring, replacing the connection)
        // is raced against the shutdown, so SIGTERM stops the worker whatever the
        // broker's state.
        loop {
            let conn = self.link.current();
            let opened = unless(shutdown.as_mut(), async {
                let publisher = Publisher::open(&conn).await?;
                let relay_publisher = Publisher::open(&conn).await?;
                // The whole topology before the relay's first publish: an event published
                // to an exchange declared again but not yet bound to the mailer queue would
                // be confirmed and dropped.
                self.topology.declare(publisher.channel()).await?;
                Ok::<_, lapin::Error>((publisher, relay_publisher))
            })
            .await;
            let (publisher, relay_publisher) = match opened {
                None => break,
                Some(Ok(opened)) => opened,
                Some(Err(e)) => {
                    tracing::error!(error = %amqp::redact(&e), "opening channels or declaring the topology failed");
                    if unless(shutdown.as_mut(), self.link.reconnect())
                        .await
                        .is_none()
                    {
                        break;
                    }
                    continue;
                }
            };
            let watch = vec![
                publisher.channel().clone(),
                relay_publisher.channel().clone(),
            ];
            let shared = Arc::new(Shared {
                db: self.db.clone(),
                publisher,
                topology: self.topology.clone(),
                ctx: self.ctx.clone(),
                committed: committed.clone(),
                prefix: common::metrics::prefix_of(&self.topology),
            });
            let (relay_stop, relay_rx) = tokio::sync::watch::channel(false);
            let relay = TaskGuard::spawn(outbox::relay(
                self.db.clone(),
                relay_publisher,
                self.topology.clone(),
                committed.clone(),
                relay_rx,
                unreadable.clone(),
            ));
            let ended = consume_until(
                &conn,
                &self.topology,
                ConsumeOptions {
                    queue: &self.topology.commands_queue(),
                    tag_prefix: "worker",
                    prefetch: self.prefetch,
                    concurrency: self.concurrency,
                    consuming: consuming.clone(),
                    watch,
                },
                shutdown.as_mut(),
                |delivery| handle(shared.clone(), delivery),
            )
            .await;
            let _ = relay_stop.send(true);
            // A relay stuck on a broker that is gone would hold the relay lock (and its
            // transaction) for ever: it gets a few seconds, then is aborted and its
            // transaction rolled back; the batch is published again by the next relay.
            if relay.join_within(RELAY_STOP_TIMEOUT).await.is_none() {
                tracing::warn!("outbox relay did not stop in time; aborted");
            }
            match ended {
                Ok(Ended::Shutdown) => break,
                Ok(Ended::Lost) => {}
                Err(e) => tracing::error!(error = %amqp::redact(&e), "consuming failed"),
            }
            if unless(shutdown.as_mut(), self.link.reconnect())
                .await
                .is_none()
            {
                break;
            }
        }
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

#[tracing::instrument(skip_all, fields(command_id, command_type, correlation_id))]
async fn handle(shared: Arc<Shared>, delivery: Delivery) {
    let started = Instant::now();
    let env = match Envelope::from_bytes(&delivery.data) {
        Ok(env) => env,
        Err(e) => {
            let outcome = refuse(&shared, &delivery, None, Refusal::undecodable(None, e)).await;
            record(&shared, "unknown", outcome, started);
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("command_id", tracing::field::display(env.id));
    span.record("command_type", env.kind.as_str());
    span.record("correlation_id", env.correlation_id.as_str());
    // Anything can arrive as a type: only known ones become a metrics label.
    let kind = if Command::is_known(&env.kind) {
        env.kind.as_str()
    } else {
        "unknown"
    };

    let caller = match authorized(&shared, &delivery, &env).await {
        Ok(Ok(caller)) => caller,
        Ok(Err(refusal)) => {
            let outcome = refuse(&shared, &delivery, Some(&env), refusal).await;
            record(&shared, kind, outcome, started);
            return;
        }
        Err(e) => {
            // The caller is not known yet: no reply into Roster's own queues.
            let outcome = failed(&shared, &delivery, &env, &e, false).await;
            record(&shared, kind, outcome, started);
            return;
        }
    };
    let cmd = match Command::from_envelope(&env) {
        Ok(cmd) => cmd,
        Err(e) => {
            let refusal = Refusal::undecodable(Some(&env.kind), e);
            let outcome = refuse(&shared, &delivery, Some(&env), refusal).await;
            record(&shared, kind, outcome, started);
            return;
        }
    };

    let attempt = || apply(&shared.db, &shared.ctx, &env, &cmd);
    let result = attempt
        .retry(backoff())
        // A unique violation means a concurrent command won a race the pre-checks could
        // not see; running again answers it properly (a 409).
        .when(|e| is_transient(e) || is_unique_violation(e))
        .notify(|e, after| tracing::warn!(error = %redact(e), retry_in_ms = after.as_millis() as u64, "transient failure; retrying"))
        .await;
    let outcome = match result {
        Ok(Applied {
            reply,
            expired: true,
        }) => {
            tracing::warn!(apply_by = ?env.apply_by, "command past its deadline; not applied");
            metrics::counter!(COMMANDS_EXPIRED, "type" => kind.to_owned(), "prefix" => shared.prefix.clone())
                .increment(1);
            send_reply(
                &shared,
                &delivery,
                &env.correlation_id,
                &reply,
                caller == Caller::Roster,
            )
            .await;
            if let Err(e) = ack(&delivery).await {
                tracing::warn!(error = %e, "ack failed; the command will be redelivered and found expired");
            }
            "expired"
        }
        Ok(Applied { reply, .. }) => {
            shared.committed.notify_one();
            tracing::info!(status = reply.status(), "command applied");
            let unanswered = delivery.properties.reply_to().is_none();
            match failed_outcome(&reply).filter(|_| caller == Caller::Integration && unanswered) {
                // Another service's fire-and-forget command failed: with nobody waiting for
                // the reply, the dead-letter queue is where the failure shows. Its id is
                // stored, so the same command published again has no second effect.
                Some(reason) => {
                    tracing::warn!(reason = %reason, "integration command failed; dead-lettered");
                    let dead =
                        dead_letter(&shared.publisher, &shared.topology, &delivery, &reason).await;
                    if dead {
                        status_class(reply.status())
                    } else {
                        "requeued"
                    }
                }
                None => {
                    let trusted = caller == Caller::Roster;
                    send_reply(&shared, &delivery, &env.correlation_id, &reply, trusted).await;
                    if let Err(e) = ack(&delivery).await {
                        tracing::warn!(error = %e, "ack failed; the command will be redelivered and answered from its stored result");
                    }
                    status_class(reply.status())
                }
            }
        }
        Err(e) => failed(&shared, &delivery, &env, &e, caller == Caller::Roster).await,
    };
    record(&shared, kind, outcome, started);
}

/// How long the outbox relay gets to stop when its connection is replaced.
const RELAY_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The in-process retries of a transient database failure.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(5)
        .with_jitter()
}

/// `authorize`, with transient database failures retried in process.
async fn authorized(
    shared: &Shared,
    delivery: &Delivery,
    env: &Envelope,
) -> Result<Result<Caller, Refusal>, DbErr> {
    let user_id = delivery.properties.user_id().as_ref().map(|u| u.as_str());
    let own_user = shared.publisher.user();
    let attempt = || authorize(&shared.db, env, user_id, own_user);
    attempt
        .retry(backoff())
        .when(is_transient)
        .notify(|e, after| tracing::warn!(error = %redact(e), retry_in_ms = after.as_millis() as u64, "transient failure; retrying"))
        .await
}

/// A database failure that outlasted the in-process retries: transient ones go to a retry
/// queue; permanent ones to the dead-letter queue, and a caller waiting on `reply_to` is
/// answered `500` at once rather than left to time out. `trusted` as for `send_reply`.
async fn failed(
    shared: &Shared,
    delivery: &Delivery,
    env: &Envelope,
    e: &DbErr,
    trusted: bool,
) -> &'static str {
    let reason = redact(e);
    if !is_transient(e) {
        tracing::error!(error = %reason, "command failed permanently; dead-lettered");
        let dead = dead_letter(&shared.publisher, &shared.topology, delivery, &reason).await;
        // Only once it is set aside (a message that went back to its queue fails again), and
        // only to a caller waiting on `reply_to`: a `500` means "nothing applied, ever", so
        // it is stored as the command's final answer first, and a replay of the dead letter
        // changes nothing. Not stored, the caller's fence answers at the deadline instead.
        // A fire-and-forget command was answered nothing: replaying it applies it.
        if dead && delivery.properties.reply_to().is_some() {
            let reply = Reply::error(
                500,
                None,
                "the change could not be applied and nothing was changed, and it never will \
                 be; it is kept in Roster's dead-letter queue for an operator to inspect",
            );
            match record_unapplied(&shared.db, env, &reply, "command.failed").await {
                Ok(true) => {
                    send_reply(shared, delivery, &env.correlation_id, &reply, trusted).await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %redact(&e), "the failure could not be recorded; the caller is answered at its deadline");
                }
            }
        }
        return dead_outcome(dead);
    }
    let retry = retry_later(
        &shared.publisher,
        &shared.topology,
        RetryTarget::Commands,
        delivery,
        &reason,
    )
    .await;
    match retry {
        Retry::Scheduled { .. } => "retried",
        Retry::DeadLettered => "dead_lettered",
        Retry::Requeued => "requeued",
    }
}

/// Dead-letters a refused command with its reason (nothing was applied) and, once it is
/// there, answers a publisher waiting on `reply_to` with the error.
async fn refuse(
    shared: &Shared,
    delivery: &Delivery,
    env: Option<&Envelope>,
    refusal: Refusal,
) -> &'static str {
    tracing::warn!(reason = %refusal.reason, "command refused; dead-lettered");
    metrics::counter!(COMMANDS_REFUSED, "reason" => refusal.class, "prefix" => shared.prefix.clone())
        .increment(1);
    let dead = dead_letter(
        &shared.publisher,
        &shared.topology,
        delivery,
        &refusal.reason,
    )
    .await;
    // Only once: a message that went back to its queue is refused again on redelivery.
    if dead {
        let correlation_id = env.map_or("", |e| e.correlation_id.as_str());
        send_reply(shared, delivery, correlation_id, &refusal.reply(), false).await;
    }
    dead_outcome(dead)
}

/// Sends the reply to `reply_to` (default exchange), if the publisher asked for one. A
/// lost reply only costs the caller its answer; the effect is committed.
/// Only Roster's own commands may be answered into Roster's own queues (`trusted`): a
/// reply is published as Roster's broker user, and another service must not use it to
/// write into the commands or mailer queue or an ingress's reply queue.
async fn send_reply(
    shared: &Shared,
    delivery: &Delivery,
    correlation_id: &str,
    reply: &Reply,
    trusted: bool,
) {
    let Some(reply_to) = delivery.properties.reply_to().as_ref() else {
        return;
    };
    if !trusted && shared.topology.owns(reply_to.as_str()) {
        tracing::warn!(reply_to = %reply_to, "reply_to names one of Roster's own queues; not answered");
        return;
    }
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_headers(correlation_headers(correlation_id));
    if let Some(cid) = delivery.properties.correlation_id().as_ref() {
        props = props.with_correlation_id(cid.clone());
    }
    let body = serde_json::to_vec(reply).unwrap_or_default();
    if let Err(e) = shared
        .publisher
        .publish_raw("", reply_to.as_str(), &body, props, false)
        .await
    {
        tracing::warn!(error = %e, "reply not delivered");
    }
}

/// Counts one handled delivery and how long it took (`common::metrics`).
fn record(shared: &Shared, kind: &str, outcome: &'static str, started: Instant) {
    let (kind, prefix) = (kind.to_owned(), shared.prefix.clone());
    metrics::counter!(COMMANDS_PROCESSED, "type" => kind.clone(), "outcome" => outcome, "prefix" => prefix.clone())
        .increment(1);
    metrics::histogram!(COMMAND_DURATION, "type" => kind, "prefix" => prefix)
        .record(started.elapsed().as_secs_f64());
}

fn dead_outcome(dead_lettered: bool) -> &'static str {
    if dead_lettered {
        "dead_lettered"
    } else {
        "requeued"
    }
}

fn correlation_headers(correlation_id: &str) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert(
        CORRELATION_HEADER.into(),
        AMQPValue::LongString(LongString::from(correlation_id)),
    );
    h
}
