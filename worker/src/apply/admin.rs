//! Admin commands: creating an org, switching provisioning on and off, rotating the SCIM
//! token, changing org settings, and accepting an invite. Tokens arrive as digests only.

use super::{Audit, audit};
use common::{
    db::stmt,
    messages::{
        AcceptInvite, CreateOrg, Envelope, NewToken, Reply, RotateScimToken, SetMappings,
        SetProvisioning, UpdateSettings,
    },
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde_json::json;
use uuid::Uuid;

pub(super) async fn create_org(
    tx: &DatabaseTransaction,
    env: &Envelope,
    cmd: &CreateOrg,
) -> Result<Reply, DbErr> {
    let name = cmd.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Ok(Reply::error(400, None, "name must be 1 to 200 characters"));
    }
    let inserted = tx
        .query_one_raw(stmt(
            "INSERT INTO orgs (id, name, admin_key_hash) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING RETURNING id",
            [
                cmd.org_id.into(),
                name.into(),
                cmd.admin_key_hash.as_str().into(),
            ],
        ))
        .await?;
    if inserted.is_none() {
        return Ok(Reply::error(
            409,
            None,
            "an organisation with this id or key already exists",
        ));
    }
    audit(
        tx,
        env,
        Some(cmd.org_id),
        Audit {
            action: "org.created",
            resource_type: "Org",
            resource_id: Some(cmd.org_id.to_string()),
            detail: json!({"name": name}),
        },
    )
    .await?;
    Ok(Reply::ok(201, json!({"id": cmd.org_id, "name": name})))
}

/// Locks the org row; `None` when it does not exist.
async fn lock_org(tx: &DatabaseTransaction, org_id: Uuid) -> Result<Option<bool>, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT provisioning_enabled FROM orgs WHERE id = $1 FOR UPDATE",
            [org_id.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<bool>("", "provisioning_enabled"))
        .transpose()
}

async fn revoke_tokens(tx: &DatabaseTransaction, org_id: Uuid) -> Result<(), DbErr> {
    tx.execute_raw(stmt(
        "UPDATE scim_tokens SET revoked_at = now() WHERE org_id = $1 AND revoked_at IS NULL",
        [org_id.into()],
    ))
    .await?;
    Ok(())
}

async fn insert_token(
    tx: &DatabaseTransaction,
    org_id: Uuid,
    token: &NewToken,
) -> Result<(), DbErr> {
    tx.execute_raw(stmt(
        "INSERT INTO scim_tokens (id, org_id, token_hash, hint) VALUES ($1, $2, $3, $4)",
        [
            Uuid::now_v7().into(),
            org_id.into(),
            token.hash.as_str().into(),
            token.hint.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

pub(super) async fn set_provisioning(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SetProvisioning,
) -> Result<Reply, DbErr> {
    let Some(was_enabled) = lock_org(tx, org_id).await? else {
        return Ok(Reply::error(404, None, "organisation not found"));
    };
    let token_issued = match (cmd.enabled, was_enabled, &cmd.token) {
        (true, false, Some(token)) => {
            revoke_tokens(tx, org_id).await?;
            insert_token(tx, org_id, token).await?;
            true
        }
        (true, false, None) => {
            return Ok(Reply::error(
                400,
                None,
                "enabling provisioning needs a token",
            ));
        }
        (true, true, _) => false,
        (false, _, _) => {
            revoke_tokens(tx, org_id).await?;
            false
        }
    };
    tx.execute_raw(stmt(
        "UPDATE orgs SET provisioning_enabled = $2 WHERE id = $1",
        [org_id.into(), cmd.enabled.into()],
    ))
    .await?;
    if cmd.enabled != was_enabled {
        audit(
            tx,
            env,
            Some(org_id),
            Audit {
                action: if cmd.enabled {
                    "provisioning.enabled"
                } else {
                    "provisioning.disabled"
                },
                resource_type: "Provisioning",
                resource_id: None,
                detail: json!({}),
            },
        )
        .await?;
    }
    Ok(Reply::ok(
        200,
        json!({"enabled": cmd.enabled, "token_issued": token_issued}),
    ))
}

pub(super) async fn rotate_token(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Uuid,
    cmd: &RotateScimToken,
) -> Result<Reply, DbErr> {
    match lock_org(tx, org_id).await? {
        None => return Ok(Reply::error(404, None, "organisation not found")),
        Some(false) => {
            return Ok(Reply::error(
                409,
                None,
                "provisioning is not enabled; enable it to get a token",
            ));
        }
        Some(true) => {}
    }
    revoke_tokens(tx, org_id).await?;
    insert_token(tx, org_id, &cmd.token).await?;
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "provisioning.token_rotated",
            resource_type: "Provisioning",
            resource_id: None,
            detail: json!({"hint": cmd.token.hint}),
        },
    )
    .await?;
    Ok(Reply::ok(200, json!({"rotated": true})))
}

pub(super) async fn accept_invite(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Uuid,
    cmd: &AcceptInvite,
) -> Result<Reply, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            "UPDATE invites SET accepted_at = COALESCE(accepted_at, now()) \
             WHERE token_hash = $1 AND org_id = $2 AND expires_at > now() \
             RETURNING user_id",
            [cmd.token_hash.as_str().into(), org_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(Reply::error(
            404,
            None,
            "this invite does not exist or has expired",
        ));
    };
    let user_id: Uuid = row.try_get("", "user_id")?;
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "invite.accepted",
            resource_type: "User",
            resource_id: Some(user_id.to_string()),
            detail: json!({}),
        },
    )
    .await?;
    Ok(Reply::ok(
        200,
        json!({"accepted": true, "user_id": user_id}),
    ))
}

pub(super) async fn update_settings(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Uuid,
    cmd: &UpdateSettings,
) -> Result<Reply, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            "UPDATE orgs SET send_invites = COALESCE($2, send_invites), \
                 lock_synced_fields = COALESCE($3, lock_synced_fields) \
             WHERE id = $1 RETURNING send_invites, lock_synced_fields",
            [
                org_id.into(),
                cmd.send_invites.into(),
                cmd.lock_synced_fields.into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(Reply::error(404, None, "organisation not found"));
    };
    let settings = json!({
        "send_invites": row.try_get::<bool>("", "send_invites")?,
        "lock_synced_fields": row.try_get::<bool>("", "lock_synced_fields")?,
    });
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "settings.updated",
            resource_type: "Settings",
            resource_id: None,
            detail: serde_json::to_value(cmd).unwrap_or_default(),
        },
    )
    .await?;
    Ok(Reply::ok(200, settings))
}

pub(super) async fn set_mappings(
    tx: &DatabaseTransaction,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SetMappings,
) -> Result<Reply, DbErr> {
    if let Err(e) = common::mapping::validate(&cmd.mappings) {
        return Ok(Reply::error(400, None, e));
    }
    if lock_org(tx, org_id).await?.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    tx.execute_raw(stmt(
        "DELETE FROM field_mappings WHERE org_id = $1",
        [org_id.into()],
    ))
    .await?;
    for (position, m) in cmd.mappings.iter().enumerate() {
        tx.execute_raw(stmt(
            "INSERT INTO field_mappings (org_id, field, scim_attribute, policy, position) VALUES ($1, $2, $3, $4, $5)",
            [
                org_id.into(),
                m.field.clone().into(),
                m.scim_attribute.trim().into(),
                m.policy.as_str().into(),
                i32::try_from(position).unwrap_or(i32::MAX).into(),
            ],
        ))
        .await?;
    }
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "mappings.updated",
            resource_type: "Mappings",
            resource_id: None,
            detail: serde_json::to_value(&cmd.mappings).unwrap_or_default(),
        },
    )
    .await?;
    Ok(Reply::ok(200, json!({"mappings": cmd.mappings})))
}
