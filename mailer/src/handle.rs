//! A batch of events: for each `user.created` or `user.reactivated` event whose invite is
//! pending (the worker decided it), send the email and record it sent. One transaction
//! holds the batch's invite rows locked across the SMTP exchanges, so a redelivered or
//! concurrent copy of an event waits, then finds its invite sent; the mails go out at once
//! and one commit records them. Transient failures are tried again in process
//! (`common::retry::smtp_transient`, the locks released in between) in a task of their
//! own (`crate::batch`), then through the mailer's retry queues; permanent ones are
//! dead-lettered. One try is `crate::send`. Each event tells the consume loop it is settled
//! as soon as it is, so it holds its slot of `MAILER_CONCURRENCY` no longer.

use crate::{invite::SendError, smtp::Smtp};
use backon::BackoffBuilder;
use chrono::Utc;
use common::{
    amqp::{
        Publisher, Topology, batches::Job, consume::ack, dead_letter::dead_letter,
        retry::retry_later, topology::RetryTarget,
    },
    db::{is_transient, redact},
    messages::{Envelope, UserEvent, events},
    metrics::{INVITE_DELAY, INVITES_FAILED, INVITES_SENT, INVITES_SKIPPED},
};
use lapin::message::Delivery;
use lettre::message::Mailbox;
use sea_orm::{DatabaseConnection, DbErr};
use std::{sync::Arc, time::Duration};
use tokio::sync::oneshot;

/// What every sender shares (one per broker connection).
pub(crate) struct Shared {
    pub(crate) db: DatabaseConnection,
    pub(crate) publisher: Publisher,
    pub(crate) topology: Topology,
    pub(crate) smtp: Arc<Smtp>,
    pub(crate) from: Mailbox,
    pub(crate) public_url: String,
    /// How long an invite link stays valid (`INVITE_TTL`).
    pub(crate) invite_ttl: Duration,
    /// Derives each invite's link (`ROSTER_INVITE_KEY`).
    pub(crate) invite_key: Arc<[u8]>,
    /// The `prefix` metrics label.
    pub(crate) prefix: String,
}

/// What became of one event.
#[derive(Debug)]
pub(crate) enum Outcome {
    Sent,
    Skipped(&'static str),
}

#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum HandleError {
    /// A database error, already redacted.
    #[error("database: {reason}")]
    Db { transient: bool, reason: String },
    #[error(transparent)]
    Send(#[from] SendError),
}

impl From<DbErr> for HandleError {
    fn from(e: DbErr) -> Self {
        HandleError::Db {
            transient: is_transient(&e),
            reason: redact(&e),
        }
    }
}

impl HandleError {
    fn is_transient(&self) -> bool {
        match self {
            HandleError::Db { transient, .. } => *transient,
            HandleError::Send(SendError::Transient(_)) => true,
            HandleError::Send(SendError::Permanent(_)) => false,
        }
    }

    fn reason(&self) -> String {
        match self {
            HandleError::Db { reason, .. } => reason.clone(),
            HandleError::Send(s) => s.to_string(),
        }
    }
}

/// One decoded event of the batch.
pub(crate) struct Event {
    delivery: Delivery,
    /// Tells the consume loop the delivery is settled (sent by `settle`).
    done: oneshot::Sender<()>,
    pub(crate) env: Envelope,
    pub(crate) event: UserEvent,
    pub(crate) span: tracing::Span,
}

/// Events that failed transiently, each with why, to be tried again ([`retry`]).
pub(crate) type Again = Vec<(Event, HandleError)>;

/// A batch's first try: undecodable deliveries are dead-lettered, other event types
/// acknowledged, and the invite events handled together. What is done is settled here;
/// what failed transiently is returned, for [`retry`] to try again off the sender, so a
/// pause before a retry holds only its own events (their slots of `MAILER_CONCURRENCY`).
pub(crate) async fn batch(shared: &Shared, jobs: Vec<Job>) -> Again {
    let mut todo = Vec::with_capacity(jobs.len());
    for (delivery, done) in jobs {
        if let Some(event) = decode(shared, delivery, done).await {
            todo.push(event);
        }
    }
    try_once(shared, todo).await
}

/// Tries `again` after pauses (`common::retry::smtp_transient`, the locks released in
/// between) until each is done or the pauses run out; then what still fails transiently
/// goes to the mailer's retry queues.
pub(crate) async fn retry(shared: &Shared, mut again: Again) {
    let mut pauses = common::retry::smtp_transient().build();
    while !again.is_empty() {
        let Some(pause) = pauses.next() else {
            for (event, e) in again {
                settle(shared, event, Err(e)).await;
            }
            return;
        };
        for (event, e) in &again {
            event.span.in_scope(|| {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "invite failed; retrying")
            });
        }
        tokio::time::sleep(pause).await;
        again = try_once(shared, again.into_iter().map(|(event, _)| event).collect()).await;
    }
}

/// One try at `todo`: settles what is done, returns what failed transiently.
async fn try_once(shared: &Shared, todo: Vec<Event>) -> Again {
    if todo.is_empty() {
        return Vec::new();
    }
    let results = crate::send::attempt(shared, &todo).await;
    let mut again = Vec::new();
    for (event, result) in todo.into_iter().zip(results) {
        match result {
            Err(e) if e.is_transient() => again.push((event, e)),
            other => settle(shared, event, other).await,
        }
    }
    again
}

/// The event of an invite, or `None` when the delivery is settled here (undecodable, or
/// not an event that sends one).
async fn decode(shared: &Shared, delivery: Delivery, done: oneshot::Sender<()>) -> Option<Event> {
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
            let _ = done.send(());
            return None;
        }
    };
    if env.kind != events::USER_CREATED && env.kind != events::USER_REACTIVATED {
        let _ = ack(&delivery).await;
        let _ = done.send(());
        return None;
    }
    let span = tracing::info_span!(
        "invite",
        event_id = %env.id,
        user_id = %event.user_id,
        correlation_id = env.correlation_id.as_str()
    );
    Some(Event {
        delivery,
        done,
        env,
        event,
        span,
    })
}

/// Acknowledges, retries later or dead-letters one event by its result.
async fn settle(shared: &Shared, event: Event, result: Result<Outcome, HandleError>) {
    let Event {
        delivery,
        done,
        env,
        span,
        ..
    } = event;
    let prefix = shared.prefix.clone();
    match result {
        Ok(outcome) => {
            span.in_scope(|| match outcome {
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
            });
            let _ = ack(&delivery).await;
        }
        Err(e) if e.is_transient() => {
            metrics::counter!(INVITES_FAILED, "reason" => "transient", "prefix" => prefix)
                .increment(1);
            retry_later(
                &shared.publisher,
                &shared.topology,
                RetryTarget::Mailer,
                &delivery,
                &e.reason(),
            )
            .await;
        }
        Err(e) => {
            let reason = e.reason();
            metrics::counter!(INVITES_FAILED, "reason" => "permanent", "prefix" => prefix)
                .increment(1);
            span.in_scope(
                || tracing::error!(error = %reason, "invite failed permanently; dead-lettered"),
            );
            dead_letter(&shared.publisher, &shared.topology, &delivery, &reason).await;
        }
    }
    let _ = done.send(());
}
