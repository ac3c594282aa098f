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
        Publisher, Topology,
        consume::{ConsumeOptions, consume_until},
        dead_letter::{dead_letter, requeue},
    },
    db::{is_transient, redact, stmt},
    messages::{Envelope, UserEvent, events},
    secret::{self, TokenKind},
};
use lapin::{Connection, message::Delivery, options::BasicAckOptions};
use lettre::{AsyncSmtpTransport, Tokio1Executor, message::Mailbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use std::{
    future::Future,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};
use tokio::net::TcpListener;
use uuid::Uuid;

/// How long an invite link stays valid.
pub const INVITE_TTL_DAYS: i64 = 14;

pub struct Mailer {
    db: DatabaseConnection,
    conn: Arc<Connection>,
    topology: Topology,
    prefetch: u16,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
}

struct Shared {
    db: DatabaseConnection,
    publisher: Publisher,
    topology: Topology,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
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
            u32::from(settings.worker_prefetch).clamp(2, 32) + 2,
        )
        .await;
        let conn =
            Arc::new(common::amqp::connect(settings.amqp_url.expose(), "roster-mailer").await);
        Ok(Self {
            db,
            conn,
            topology: Topology::from_settings(settings),
            prefetch: settings.worker_prefetch.clamp(1, 64),
            smtp,
            from,
            public_url: settings.public_url.clone(),
        })
    }

    /// Consumes `user.created` events until `shutdown` resolves.
    pub async fn run(
        self,
        health: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let shared = Arc::new(Shared {
            db: self.db.clone(),
            publisher: Publisher::open(&self.conn).await?,
            topology: self.topology.clone(),
            smtp: self.smtp.clone(),
            from: self.from.clone(),
            public_url: self.public_url.clone(),
        });
        let consuming = Arc::new(AtomicBool::new(false));
        let probes = common::health::Probes {
            db: self.db.clone(),
            amqp: self.conn.clone(),
            consuming: consuming.clone(),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let health_server = common::health::serve(health, probes, stop_rx);
        let result = consume_until(
            &self.conn,
            &self.topology,
            ConsumeOptions {
                queue: &self.topology.mailer_queue(),
                tag_prefix: "mailer",
                prefetch: self.prefetch,
                consuming,
            },
            shutdown,
            |delivery| handle(shared.clone(), delivery),
        )
        .await;
        let _ = stop_tx.send(true);
        let _ = health_server.await;
        common::shutdown::close_connections(&self.conn, &self.db, "mailer").await;
        tracing::info!("mailer stopped");
        Ok(result?)
    }
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
    if env.kind != events::USER_CREATED {
        let _ = delivery.ack(BasicAckOptions::default()).await;
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
            match outcome {
                Outcome::Sent => tracing::info!("invite sent"),
                Outcome::Skipped(why) => tracing::info!(reason = why, "no invite sent"),
            }
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "invite still failing; returning the event to the queue");
            tokio::time::sleep(Duration::from_secs(2)).await;
            requeue(&delivery).await;
        }
        Err(e) => {
            let reason = match &e {
                HandleError::Db(db) => redact(db),
                HandleError::Send(s) => s.to_string(),
            };
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
    let Some(org) = shared
        .db
        .query_one_raw(stmt("SELECT name FROM orgs WHERE id = $1", [org_id.into()]))
        .await?
    else {
        return Ok(Outcome::Skipped("org not found"));
    };
    let org_name: String = org.try_get("", "name")?;
    let tx = shared.db.begin().await?;
    // The worker wrote this row when the user was created and the org had invites on.
    // Holding its lock while sending makes a concurrent copy of the event wait, then find
    // it sent.
    let pending = tx
        .query_one_raw(stmt(
            "SELECT id, email FROM invites WHERE user_id = $1 AND org_id = $2 AND sent_at IS NULL FOR UPDATE",
            [event.user_id.into(), org_id.into()],
        ))
        .await?;
    let Some(row) = pending else {
        tx.rollback().await?;
        return Ok(Outcome::Skipped(
            "no invite pending (invites off, or already sent)",
        ));
    };
    let invite_id: Uuid = row.try_get("", "id")?;
    let address: String = row.try_get("", "email")?;
    let token = secret::issue(TokenKind::Invite);
    let message = Invite {
        to_address: address,
        to_name: invite::display_name(event),
        org_name,
        link: format!("{}/invite/{}", shared.public_url, token.plain.expose()),
    }
    .message(&shared.from)?;
    invite::send(&shared.smtp, message).await?;
    tx.execute_raw(stmt(
        "UPDATE invites SET token_hash = $2, expires_at = $3, sent_at = now() WHERE id = $1",
        [
            invite_id.into(),
            token.hash.as_str().into(),
            (Utc::now() + chrono::Duration::days(INVITE_TTL_DAYS)).into(),
        ],
    ))
    .await?;
    tx.commit().await?;
    Ok(Outcome::Sent)
}
