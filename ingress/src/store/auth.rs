//! Secrets looked up by their digest: the SCIM bearer token (read on every SCIM request,
//! the hot path, so hand-written: one indexed lookup by `token_hash`) and the admin key.

use common::{
    db::{entities::org, stmt},
    secret::TokenHash,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

/// The org of a live SCIM token with this digest, while provisioning is on, and the
/// stored digest (the caller confirms it in constant time).
pub async fn scim_token(
    db: &impl ConnectionTrait,
    presented: &TokenHash,
) -> Result<Option<(Uuid, TokenHash)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT t.org_id, t.token_hash AS hash FROM scim_tokens t JOIN orgs o ON o.id = t.org_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND o.provisioning_enabled",
            [presented.as_str().into()],
        ))
        .await?;
    row.map(|r| Ok((r.try_get("", "org_id")?, TokenHash(r.try_get("", "hash")?))))
        .transpose()
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
