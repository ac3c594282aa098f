//! The mailer's statements: a batch's pending invites read under their locks, and an
//! invite recorded sent (in the batch's transaction, or alone after it failed).

use backon::Retryable;
use chrono::{DateTime, Utc};
use common::{
    db::{is_transient, reads::invites_with_their_person, redact, sql::and_key_share, uuid_array},
    secret::TokenHash,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, FromQueryResult, Statement,
    sea_query::{Expr, JoinType, LockType, Order, PgFunc, Query, SelectStatement, UpdateStatement},
};
use std::time::Duration;
use uuid::Uuid;

/// An unsent invite and what its mail needs.
#[derive(Debug, FromQueryResult)]
pub(crate) struct Pending {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) org_id: Uuid,
    pub(crate) email: String,
    pub(crate) active: bool,
    pub(crate) display_name: Option<String>,
    pub(crate) given_name: Option<String>,
    pub(crate) family_name: Option<String>,
    pub(crate) org_name: String,
}

/// The unsent invites of these people, with what the mail needs, each invite row locked
/// `FOR UPDATE` and its person `FOR KEY SHARE`, in the people's order, the order the
/// worker's batches lock people in (`worker/src/apply/commit.rs`, `lock_in_order`), and
/// the same for two mailer batches that share an invite. That makes waits in a circle
/// rare, not impossible (a person's delete takes the person, then the invite by cascade;
/// `register_links` updates in the invites' order): PostgreSQL breaks one with an error
/// the batch retries as transient, before any of its mail is sent. sea-query writes one
/// locking clause, so the second is appended to the rendered SQL; it binds nothing, so
/// the builder's numbering stands.
pub(crate) fn pending_invites(people: &[Uuid]) -> Statement {
    // Imported here, not for the module: there it makes `max` on numbers ambiguous.
    use sea_orm::sea_query::ExprTrait;
    let q = invites_with_their_person()
        .columns([
            ("i", "id"),
            ("i", "user_id"),
            ("i", "org_id"),
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
        .and_where(Expr::col(("i", "user_id")).eq(PgFunc::any(uuid_array(people))))
        .and_where(Expr::col(("i", "sent_at")).is_null())
        .order_by(("i", "user_id"), Order::Asc)
        .lock_with_tables(LockType::Update, ["i"])
        .to_owned();
    and_key_share(&q, "u")
}

/// The ids of these people's unsent invites, read without a lock.
pub(crate) fn unsent_invites(people: &[Uuid]) -> SelectStatement {
    common::db::reads::unsent_invites_of(people)
        .column("id")
        .to_owned()
}

/// Gives unsent invites their links' digests (`links`: invite id, digest) and an expiry,
/// so a link works from the moment its mail can arrive, before the batch that sends it
/// has recorded it sent.
pub(crate) fn register_links(
    links: &[(Uuid, TokenHash)],
    expires_at: DateTime<Utc>,
) -> UpdateStatement {
    use sea_orm::sea_query::{CaseStatement, ExprTrait};
    let digests = links.iter().fold(CaseStatement::new(), |case, (id, hash)| {
        case.case(Expr::col("id").eq(*id), hash.as_str())
    });
    let ids: Vec<Uuid> = links.iter().map(|(id, _)| *id).collect();
    Query::update()
        .table("invites")
        .value("token_hash", digests.finally(Expr::col("token_hash")))
        .value("expires_at", expires_at)
        .and_where(Expr::col("id").eq(PgFunc::any(uuid_array(&ids))))
        .and_where(Expr::col("sent_at").is_null())
        .to_owned()
}

/// What records one invite sent: its link's digest, when the link expires and when the
/// SMTP server accepted the mail.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub(crate) invite_id: Uuid,
    pub(crate) token_hash: TokenHash,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) accepted_at: DateTime<Utc>,
}

/// Records the invite sent, unless already recorded.
pub(crate) fn mark_sent(sent: &Sent) -> UpdateStatement {
    use sea_orm::sea_query::ExprTrait;
    Query::update()
        .table("invites")
        .value("token_hash", sent.token_hash.as_str())
        .value("expires_at", sent.expires_at)
        .value("sent_at", sent.accepted_at)
        .and_where(Expr::col("id").eq(sent.invite_id))
        .and_where(Expr::col("sent_at").is_null())
        .to_owned()
}

/// How long a sent invite's record is retried through a database outage.
const RECORD_PATIENCE: Duration = Duration::from_secs(600);

/// Records a sent invite outside the failed transaction, retrying through a database
/// outage for up to `RECORD_PATIENCE`. Giving up then (logged as an error) leaves the
/// invite unrecorded rather than sending it twice.
pub(crate) async fn record_sent(db: &DatabaseConnection, sent: &Sent) {
    let invite_id = sent.invite_id;
    let attempt = || async { db.execute(&mark_sent(sent)).await };
    let recorded = tokio::time::timeout(
        RECORD_PATIENCE,
        attempt
            .retry(common::retry::until_reachable())
            .when(is_transient),
    )
    .await;
    match recorded {
        Ok(Ok(_)) => tracing::info!(%invite_id, "sent invite recorded"),
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
    fn a_batch_reads_its_pending_invites_under_both_locks_in_order_and_marks_each_once() {
        let pending = pending_invites(&[Uuid::nil(), Uuid::max()]);
        assert_eq!(
            pending.sql,
            r#"SELECT "i"."id", "i"."user_id", "i"."org_id", "i"."email", "u"."active", "u"."display_name", "u"."given_name", "u"."family_name", "o"."name" AS "org_name" FROM "invites" AS "i" INNER JOIN "users" AS "u" ON "u"."id" = "i"."user_id" INNER JOIN "orgs" AS "o" ON "o"."id" = "i"."org_id" WHERE "i"."user_id" = ANY($1) AND "i"."sent_at" IS NULL ORDER BY "i"."user_id" ASC FOR UPDATE OF "i" FOR KEY SHARE OF "u""#
        );
        assert_eq!(pending.values.map(|v| v.0.len()), Some(1), "one array");
        let sent = Sent {
            invite_id: Uuid::nil(),
            token_hash: TokenHash("digest".into()),
            expires_at: Utc::now(),
            accepted_at: Utc::now(),
        };
        let (sql, values) = mark_sent(&sent).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "invites" SET "token_hash" = $1, "expires_at" = $2, "sent_at" = $3 WHERE "id" = $4 AND "sent_at" IS NULL"#
        );
        assert_eq!(values.0.len(), 4);
    }

    #[test]
    fn links_are_registered_for_unsent_invites_only() {
        let (sql, values) = unsent_invites(&[Uuid::nil()]).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "id" FROM "invites" WHERE "user_id" = ANY($1) AND "sent_at" IS NULL"#
        );
        assert_eq!(values.0.len(), 1);
        let links = [
            (Uuid::nil(), TokenHash("a".into())),
            (Uuid::max(), TokenHash("b".into())),
        ];
        let (sql, values) = register_links(&links, Utc::now()).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "invites" SET "token_hash" = (CASE WHEN ("id" = $1) THEN $2 WHEN ("id" = $3) THEN $4 ELSE "token_hash" END), "expires_at" = $5 WHERE "id" = ANY($6) AND "sent_at" IS NULL"#
        );
        assert_eq!(values.0.len(), 6);
    }
}
