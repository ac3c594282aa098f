//! Integration credentials (docs/messages.md, "Who may publish commands"): issued and
//! revoked by an admin. Credentials arrive as digests only.

use super::{Audit, Tx, admin::lock_org, audit};
use common::{
    db::stmt,
    messages::{CreateIntegration, Envelope, Reply, RevokeIntegration},
};
use sea_orm::{ConnectionTrait, DbErr};
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
    let row = tx
        .query_one_raw(stmt(
            "INSERT INTO integration_credentials (id, org_id, name, token_hash, hint) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING created_at",
            [
                cmd.integration_id.into(),
                org_id.into(),
                name.into(),
                cmd.credential.hash.as_str().into(),
                cmd.credential.hint.clone().into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
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

/// Revokes an integration credential of the org; the next command carrying it is refused.
/// Revoking a revoked one changes nothing; another org's id is `404`.
pub(super) async fn revoke_integration(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &RevokeIntegration,
) -> Result<Reply, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT name, revoked_at IS NOT NULL AS revoked FROM integration_credentials \
             WHERE id = $1 AND org_id = $2 FOR UPDATE",
            [cmd.integration_id.into(), org_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(Reply::error(404, None, "integration not found"));
    };
    if row.try_get::<bool>("", "revoked")? {
        return Ok(Reply::ok(204, serde_json::Value::Null));
    }
    tx.execute_raw(stmt(
        "UPDATE integration_credentials SET revoked_at = now() WHERE id = $1 AND org_id = $2",
        [cmd.integration_id.into(), org_id.into()],
    ))
    .await?;
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
