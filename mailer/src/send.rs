//! One try at a batch of invite events: register their links, lock their invites, send
//! their mails at once, record them, commit (see `crate::handle` for what surrounds it).

use crate::{
    handle::{Event, HandleError, Outcome, Shared},
    invite::{self, Invite},
    sql::{Pending, Sent, mark_sent, pending_invites, record_sent, register_links, unsent_invites},
};
use chrono::Utc;
use common::{
    db::redact,
    metrics::SMTP_SEND_DURATION,
    secret::{self, TokenKind},
};
use futures_util::future::join_all;
use lettre::Message;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use std::collections::{HashMap, HashSet};
use tracing::Instrument;
use uuid::Uuid;

/// One try at the batch: a result per event, in order. A database error before any mail
/// went out is every event's.
pub(crate) async fn attempt(
    shared: &Shared,
    events: &[Event],
) -> Vec<Result<Outcome, HandleError>> {
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
