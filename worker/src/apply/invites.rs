//! Invites in the worker: when one is due (a person first active in the directory, if the
//! org sends invites), and accepting one (by its link, or by signing in from it). The
//! mailer sends them (docs/reliability.md, "Invites").

use super::{Audit, Tx, audit};
use common::{
    db::{
        entities::user,
        reads::invites_with_their_person,
        sql::{and_key_share, now},
    },
    messages::{AcceptInvite, Envelope, Reply},
};
use sea_orm::{
    ConnectionTrait, DbErr, Statement,
    sea_query::{Expr, ExprTrait, LockType, Query, UpdateStatement},
};
use serde_json::{Value, json};
use uuid::Uuid;

/// The address an invite goes to: the email, else a `userName` that is one.
pub(super) fn invite_address(u: &user::Model) -> Option<String> {
    u.email
        .clone()
        .or_else(|| u.user_name.contains('@').then(|| u.user_name.clone()))
}

/// A person active for the first time (created inactive, now activated) is due an invite
/// if the org sends them; one who was active before is not (their invite, if any, was
/// decided then, and a pending one is sent on the `user.reactivated` event).
pub(super) async fn first_activation(
    tx: &Tx<'_>,
    org_id: Uuid,
    u: &user::Model,
) -> Result<(), DbErr> {
    let first = tx.query_one(&activate(org_id, u.id)).await?;
    if first.is_some()
        && let Some(email) = invite_address(u)
    {
        tx.effects().invites.push(super::effects::Invite {
            id: Uuid::now_v7(),
            org_id,
            user_id: u.id,
            email,
        });
    }
    Ok(())
}

/// Accepts an invite once: an unknown token is `404`, an expired one `410`, a used one
/// `409` — each with no effect. The row is locked, so two clicks at once accept once.
pub(super) async fn accept_invite(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &AcceptInvite,
) -> Result<Reply, DbErr> {
    let Some(row) = tx
        .query_one_raw(invite_by_token(cmd.token_hash.as_str(), org_id))
        .await?
    else {
        return Ok(Reply::error(404, None, "this invite does not exist"));
    };
    if row.try_get::<bool>("", "used")? {
        return Ok(Reply::error(409, None, "this invite was already used"));
    }
    if row.try_get::<bool>("", "expired")? {
        return Ok(Reply::error(410, None, "this invite has expired"));
    }
    // Only a person in the directory may accept: one deactivated since the invite was sent
    // is not (reactivated, the same link works again).
    if !row.try_get::<bool>("", "active")? {
        return Ok(Reply::error(
            403,
            None,
            "this person is not active in the directory; ask your administrator",
        ));
    }
    let invite_id: Uuid = row.try_get("", "id")?;
    let user_id: Uuid = row.try_get("", "user_id")?;
    let accept = Query::update()
        .table("invites")
        .value("accepted_at", now())
        .and_where(Expr::col("id").eq(invite_id))
        .to_owned();
    tx.execute(&accept).await?;
    audit(tx, env, Some(org_id), accepted(user_id, json!({})));
    Ok(Reply::ok(
        200,
        json!({"accepted": true, "user_id": user_id}),
    ))
}

/// Accepts the person's own open invite as they sign in (`person.sign_in` names the invite
/// the sign-in came from); someone else's, a used or an expired one is left as it is (the
/// sign-in still counts).
pub(super) async fn accept_on_sign_in(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    user_id: Uuid,
    hash: &str,
) -> Result<bool, DbErr> {
    let row = tx.query_one(&accept_open(hash, org_id, user_id)).await?;
    if row.is_none() {
        return Ok(false);
    }
    audit(
        tx,
        env,
        Some(org_id),
        accepted(user_id, json!({"by": "sign_in"})),
    );
    Ok(true)
}

/// Marks the person activated unless they were before: returns `id` only the first time.
fn activate(org_id: Uuid, user_id: Uuid) -> UpdateStatement {
    Query::update()
        .table("users")
        .value("activated_at", now())
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("activated_at").is_null())
        .returning_col("id")
        .to_owned()
}

/// The invite of the token, locked, with its state and whether its person is active
/// (`id`, `user_id`, `used`, `expired`, `active`). The person's row is key-share locked too,
/// so it cannot be deleted before commit. sea-query spells one locking clause, so the
/// second is added to the built statement.
fn invite_by_token(token_hash: &str, org_id: Uuid) -> Statement {
    let expired = Expr::col(("i", "expires_at"))
        .is_null()
        .or(Expr::col(("i", "expires_at")).lte(now()));
    let q = invites_with_their_person()
        .columns([("i", "id"), ("i", "user_id")])
        .expr_as(Expr::col(("i", "accepted_at")).is_not_null(), "used")
        .expr_as(expired, "expired")
        .column(("u", "active"))
        .and_where(Expr::col(("i", "token_hash")).eq(token_hash))
        .and_where(Expr::col(("i", "org_id")).eq(org_id))
        .lock_with_tables(LockType::Update, ["i"])
        .to_owned();
    and_key_share(&q, "u")
}

/// Accepts the person's own invite of the token if it is open (not used, not expired):
/// returns `id` if it did.
fn accept_open(token_hash: &str, org_id: Uuid, user_id: Uuid) -> UpdateStatement {
    Query::update()
        .table("invites")
        .value("accepted_at", now())
        .and_where(Expr::col("token_hash").eq(token_hash))
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Expr::col("user_id").eq(user_id))
        .and_where(Expr::col("accepted_at").is_null())
        .and_where(Expr::col("expires_at").gt(now()))
        .returning_col("id")
        .to_owned()
}

/// The activity entry of an accepted invite.
fn accepted(user_id: Uuid, detail: Value) -> Audit<'static> {
    Audit {
        action: "invite.accepted",
        resource_type: "User",
        resource_id: Some(user_id.to_string()),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::db::sql::assert_sql;

    #[test]
    fn an_invite_is_read_locked_with_its_person_key_share_locked() {
        let s = invite_by_token("hash", Uuid::nil());
        assert_eq!(
            s.sql,
            r#"SELECT "i"."id", "i"."user_id", "i"."accepted_at" IS NOT NULL AS "used", "i"."expires_at" IS NULL OR "i"."expires_at" <= (now()) AS "expired", "u"."active" FROM "invites" AS "i" INNER JOIN "users" AS "u" ON "u"."id" = "i"."user_id" WHERE "i"."token_hash" = $1 AND "i"."org_id" = $2 FOR UPDATE OF "i" FOR KEY SHARE OF "u""#
        );
        assert_eq!(s.values.map(|v| v.0.len()), Some(2));
    }

    #[test]
    fn only_the_first_activation_and_an_open_invite_return_a_row() {
        assert_sql(
            &activate(Uuid::nil(), Uuid::nil()),
            r#"UPDATE "users" SET "activated_at" = now() WHERE "org_id" = $1 AND "id" = $2 AND "activated_at" IS NULL RETURNING "id""#,
            2,
        );
        assert_sql(
            &accept_open("hash", Uuid::nil(), Uuid::nil()),
            r#"UPDATE "invites" SET "accepted_at" = now() WHERE "token_hash" = $1 AND "org_id" = $2 AND "user_id" = $3 AND "accepted_at" IS NULL AND "expires_at" > (now()) RETURNING "id""#,
            3,
        );
    }
}
