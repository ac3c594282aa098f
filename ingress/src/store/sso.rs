//! Employee sign-in's reads: the org's OpenID Connect client, and whether a session still
//! holds.

use common::db::reads::users_with_their_org;
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

/// The org's OpenID Connect settings as stored (the secret sealed).
#[derive(Debug, FromQueryResult)]
pub struct OrgOidc {
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<String>,
    pub oidc_claim: Option<String>,
    pub oidc_generation: i64,
}

/// The org's sign-in settings (`None`: no such org).
pub async fn org_oidc(db: &impl ConnectionTrait, org: Uuid) -> Result<Option<OrgOidc>, DbErr> {
    let q = Query::select()
        .columns([
            "oidc_issuer",
            "oidc_client_id",
            "oidc_client_secret",
            "oidc_claim",
            "oidc_generation",
        ])
        .from("orgs")
        .and_where(Expr::col("id").eq(org))
        .to_owned();
    OrgOidc::find_by_statement(db.get_database_backend().build(&q))
        .one(db)
        .await
}

/// Whether a session of `user` signed in at these generations still holds: the person
/// active and not signed out everywhere since, the org's sign-in on and unchanged since.
pub async fn session_valid(
    db: &impl ConnectionTrait,
    org: Uuid,
    user: Uuid,
    person_generation: i64,
    org_generation: i64,
) -> Result<bool, DbErr> {
    let q = users_with_their_org()
        .expr_as(
            Expr::col(("u", "active"))
                .and(Expr::col(("o", "oidc_issuer")).is_not_null())
                .and(Expr::col(("u", "session_generation")).eq(person_generation))
                .and(Expr::col(("o", "oidc_generation")).eq(org_generation)),
            "valid",
        )
        .and_where(Expr::col(("u", "id")).eq(user))
        .and_where(Expr::col(("u", "org_id")).eq(org))
        .to_owned();
    let row = db.query_one(&q).await?;
    Ok(row
        .map(|r| r.try_get::<bool>("", "valid"))
        .transpose()?
        .unwrap_or(false))
}
