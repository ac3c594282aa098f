//! A batch of events: for each `user.created` or `user.reactivated` event whose invite is
//! pending (the worker decided it), send the email and record it sent. One transaction
//! holds the batch's invite rows locked across the SMTP exchanges, so a redelivered or
//! concurrent copy of an event waits, then finds its invite sent; the mails go out at once
//! and one commit records them. Transient failures are tried again in process
//! (`common::retry::smtp_transient`, the locks released in between), then through the
//! mailer's retry queues; permanent ones are dead-lettered.

use crate::{
    invite::{self, Invite, SendError},
    smtp::Smtp,
    sql::{Pending, Sent, mark_sent, pending_invites, record_sent, register_links, unsent_invites},
};
use backon::BackoffBuilder;
use chrono::Utc;
use common::{
    amqp::{
        Publisher, Topology, consume::ack, dead_letter::dead_letter, retry::retry_later,
        topology::RetryTarget,
    },
    db::{is_transient, redact},
    messages::{Envelope, UserEvent, events},
    metrics::{INVITE_DELAY, INVITES_FAILED, INVITES_SENT, INVITES_SKIPPED, SMTP_SEND_DURATION},
    secret::{self, TokenKind},
};
use futures_util::future::join_all;
use lapin::message::Delivery;
use lettre::{Message, message::Mailbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, TransactionTrait};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};
use tracing::Instrument;
use uuid::Uuid;

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
enum Outcome {
    Sent,
    Skipped(&'static str),
}

#[derive(Clone, Debug, thiserror::Error)]
enum HandleError {
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
struct Event {
    delivery: Delivery,
    env: Envelope,
    event: UserEvent,
    span: tracing::Span,
}

/// Settles each delivery of the batch: undecodable ones are dead-lettered, other event
/// types acknowledged, and the invite events handled together, what failed transiently
/// again after a pause (the locks released meanwhile).
pub(crate) async fn batch(shared: &Shared, deliveries: Vec<Delivery>) {
    let mut todo = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if let Some(event) = decode(shared, delivery).await {
            todo.push(event);
        }
    }
    let mut pauses = common::retry::smtp_transient().build();
    while !todo.is_empty() {
        let results = attempt(shared, &todo).await;
        let mut again = Vec::new();
        let mut failed = Vec::new();
        for (event, result) in todo.into_iter().zip(results) {
            match result {
                Err(e) if e.is_transient() => {
                    failed.push(e);
                    again.push(event);
                }
                other => settle(shared, event, other).await,
            }
        }
        if again.is_empty() {
            break;
        }
        let Some(pause) = pauses.next() else {
            for (event, e) in again.into_iter().zip(failed) {
                settle(shared, event, Err(e)).await;
            }
            break;
        };
        for (event, e) in again.iter().zip(&failed) {
            event.span.in_scope(|| {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "invite failed; retrying")
            });
        }
        tokio::time::sleep(pause).await;
        todo = again;
    }
}

/// The event of an invite, or `None` when the delivery is settled here (undecodable, or
/// not an event that sends one).
async fn decode(shared: &Shared, delivery: Delivery) -> Option<Event> {
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
            return None;
        }
    };
    if env.kind != events::USER_CREATED && env.kind != events::USER_REACTIVATED {
        let _ = ack(&delivery).await;
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
        env,
        event,
        span,
    })
}

/// Acknowledges, retries later or dead-letters one event by its result.
async fn settle(shared: &Shared, event: Event, result: Result<Outcome, HandleError>) {
    let Event {
        delivery,
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
}

/// One try at the batch: a result per event, in order. A database error before any mail
/// went out is every event's.
async fn attempt(shared: &Shared, events: &[Event]) -> Vec<Result<Outcome, HandleError>> {
    match send_and_record(shared, events).await {
        Ok(results) => results,
        Err(e) => {
            let e = HandleError::from(e);
            events.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

/// An invite's link token: one per invite, so every resend carries the same link (and
/// Message-ID).
fn link_of(shared: &Shared, invite_id: Uuid) -> secret::IssuedToken {
    secret::derive(TokenKind::Invite, &shared.invite_key, invite_id.as_bytes())
}

/// What each event of a batch (its org, its person) does with the invites read: sends
/// one, or nothing, and why. One copy of an event sends the invite; the others in the
/// batch do not.
fn plan(
    events: impl Iterator<Item = (Option<Uuid>, Uuid)>,
    pending: &HashMap<Uuid, Pending>,
) -> Vec<Result<&Pending, &'static str>> {
    let mut taken = HashSet::new();
    events
        .map(|(org, person)| match (org, pending.get(&person)) {
            (None, _) => Err("event has no org"),
            (Some(org), Some(p)) if p.org_id == org => {
                if !p.active {
                    Err("person not active; the invite waits for their activation")
                } else if !taken.insert(p.id) {
                    Err("another copy of this event in the batch sends the invite")
                } else {
                    Ok(p)
                }
            }
            _ => Err("no invite pending (invites off, or already sent)"),
        })
        .collect()
}

/// A mail ready to go, and the event it is for.
struct Outgoing {
    at: usize,
    invite_id: Uuid,
    token_hash: secret::TokenHash,
    message: Message,
}

async fn send_and_record(
    shared: &Shared,
    events: &[Event],
) -> Result<Vec<Result<Outcome, HandleError>>, DbErr> {
    let people: Vec<Uuid> = events.iter().map(|e| e.event.user_id).collect();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(shared.invite_ttl).unwrap_or(chrono::Duration::days(7));
    // Each link is made valid before its mail can arrive: the batch records its mails
    // sent only once the last is out, and a link opened at once must not answer 404.
    // Nobody has a link before its mail, so one registered for a mail never sent is
    // harmless; recording the send sets its expiry again.
    let unsent = shared.db.query_all(&unsent_invites(&people)).await?;
    let links: Vec<(Uuid, secret::TokenHash)> = unsent
        .iter()
        .map(|row| {
            let id: Uuid = row.try_get("", "id")?;
            Ok((id, link_of(shared, id).hash))
        })
        .collect::<Result<_, DbErr>>()?;
    if !links.is_empty() {
        shared
            .db
            .execute(&register_links(&links, expires_at))
            .await?;
    }
    let tx = shared.db.begin().await?;
    // The worker wrote these rows when each person was first active and the org had
    // invites on. Holding their locks while sending makes a concurrent copy of an event
    // wait, then find its invite sent; the key-share lock on each person makes a
    // deactivation wait for a send under way, and a deactivation committed before finds
    // the person inactive here.
    let mut pending: HashMap<Uuid, Pending> = HashMap::new();
    for row in tx.query_all_raw(pending_invites(&people)).await? {
        let p = Pending::from_query_result(&row, "")?;
        pending.insert(p.user_id, p);
    }
    let plan = plan(
        events.iter().map(|e| (e.env.org_id, e.event.user_id)),
        &pending,
    );
    // Every event's result is set below; this one is only the starting value.
    let mut results: Vec<Result<Outcome, HandleError>> =
        events.iter().map(|_| Ok(Outcome::Skipped(""))).collect();
    let mut outgoing = Vec::new();
    for (at, planned) in plan.into_iter().enumerate() {
        let p = match planned {
            Ok(p) => p,
            Err(why) => {
                results[at] = Ok(Outcome::Skipped(why));
                continue;
            }
        };
        let token = link_of(shared, p.id);
        let message = Invite {
            to_address: p.email.clone(),
            to_name: invite::greeting_name(
                p.display_name.as_deref(),
                p.given_name.as_deref(),
                p.family_name.as_deref(),
            ),
            org_name: p.org_name.clone(),
            link: format!("{}/invite/{}", shared.public_url, token.plain.expose()),
            ttl: shared.invite_ttl,
            message_id: invite::message_id(p.id, &shared.public_url),
        }
        .message(&shared.from);
        match message {
            Ok(message) => outgoing.push(Outgoing {
                at,
                invite_id: p.id,
                token_hash: token.hash,
                message,
            }),
            Err(e) => results[at] = Err(e.into()),
        }
    }
    if outgoing.is_empty() {
        tx.rollback().await?;
        return Ok(results);
    }

    let sends = outgoing.into_iter().map(|o| {
        let span = events[o.at].span.clone();
        async move {
            let started = std::time::Instant::now();
            let result = shared.smtp.send(o.message).await;
            metrics::histogram!(SMTP_SEND_DURATION, "prefix" => shared.prefix.clone())
                .record(started.elapsed().as_secs_f64());
            let sent = Sent {
                invite_id: o.invite_id,
                token_hash: o.token_hash,
                expires_at,
                accepted_at: Utc::now(),
            };
            (o.at, result.map(|()| sent))
        }
        .instrument(span)
    });
    let mut sent = Vec::new();
    for (at, result) in join_all(sends).await {
        match result {
            Ok(s) => {
                results[at] = Ok(Outcome::Sent);
                sent.push(s);
            }
            Err(e) => results[at] = Err(e.into()),
        }
    }
    // The mails are out. Recording that must not fail into a retry that would send them
    // again: if the database drops now, keep trying to record each (the deliveries stay
    // unacknowledged meanwhile).
    let record = async {
        for s in &sent {
            tx.execute(&mark_sent(s)).await?;
        }
        tx.commit().await
    };
    if let Err(e) = record.await {
        tracing::warn!(error = %redact(&e), invites = sent.len(), "invites sent but not yet recorded; retrying the records");
        join_all(sent.iter().map(|s| record_sent(&shared.db, s))).await;
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(org_id: Uuid, active: bool) -> Pending {
        Pending {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            org_id,
            email: "a@x.io".into(),
            active,
            display_name: None,
            given_name: None,
            family_name: None,
            org_name: "Acme".into(),
        }
    }

    #[test]
    fn each_invite_goes_once_to_an_active_person_of_the_events_org() {
        let org = Uuid::new_v4();
        let (ann, bo) = (pending(org, true), pending(org, false));
        let (ann_id, ann_invite, bo_id) = (ann.user_id, ann.id, bo.user_id);
        let read: HashMap<Uuid, Pending> = [(ann_id, ann), (bo_id, bo)].into();
        let nobody = Uuid::new_v4();
        let plan = plan(
            [
                (Some(org), ann_id),
                (Some(org), bo_id),
                (Some(org), ann_id),
                (None, ann_id),
                (Some(Uuid::new_v4()), ann_id),
                (Some(org), nobody),
            ]
            .into_iter(),
            &read,
        );
        let got: Vec<Result<Uuid, &str>> = plan.iter().map(|r| r.map(|p| p.id)).collect();
        assert_eq!(
            got,
            [
                Ok(ann_invite),
                Err("person not active; the invite waits for their activation"),
                Err("another copy of this event in the batch sends the invite"),
                Err("event has no org"),
                Err("no invite pending (invites off, or already sent)"),
                Err("no invite pending (invites off, or already sent)"),
            ]
        );
    }
}
