//! Integration credentials (docs/messages.md, "Who may publish commands"): issued and
//! revoked by an admin. Credentials arrive as digests only.

use super::{Audit, Tx, admin::lock_org, audit};
use common::{
    db::sql::now,
    messages::{CreateIntegration, Envelope, Reply, RevokeIntegration},
};
use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Expr, ExprTrait, InsertStatement, LockType, OnConflict, Query},
};
use serde_json::json;
use uuid::Uuid;

/// Stores a new integration credential (its digest and hint) under the org.
pub(super) async fn create_integration(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &CreateIntegration,
) -> Result<Reply, DbErr> {
    let name = cmd.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Ok(Reply::error(400, None, "name must be 1 to 200 characters"));
    }
    if lock_org(tx, org_id).await?.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    let Some(row) = tx.query_one(&insert(org_id, name, cmd)).await? else {
        return Ok(Reply::error(
            409,
            None,
            "an integration with this id or credential already exists",
        ));
    };
    let created_at: chrono::DateTime<chrono::Utc> = row.try_get("", "created_at")?;
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "integration.created",
            resource_type: "Integration",
            resource_id: Some(cmd.integration_id.to_string()),
            detail: json!({"name": name, "hint": cmd.credential.hint}),
        },
    );
    Ok(Reply::ok(
        201,
        json!({"id": cmd.integration_id, "name": name, "created_at": created_at}),
    ))
}

/// The credential's row, unless its id or digest is taken (then no row): `created_at`.
fn insert(org_id: Uuid, name: &str, cmd: &CreateIntegration) -> InsertStatement {
    Query::insert()
        .into_table("integration_credentials")
        .columns(["id", "org_id", "name", "token_hash", "hint"])
        .values_panic([
            cmd.integration_id.into(),
            org_id.into(),
            name.into(),
            cmd.credential.hash.as_str().into(),
            cmd.credential.hint.as_str().into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_col("created_at")
        .to_owned()
}

/// Revokes an integration credential of the org; the next command carrying it is refused.
/// Revoking a revoked one changes nothing; another org's id is `404`.
pub(super) async fn revoke_integration(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &RevokeIntegration,
) -> Result<Reply, DbErr> {
    let lock = Query::select()
        .column("name")
        .expr_as(Expr::col("revoked_at").is_not_null(), "revoked")
        .from("integration_credentials")
        .and_where(Expr::col("id").eq(cmd.integration_id))
        .and_where(Expr::col("org_id").eq(org_id))
        .lock(LockType::Update)
        .to_owned();
    let Some(row) = tx.query_one(&lock).await? else {
        return Ok(Reply::error(404, None, "integration not found"));
    };
    if row.try_get::<bool>("", "revoked")? {
        return Ok(Reply::ok(204, serde_json::Value::Null));
    }
    let revoke = Query::update()
        .table("integration_credentials")
        .value("revoked_at", now())
        .and_where(Expr::col("id").eq(cmd.integration_id))
        .and_where(Expr::col("org_id").eq(org_id))
        .to_owned();
    tx.execute(&revoke).await?;
    let name: String = row.try_get("", "name")?;
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "integration.revoked",
            resource_type: "Integration",
            resource_id: Some(cmd.integration_id.to_string()),
            detail: json!({"name": name}),
        },
    );
    Ok(Reply::ok(204, serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::messages::NewToken;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn a_taken_id_or_digest_inserts_nothing() {
        let cmd = CreateIntegration {
            integration_id: Uuid::nil(),
            name: "HR".into(),
            credential: NewToken {
                hash: common::secret::TokenHash::of("token"),
                hint: "abcd".into(),
            },
        };
        let (sql, values) = insert(Uuid::nil(), "HR", &cmd).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"INSERT INTO "integration_credentials" ("id", "org_id", "name", "token_hash", "hint") VALUES ($1, $2, $3, $4, $5) ON CONFLICT  DO NOTHING RETURNING "created_at""#
        );
        assert_eq!(values.0.len(), 5);
    }
}
