//! The mailer's consume loop: for each `user.created` event whose invite is pending (the
//! worker decided it at creation), send the email and mark it sent while holding the
//! invite row's lock, so a redelivered or concurrent copy of the event sends nothing.

use crate::invite::{self, Invite, SendError};
use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use common::{
    Settings,
    amqp::{
        self, Publisher, Topology,
        consume::{ConsumeOptions, Ended, ack, consume_until},
        dead_letter::dead_letter,
        link::Link,
        retry::retry_later,
        topology::RetryTarget,
    },
    db::{is_transient, redact, stmt},
    messages::{Envelope, UserEvent, events},
    metrics::{INVITE_DELAY, INVITES_FAILED, INVITES_SENT, INVITES_SKIPPED, SMTP_SEND_DURATION},
    secret::{self, TokenKind},
    shutdown::unless,
};
use lapin::message::Delivery;
use lettre::{AsyncSmtpTransport, Tokio1Executor, message::Mailbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use std::{
    future::Future,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};
use tokio::net::TcpListener;
use uuid::Uuid;

pub struct Mailer {
    db: DatabaseConnection,
    link: Link,
    topology: Topology,
    prefetch: u16,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    invite_ttl: Duration,
    invite_key: Arc<[u8]>,
}

struct Shared {
    db: DatabaseConnection,
    publisher: Publisher,
    topology: Topology,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    /// How long an invite link stays valid (`INVITE_TTL`).
    invite_ttl: Duration,
    /// Derives each invite's link (`ROSTER_INVITE_KEY`).
    invite_key: Arc<[u8]>,
    /// The `prefix` metrics label.
    prefix: String,
}

/// What became of one event.
#[derive(Debug)]
enum Outcome {
    Sent,
    Skipped(&'static str),
}

#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl HandleError {
    fn is_transient(&self) -> bool {
        match self {
            HandleError::Db(e) => is_transient(e),
            HandleError::Send(SendError::Transient(_)) => true,
            HandleError::Send(SendError::Permanent(_)) => false,
        }
    }
}

impl Mailer {
    /// Connects to PostgreSQL and RabbitMQ (retrying) and prepares the SMTP transport.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose())
            .context("SMTP_URL is not a valid SMTP URL")?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        let from: Mailbox = settings
            .mail_from
            .parse()
            .context("MAIL_FROM is not a valid mailbox")?;
        let db = common::db::connect(
            settings.database_url.expose(),
            settings.db_max_connections.max(2),
        )
        .await;
        let link = Link::connect(settings.amqp_url.expose(), "roster-mailer").await;
        Ok(Self {
            db,
            link,
            topology: Topology::from_settings(settings),
            prefetch: settings.worker_prefetch.clamp(1, 64),
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
        shutdown: impl Future<Output = ()>,
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
        // Every wait on the broker is raced against the shutdown, so SIGTERM stops the
        // mailer whatever the broker's state.
        loop {
            let conn = self.link.current();
            let publisher = match unless(shutdown.as_mut(), Publisher::open(&conn)).await {
                None => break,
                Some(Ok(publisher)) => publisher,
                Some(Err(e)) => {
                    tracing::warn!(error = %amqp::redact(&e), "opening a channel failed");
                    if unless(shutdown.as_mut(), self.link.reconnect())
                        .await
                        .is_none()
                    {
                        break;
                    }
                    continue;
                }
            };
            let watch = vec![publisher.channel().clone()];
            let shared = Arc::new(Shared {
                db: self.db.clone(),
                publisher,
                topology: self.topology.clone(),
                smtp: self.smtp.clone(),
                from: self.from.clone(),
                public_url: self.public_url.clone(),
                invite_ttl: self.invite_ttl,
                invite_key: self.invite_key.clone(),
                prefix: common::metrics::prefix_of(&self.topology),
            });
            let ended = consume_until(
                &conn,
                &self.topology,
                ConsumeOptions {
                    queue: &self.topology.mailer_queue(),
                    tag_prefix: "mailer",
                    prefetch: self.prefetch,
                    concurrency: usize::from(self.prefetch),
                    consuming: consuming.clone(),
                    watch,
                },
                shutdown.as_mut(),
                |delivery| handle(shared.clone(), delivery),
            )
            .await;
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
        self.link.close("mailer shutting down").await;
        common::shutdown::close_db(&self.db).await;
        tracing::info!("mailer stopped");
        Ok(())
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

#[tracing::instrument(skip_all, fields(event_id, user_id, correlation_id))]
async fn handle(shared: Arc<Shared>, delivery: Delivery) {
    let decoded = Envelope::from_bytes(&delivery.data).and_then(|env| {
        serde_json::from_value::<UserEvent>(env.payload.clone())
            .map(|ev| (env, ev))
            .map_err(|e| common::messages::DecodeError(format!("user event: {e}")))
    });
    let (env, event) = match decoded {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable event dead-lettered");
            dead_letter(
                &shared.publisher,
                &shared.topology,
                &delivery,
                &e.to_string(),
            )
            .await;
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(env.id));
    span.record("user_id", tracing::field::display(event.user_id));
    span.record("correlation_id", env.correlation_id.as_str());
    if env.kind != events::USER_CREATED && env.kind != events::USER_REACTIVATED {
        let _ = ack(&delivery).await;
        return;
    }

    let attempt = || process(&shared, &env, &event);
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(4)
                .with_jitter(),
        )
        .when(HandleError::is_transient)
        .notify(|e, after| tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, "invite failed; retrying"))
        .await;
    match result {
        Ok(outcome) => {
            let prefix = shared.prefix.clone();
            match outcome {
                Outcome::Sent => {
                    // From the commit of the person's creation (the event's time) to now.
                    let delay = (Utc::now() - env.occurred_at).num_milliseconds().max(0);
                    metrics::histogram!(INVITE_DELAY, "prefix" => prefix.clone())
                        .record(delay as f64 / 1000.0);
                    metrics::counter!(INVITES_SENT, "prefix" => prefix).increment(1);
                    tracing::info!("invite sent");
                }
                Outcome::Skipped(why) => {
                    metrics::counter!(INVITES_SKIPPED, "prefix" => prefix).increment(1);
                    tracing::info!(reason = why, "no invite sent");
                }
            }
            let _ = ack(&delivery).await;
        }
        Err(e) if e.is_transient() => {
            metrics::counter!(INVITES_FAILED, "reason" => "transient", "prefix" => shared.prefix.clone())
                .increment(1);
            let reason = match &e {
                HandleError::Db(db) => redact(db),
                HandleError::Send(s) => s.to_string(),
            };
            retry_later(
                &shared.publisher,
                &shared.topology,
                RetryTarget::Mailer,
                &delivery,
                &reason,
            )
            .await;
        }
        Err(e) => {
            let reason = match &e {
                HandleError::Db(db) => redact(db),
                HandleError::Send(s) => s.to_string(),
            };
            metrics::counter!(INVITES_FAILED, "reason" => "permanent", "prefix" => shared.prefix.clone())
                .increment(1);
            tracing::error!(error = %reason, "invite failed permanently; dead-lettered");
            dead_letter(&shared.publisher, &shared.topology, &delivery, &reason).await;
        }
    }
}

async fn process(
    shared: &Shared,
    env: &Envelope,
    event: &UserEvent,
) -> Result<Outcome, HandleError> {
    let Some(org_id) = env.org_id else {
        return Ok(Outcome::Skipped("event has no org"));
    };
    let tx = shared.db.begin().await?;
    // The worker wrote this row when the person was first active and the org had invites
    // on. Holding its lock while sending makes a concurrent copy of the event wait, then
    // find it sent; the key-share lock on the person makes a deactivation wait for a send
    // under way, and a deactivation committed before finds the person inactive here.
    let pending = tx
        .query_one_raw(stmt(
            "SELECT i.id, i.email, u.active, u.display_name, u.given_name, u.family_name, \
                    o.name AS org_name \
             FROM invites i JOIN users u ON u.id = i.user_id JOIN orgs o ON o.id = i.org_id \
             WHERE i.user_id = $1 AND i.org_id = $2 AND i.sent_at IS NULL \
             FOR UPDATE OF i FOR KEY SHARE OF u",
            [event.user_id.into(), org_id.into()],
        ))
        .await?;
    let Some(row) = pending else {
        tx.rollback().await?;
        return Ok(Outcome::Skipped(
            "no invite pending (invites off, or already sent)",
        ));
    };
    if !row.try_get::<bool>("", "active")? {
        tx.rollback().await?;
        return Ok(Outcome::Skipped(
            "person not active; the invite waits for their activation",
        ));
    }
    let invite_id: Uuid = row.try_get("", "id")?;
    let address: String = row.try_get("", "email")?;
    let name = |col: &str| row.try_get::<Option<String>>("", col);
    // One token per invite: every resend carries the same link and Message-ID.
    let token = secret::derive(TokenKind::Invite, &shared.invite_key, invite_id.as_bytes());
    let message = Invite {
        to_address: address,
        to_name: invite::greeting_name(
            name("display_name")?.as_deref(),
            name("given_name")?.as_deref(),
            name("family_name")?.as_deref(),
        ),
        org_name: row.try_get("", "org_name")?,
        link: format!("{}/invite/{}", shared.public_url, token.plain.expose()),
        ttl: shared.invite_ttl,
        message_id: invite::message_id(invite_id, &shared.public_url),
    }
    .message(&shared.from)?;
    let started = std::time::Instant::now();
    invite::send(&shared.smtp, message).await?;
    metrics::histogram!(SMTP_SEND_DURATION, "prefix" => shared.prefix.clone())
        .record(started.elapsed().as_secs_f64());
    // The mail is out. Recording that must not fail into a retry that would send it again:
    // if the database drops now, keep trying to record it (the delivery stays unacked).
    let expires = Utc::now()
        + chrono::Duration::from_std(shared.invite_ttl).unwrap_or(chrono::Duration::days(7));
    let record = async {
        tx.execute_raw(mark_sent(invite_id, &token.hash, expires))
            .await?;
        tx.commit().await
    };
    if let Err(e) = record.await {
        tracing::warn!(error = %redact(&e), "invite sent but not yet recorded; retrying the record");
        record_sent(&shared.db, invite_id, &token.hash, expires).await;
    }
    Ok(Outcome::Sent)
}

fn mark_sent(
    invite_id: Uuid,
    token_hash: &secret::TokenHash,
    expires: chrono::DateTime<Utc>,
) -> sea_orm::Statement {
    stmt(
        "UPDATE invites SET token_hash = $2, expires_at = $3, sent_at = now() WHERE id = $1 AND sent_at IS NULL",
        [invite_id.into(), token_hash.as_str().into(), expires.into()],
    )
}

/// How long a sent invite's record is retried through a database outage.
const RECORD_PATIENCE: Duration = Duration::from_secs(600);

/// Records a sent invite outside the failed transaction, retrying through a database
/// outage for up to `RECORD_PATIENCE`. Giving up then (logged as an error) leaves the
/// invite unrecorded rather than sending it twice.
async fn record_sent(
    db: &DatabaseConnection,
    invite_id: Uuid,
    token_hash: &secret::TokenHash,
    expires: chrono::DateTime<Utc>,
) {
    let attempt = || async {
        db.execute_raw(mark_sent(invite_id, token_hash, expires))
            .await
    };
    let recorded = tokio::time::timeout(
        RECORD_PATIENCE,
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter()
                    .without_max_times(),
            )
            .when(is_transient),
    )
    .await;
    match recorded {
        Ok(Ok(_)) => tracing::info!("sent invite recorded"),
        Ok(Err(e)) => {
            tracing::error!(error = %redact(&e), %invite_id, "sent invite could not be recorded")
        }
        Err(_) => tracing::error!(%invite_id, "sent invite could not be recorded in time"),
    }
}
