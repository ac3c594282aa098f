//! Admin commands: creating an org, switching provisioning on and off, rotating the SCIM
//! token and the admin key, changing org settings and field mappings. Tokens arrive as
//! digests only.

mod statements;

use super::Tx;
use super::{Audit, audit};
use common::{
    db::entities::{field_mapping, org, scim_token},
    messages::{
        CreateOrg, DeactivatedPeople, Envelope, NewToken, Reply, RotateAdminKey, RotateScimToken,
        SetMappings, SetProvisioning, UpdateSettings,
    },
    org_chart,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, LockType, Query},
};
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) async fn create_org(
    tx: &Tx<'_>,
    env: &Envelope,
    cmd: &CreateOrg,
) -> Result<Reply, DbErr> {
    let name = cmd.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Ok(Reply::error(400, None, "name must be 1 to 200 characters"));
    }
    let inserted = tx.query_one(&statements::insert_org(cmd, name)?).await?;
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
    );
    Ok(Reply::ok(201, json!({"id": cmd.org_id, "name": name})))
}

/// Locks the org row; `None` when it does not exist. `FOR NO KEY UPDATE`: admin commands
/// of the org serialise on it, while it does not conflict with the key-share lock every
/// command holds on its org (`apply`) — two admin commands each upgrading that to
/// `FOR UPDATE` would deadlock.
pub(super) async fn lock_org(tx: &Tx<'_>, org_id: Uuid) -> Result<Option<bool>, DbErr> {
    let lock = Query::select()
        .column("provisioning_enabled")
        .from("orgs")
        .and_where(Expr::col("id").eq(org_id))
        .lock(LockType::NoKeyUpdate)
        .to_owned();
    let row = tx.query_one(&lock).await?;
    row.map(|r| r.try_get::<bool>("", "provisioning_enabled"))
        .transpose()
}

/// The activity entry of a change to the org's own settings (no one resource).
fn org_audit<'a>(action: &'a str, resource_type: &'a str, detail: Value) -> Audit<'a> {
    Audit {
        action,
        resource_type,
        resource_id: None,
        detail,
    }
}

/// Revokes the org's live SCIM tokens (as of the transaction's start).
async fn revoke_tokens(tx: &Tx<'_>, org_id: Uuid) -> Result<(), DbErr> {
    scim_token::Entity::update_many()
        .col_expr(scim_token::Column::RevokedAt, Expr::current_timestamp())
        .filter(scim_token::Column::OrgId.eq(org_id))
        .filter(scim_token::Column::RevokedAt.is_null())
        .exec(tx)
        .await?;
    Ok(())
}

async fn insert_token(tx: &Tx<'_>, org_id: Uuid, token: &NewToken) -> Result<(), DbErr> {
    let row = scim_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org_id),
        token_hash: Set(token.hash.as_str().to_owned()),
        hint: Set(token.hint.clone()),
        ..Default::default()
    };
    scim_token::Entity::insert(row)
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// Sets one column of the org's row.
async fn set_org(tx: &Tx<'_>, org_id: Uuid, col: org::Column, value: Expr) -> Result<(), DbErr> {
    org::Entity::update_many()
        .col_expr(col, value)
        .filter(org::Column::Id.eq(org_id))
        .exec(tx)
        .await?;
    Ok(())
}

pub(super) async fn set_provisioning(
    tx: &Tx<'_>,
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
    let enabled = Expr::value(cmd.enabled);
    set_org(tx, org_id, org::Column::ProvisioningEnabled, enabled).await?;
    if cmd.enabled != was_enabled {
        let action = if cmd.enabled {
            "provisioning.enabled"
        } else {
            "provisioning.disabled"
        };
        let entry = org_audit(action, "Provisioning", json!({}));
        audit(tx, env, Some(org_id), entry);
    }
    Ok(Reply::ok(
        200,
        json!({"enabled": cmd.enabled, "token_issued": token_issued}),
    ))
}

pub(super) async fn rotate_token(
    tx: &Tx<'_>,
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
    let detail = json!({"hint": cmd.token.hint});
    let entry = org_audit("provisioning.token_rotated", "Provisioning", detail);
    audit(tx, env, Some(org_id), entry);
    Ok(Reply::ok(200, json!({"rotated": true})))
}

/// Replaces the org's admin key. The ingress looks the key up by digest on every request
/// (and checks `/admin` sessions against it), so the old key stops working at commit.
pub(super) async fn rotate_admin_key(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &RotateAdminKey,
) -> Result<Reply, DbErr> {
    if lock_org(tx, org_id).await?.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    let hash = Expr::value(cmd.admin_key_hash.as_str());
    set_org(tx, org_id, org::Column::AdminKeyHash, hash).await?;
    let entry = org_audit("admin_key.rotated", "Org", json!({}));
    audit(tx, env, Some(org_id), entry);
    Ok(Reply::ok(200, json!({"rotated": true})))
}

pub(super) async fn update_settings(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &UpdateSettings,
) -> Result<Reply, DbErr> {
    if let Some(Err(e)) = cmd.deactivated_people.map(|p| p.validate()) {
        return Ok(Reply::error(400, None, e));
    }
    let erase_after = cmd
        .deactivated_people
        .and_then(|p| p.after_days())
        .and_then(|d| i32::try_from(d).ok());
    if let Some(Err(e)) = cmd.deprovision_guard.as_ref().map(|g| g.validate()) {
        return Ok(Reply::error(400, None, e));
    }
    if let Some(keys) = &cmd.manager_match
        && let Err(e) = org_chart::validate(keys)
    {
        return Ok(Reply::error(400, None, e));
    }
    let Some(row) = tx
        .query_one(&statements::settings_update(org_id, cmd, erase_after))
        .await?
    else {
        return Ok(Reply::error(404, None, "organisation not found"));
    };
    if let Some(g) = &cmd.deprovision_guard {
        super::guard::update_settings(tx, org_id, g).await?;
    }
    let settings = json!({
        "send_invites": row.try_get::<bool>("", "send_invites")?,
        "lock_synced_fields": row.try_get::<bool>("", "lock_synced_fields")?,
        "deactivated_people": DeactivatedPeople::from_days(
            row.try_get::<Option<i32>>("", "erase_deactivated_after_days")?,
        ),
        "deprovision_guard": super::guard::settings_json(tx, org_id).await?,
        "manager_match": row.try_get::<serde_json::Value>("", "manager_match")?,
    });
    let detail = serde_json::to_value(cmd).unwrap_or_default();
    let entry = org_audit("settings.updated", "Settings", detail);
    audit(tx, env, Some(org_id), entry);
    Ok(Reply::ok(200, settings))
}

pub(super) async fn set_mappings(
    tx: &Tx<'_>,
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
    field_mapping::Entity::delete_many()
        .filter(field_mapping::Column::OrgId.eq(org_id))
        .exec(tx)
        .await?;
    let rows = cmd
        .mappings
        .iter()
        .enumerate()
        .map(|(position, m)| field_mapping::ActiveModel {
            org_id: Set(org_id),
            field: Set(m.field.clone()),
            scim_attribute: Set(m.scim_attribute.trim().to_owned()),
            policy: Set(m.policy.as_str().to_owned()),
            position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
        });
    if !cmd.mappings.is_empty() {
        field_mapping::Entity::insert_many(rows)
            .exec_without_returning(tx)
            .await?;
    }
    let detail = serde_json::to_value(&cmd.mappings).unwrap_or_default();
    let entry = org_audit("mappings.updated", "Mappings", detail);
    audit(tx, env, Some(org_id), entry);
    Ok(Reply::ok(200, json!({"mappings": cmd.mappings})))
}
