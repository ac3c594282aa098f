//! The statements of sign-in, built with sea-query (which numbers their placeholders).

use common::db::sql::now;
use sea_orm::sea_query::{
    Expr, ExprTrait, Func, LockType, Order, Query, SelectStatement, UpdateStatement,
};
use uuid::Uuid;

/// The columns a sign-in reads of a person.
const PERSON: [&str; 4] = ["id", "user_name", "active", "session_generation"];

/// The most directory-email matches read and locked (two active ones are refused as
/// ambiguous anyway).
const MAX_EMAIL_MATCHES: u64 = 10;

/// The org row, locked for a change of its settings: `has_secret`.
pub(super) fn lock_org(org_id: Uuid) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col("oidc_client_secret").is_not_null(), "has_secret")
        .from("orgs")
        .and_where(Expr::col("id").eq(org_id))
        .lock(LockType::Update)
        .to_owned()
}

/// Turns sign-in off: the client is forgotten and the generation moves on (the claim is
/// kept). Returns `oidc_generation`.
pub(super) fn disable(org_id: Uuid) -> UpdateStatement {
    Query::update()
        .table("orgs")
        .value("oidc_issuer", Expr::null())
        .value("oidc_client_id", Expr::null())
        .value("oidc_client_secret", Expr::null())
        .value("oidc_generation", Expr::col("oidc_generation").add(1))
        .value("oidc_updated_at", now())
        .and_where(Expr::col("id").eq(org_id))
        .returning_col("oidc_generation")
        .to_owned()
}

/// Sets the org's client; without a new sealed secret the stored one stays. The
/// generation moves on. Returns `oidc_generation`.
pub(super) fn configure(
    org_id: Uuid,
    issuer: &str,
    client_id: &str,
    secret_sealed: Option<String>,
    claim: &str,
) -> UpdateStatement {
    Query::update()
        .table("orgs")
        .value("oidc_issuer", issuer)
        .value("oidc_client_id", client_id)
        .value(
            "oidc_client_secret",
            Func::coalesce([Expr::val(secret_sealed), Expr::col("oidc_client_secret")]),
        )
        .value("oidc_claim", claim)
        .value("oidc_generation", Expr::col("oidc_generation").add(1))
        .value("oidc_updated_at", now())
        .and_where(Expr::col("id").eq(org_id))
        .returning_col("oidc_generation")
        .to_owned()
}

/// The org's sign-in settings, the row share-locked so they cannot change before commit:
/// `enabled`, `oidc_generation`, `oidc_claim`.
pub(super) fn org_settings(org_id: Uuid) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col("oidc_issuer").is_not_null(), "enabled")
        .columns(["oidc_generation", "oidc_claim"])
        .from("orgs")
        .and_where(Expr::col("id").eq(org_id))
        .lock(LockType::Share)
        .to_owned()
}

/// The person whose userName is `value` (case aside), locked.
pub(super) fn by_user_name(org_id: Uuid, value: &str) -> SelectStatement {
    Query::select()
        .columns(PERSON)
        .from("users")
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Func::lower(Expr::col("user_name")).eq(Func::lower(Expr::val(value))))
        .lock(LockType::Update)
        .to_owned()
}

/// The people whose directory email is `value` (case aside), active first, locked.
pub(super) fn by_email(org_id: Uuid, value: &str) -> SelectStatement {
    Query::select()
        .columns(PERSON)
        .from("users")
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Func::lower(Expr::cust("profile->>'email'")).eq(Func::lower(Expr::val(value))))
        .order_by("active", Order::Desc)
        .order_by("id", Order::Asc)
        .limit(MAX_EMAIL_MATCHES)
        .lock(LockType::Update)
        .to_owned()
}

/// Records when the person last signed in.
pub(super) fn signed_in(user_id: Uuid) -> UpdateStatement {
    Query::update()
        .table("users")
        .value("last_signed_in_at", now())
        .and_where(Expr::col("id").eq(user_id))
        .to_owned()
}

/// Ends every session of the person: their session generation moves on. Returns
/// `user_name`.
pub(super) fn sign_out(org_id: Uuid, user_id: Uuid) -> UpdateStatement {
    Query::update()
        .table("users")
        .value("session_generation", Expr::col("session_generation").add(1))
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("org_id").eq(org_id))
        .returning_col("user_name")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::db::sql::assert_sql;

    #[test]
    fn turning_sign_in_off_forgets_the_client_and_moves_the_generation_on() {
        assert_sql(
            &disable(Uuid::nil()),
            r#"UPDATE "orgs" SET "oidc_issuer" = NULL, "oidc_client_id" = NULL, "oidc_client_secret" = NULL, "oidc_generation" = "oidc_generation" + $1, "oidc_updated_at" = now() WHERE "id" = $2 RETURNING "oidc_generation""#,
            2,
        );
    }

    #[test]
    fn a_new_client_keeps_the_stored_secret_unless_given_one() {
        assert_sql(
            &configure(Uuid::nil(), "https://x.okta.com", "abc", None, "email"),
            r#"UPDATE "orgs" SET "oidc_issuer" = $1, "oidc_client_id" = $2, "oidc_client_secret" = COALESCE($3, "oidc_client_secret"), "oidc_claim" = $4, "oidc_generation" = "oidc_generation" + $5, "oidc_updated_at" = now() WHERE "id" = $6 RETURNING "oidc_generation""#,
            6,
        );
    }

    #[test]
    fn people_are_found_case_aside_and_locked() {
        assert_sql(
            &by_user_name(Uuid::nil(), "Jane"),
            r#"SELECT "id", "user_name", "active", "session_generation" FROM "users" WHERE "org_id" = $1 AND LOWER("user_name") = LOWER($2) FOR UPDATE"#,
            2,
        );
        assert_sql(
            &by_email(Uuid::nil(), "jane@example.com"),
            r#"SELECT "id", "user_name", "active", "session_generation" FROM "users" WHERE "org_id" = $1 AND LOWER(profile->>'email') = LOWER($2) ORDER BY "active" DESC, "id" ASC LIMIT $3 FOR UPDATE"#,
            3,
        );
    }

    #[test]
    fn sign_in_reads_the_settings_share_locked() {
        assert_sql(
            &org_settings(Uuid::nil()),
            r#"SELECT "oidc_issuer" IS NOT NULL AS "enabled", "oidc_generation", "oidc_claim" FROM "orgs" WHERE "id" = $1 FOR SHARE"#,
            1,
        );
        assert_sql(
            &lock_org(Uuid::nil()),
            r#"SELECT "oidc_client_secret" IS NOT NULL AS "has_secret" FROM "orgs" WHERE "id" = $1 FOR UPDATE"#,
            1,
        );
    }

    #[test]
    fn signing_out_moves_the_session_generation_on() {
        assert_sql(
            &sign_out(Uuid::nil(), Uuid::nil()),
            r#"UPDATE "users" SET "session_generation" = "session_generation" + $1 WHERE "id" = $2 AND "org_id" = $3 RETURNING "user_name""#,
            3,
        );
    }
}
