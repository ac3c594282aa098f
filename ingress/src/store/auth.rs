//! Secrets looked up by their digest: the SCIM bearer token (read on every SCIM request,
//! the hot path, so one indexed lookup by `token_hash`) and the admin key.

use common::{db::entities::org, secret::TokenHash};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, JoinType, Query, SelectStatement},
};
use uuid::Uuid;

/// The org of a live SCIM token with this digest, while provisioning is on, and the
/// stored digest (the caller confirms it in constant time).
pub async fn scim_token(
    db: &impl ConnectionTrait,
    presented: &TokenHash,
) -> Result<Option<(Uuid, TokenHash)>, DbErr> {
    let row = db.query_one(&scim_token_query(presented)).await?;
    row.map(|r| Ok((r.try_get("", "org_id")?, TokenHash(r.try_get("", "hash")?))))
        .transpose()
}

/// `org_id` and `hash` of the unrevoked token with this digest, if its org has
/// provisioning on.
fn scim_token_query(presented: &TokenHash) -> SelectStatement {
    Query::select()
        .column(("t", "org_id"))
        .expr_as(Expr::col(("t", "token_hash")), "hash")
        .from_as("scim_tokens", "t")
        .join_as(
            JoinType::InnerJoin,
            "orgs",
            "o",
            Expr::col(("o", "id")).equals(("t", "org_id")),
        )
        .and_where(Expr::col(("t", "token_hash")).eq(presented.as_str()))
        .and_where(Expr::col(("t", "revoked_at")).is_null())
        .and_where(Expr::col(("o", "provisioning_enabled")))
        .to_owned()
}

/// The org whose admin key has this digest, and the stored digest.
pub async fn admin_key(
    db: &impl ConnectionTrait,
    presented: &TokenHash,
) -> Result<Option<(Uuid, TokenHash)>, DbErr> {
    let row: Option<(Uuid, String)> = org::Entity::find()
        .select_only()
        .column(org::Column::Id)
        .column(org::Column::AdminKeyHash)
        .filter(org::Column::AdminKeyHash.eq(presented.as_str()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.map(|(id, hash)| (id, TokenHash(hash))))
}

/// The digest of the org's current admin key (`None`: no such org).
pub async fn admin_key_hash(
    db: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Option<String>, DbErr> {
    org::Entity::find()
        .select_only()
        .column(org::Column::AdminKeyHash)
        .filter(org::Column::Id.eq(org_id))
        .into_tuple()
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn a_scim_token_is_live_unrevoked_and_with_provisioning_on() {
        let (sql, values) =
            scim_token_query(&TokenHash("digest".into())).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "t"."org_id", "t"."token_hash" AS "hash" FROM "scim_tokens" AS "t" INNER JOIN "orgs" AS "o" ON "o"."id" = "t"."org_id" WHERE "t"."token_hash" = $1 AND "t"."revoked_at" IS NULL AND "o"."provisioning_enabled""#
        );
        assert_eq!(values.0.len(), 1);
    }
}
