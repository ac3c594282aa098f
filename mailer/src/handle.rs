//! One event: for a `user.created` or `user.reactivated` event whose invite is pending
//! (the worker decided it), send the email and mark it sent while holding the invite row's
//! lock, so a redelivered or concurrent copy of the event sends nothing. Transient failures
//! are retried in process (`common::retry::smtp_transient`), then through the mailer's
//! retry queues; permanent ones are dead-lettered.

use crate::invite::{self, Invite, SendError};
use backon::Retryable;
use chrono::Utc;
use common::{
    amqp::{
        Publisher, Topology, consume::ack, dead_letter::dead_letter, retry::retry_later,
        topology::RetryTarget,
    },
    db::{
        is_transient,
        reads::invites_with_their_person,
        redact,
        sql::{and_key_share, now},
    },
    messages::{Envelope, UserEvent, events},
    metrics::{INVITE_DELAY, INVITES_FAILED, INVITES_SENT, INVITES_SKIPPED, SMTP_SEND_DURATION},
    secret::{self, TokenKind},
};
use lapin::message::Delivery;
use lettre::{AsyncSmtpTransport, Tokio1Executor, message::Mailbox};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait,
    sea_query::{Expr, JoinType, LockType, Query, UpdateStatement},
};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// What every handler shares (one per broker connection).
pub(crate) struct Shared {
    pub(crate) db: DatabaseConnection,
    pub(crate) publisher: Publisher,
    pub(crate) topology: Topology,
    pub(crate) smtp: AsyncSmtpTransport<Tokio1Executor>,
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

#[tracing::instrument(skip_all, fields(event_id, user_id, correlation_id))]
pub(crate) async fn handle(shared: Arc<Shared>, delivery: Delivery) {
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
        .retry(common::retry::smtp_transient())
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
        .query_one_raw(pending_invite(event.user_id, org_id))
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
        tx.execute(&mark_sent(invite_id, &token.hash, expires))
            .await?;
        tx.commit().await
    };
    if let Err(e) = record.await {
        tracing::warn!(error = %redact(&e), "invite sent but not yet recorded; retrying the record");
        record_sent(&shared.db, invite_id, &token.hash, expires).await;
    }
    Ok(Outcome::Sent)
}

/// The person's unsent invite with what the mail needs (`id`, `email`, `active`, the
/// names, `org_name`), the invite row locked `FOR UPDATE` and the person's `FOR KEY
/// SHARE`. sea-query writes one locking clause, so the second is appended to the
/// rendered SQL; it binds nothing, so the builder's numbering stands.
fn pending_invite(user_id: Uuid, org_id: Uuid) -> Statement {
    // Imported here, not for the module: there it makes `max` on numbers ambiguous.
    use sea_orm::sea_query::ExprTrait;
    let q = invites_with_their_person()
        .columns([
            ("i", "id"),
            ("i", "email"),
            ("u", "active"),
            ("u", "display_name"),
            ("u", "given_name"),
            ("u", "family_name"),
        ])
        .expr_as(Expr::col(("o", "name")), "org_name")
        .join_as(
            JoinType::InnerJoin,
            "orgs",
            "o",
            Expr::col(("o", "id")).equals(("i", "org_id")),
        )
        .and_where(Expr::col(("i", "user_id")).eq(user_id))
        .and_where(Expr::col(("i", "org_id")).eq(org_id))
        .and_where(Expr::col(("i", "sent_at")).is_null())
        .lock_with_tables(LockType::Update, ["i"])
        .to_owned();
    and_key_share(&q, "u")
}

/// Records the invite sent, with its link's digest and expiry, unless already recorded.
fn mark_sent(
    invite_id: Uuid,
    token_hash: &secret::TokenHash,
    expires: chrono::DateTime<Utc>,
) -> UpdateStatement {
    use sea_orm::sea_query::ExprTrait;
    Query::update()
        .table("invites")
        .value("token_hash", token_hash.as_str())
        .value("expires_at", expires)
        .value("sent_at", now())
        .and_where(Expr::col("id").eq(invite_id))
        .and_where(Expr::col("sent_at").is_null())
        .to_owned()
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
    let attempt = || async { db.execute(&mark_sent(invite_id, token_hash, expires)).await };
    let recorded = tokio::time::timeout(
        RECORD_PATIENCE,
        attempt
            .retry(common::retry::until_reachable())
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

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn the_pending_invite_is_read_under_both_locks_and_marked_sent_once() {
        let pending = pending_invite(Uuid::nil(), Uuid::nil());
        assert_eq!(
            pending.sql,
            r#"SELECT "i"."id", "i"."email", "u"."active", "u"."display_name", "u"."given_name", "u"."family_name", "o"."name" AS "org_name" FROM "invites" AS "i" INNER JOIN "users" AS "u" ON "u"."id" = "i"."user_id" INNER JOIN "orgs" AS "o" ON "o"."id" = "i"."org_id" WHERE "i"."user_id" = $1 AND "i"."org_id" = $2 AND "i"."sent_at" IS NULL FOR UPDATE OF "i" FOR KEY SHARE OF "u""#
        );
        assert_eq!(pending.values.map(|v| v.0.len()), Some(2));
        let hash = secret::TokenHash("digest".into());
        let (sql, values) = mark_sent(Uuid::nil(), &hash, Utc::now()).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "invites" SET "token_hash" = $1, "expires_at" = $2, "sent_at" = now() WHERE "id" = $3 AND "sent_at" IS NULL"#
        );
        assert_eq!(values.0.len(), 3);
    }
}
