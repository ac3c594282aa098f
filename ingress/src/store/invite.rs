//! The invite a link's token opens (`/invite/{token}`), looked up by its digest.

use common::secret::TokenHash;
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Expr, ExprTrait, JoinType, Query, SelectStatement},
};
use uuid::Uuid;

/// What the confirmation page needs of an invite, its person and its org.
#[derive(Debug, FromQueryResult)]
pub struct Invite {
    pub used: bool,
    pub expired: bool,
    /// Whether the person is active.
    pub active: bool,
    pub given_name: Option<String>,
    pub org_name: String,
    /// Whether the org has employee sign-in.
    pub sso: bool,
}

/// `invites i JOIN orgs o`, the invite whose token has this digest.
fn by_digest(hash: &TokenHash) -> SelectStatement {
    Query::select()
        .from_as("invites", "i")
        .join_as(
            JoinType::InnerJoin,
            "orgs",
            "o",
            Expr::col(("o", "id")).equals(("i", "org_id")),
        )
        .and_where(Expr::col(("i", "token_hash")).eq(hash.as_str()))
        .to_owned()
}

/// The invite whose token has this digest.
pub async fn by_token(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
) -> Result<Option<Invite>, DbErr> {
    let q = by_digest(hash)
        .expr_as(Expr::col(("i", "accepted_at")).is_not_null(), "used")
        .expr_as(
            Expr::col(("i", "expires_at"))
                .is_null()
                .or(Expr::col(("i", "expires_at")).lte(Expr::cust("now()"))),
            "expired",
        )
        .column(("u", "active"))
        .column(("u", "given_name"))
        .expr_as(Expr::col(("o", "name")), "org_name")
        .expr_as(Expr::col(("o", "oidc_issuer")).is_not_null(), "sso")
        .join_as(
            JoinType::InnerJoin,
            "users",
            "u",
            Expr::col(("u", "id")).equals(("i", "user_id")),
        )
        .to_owned();
    Invite::find_by_statement(db.get_database_backend().build(&q))
        .one(db)
        .await
}

/// The org of the invite whose token has this digest, and whether it has employee sign-in.
pub async fn org_of(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
) -> Result<Option<(Uuid, bool)>, DbErr> {
    let q = by_digest(hash)
        .column(("i", "org_id"))
        .expr_as(Expr::col(("o", "oidc_issuer")).is_not_null(), "sso")
        .to_owned();
    let row = db.query_one(&q).await?;
    row.map(|r| Ok((r.try_get("", "org_id")?, r.try_get("", "sso")?)))
        .transpose()
}
