//! User commands: create (RFC 7644 §3.3), with the per-org case-insensitive `userName`
//! uniqueness answered as `409 uniqueness`.

use super::{ApplyContext, Audit, audit, enqueue_event, none_string};
use common::{
    db::{entities::user, stmt},
    messages::{CreateUser, Envelope, Reply, UserEvent, events},
    scim::model::{UserInput, render_user},
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub(super) async fn create(
    tx: &DatabaseTransaction,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &CreateUser,
) -> Result<Reply, DbErr> {
    let input = match UserInput::from_json(cmd.resource.clone()) {
        Ok(u) => u,
        Err(e) => return Ok(Reply::error(e.status, e.scim_type.as_deref(), e.detail)),
    };
    let org_exists = tx
        .query_one_raw(stmt(
            "SELECT 1 AS one FROM orgs WHERE id = $1",
            [org_id.into()],
        ))
        .await?
        .is_some();
    if !org_exists {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    let id = Uuid::now_v7();
    let row = tx
        .query_one_raw(stmt(
            "INSERT INTO users (id, org_id, user_name, external_id, active, display_name, given_name, \
                                family_name, email, resource, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, now(), now()) \
             ON CONFLICT (org_id, lower(user_name)) DO NOTHING \
             RETURNING *",
            [
                id.into(),
                org_id.into(),
                input.user_name.clone().into(),
                input.external_id.clone().map_or_else(none_string, Into::into),
                input.active.into(),
                input.display_name.clone().map_or_else(none_string, Into::into),
                input.given_name.clone().map_or_else(none_string, Into::into),
                input.family_name.clone().map_or_else(none_string, Into::into),
                input.email.clone().map_or_else(none_string, Into::into),
                Value::Object(input.resource.clone()).into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(Reply::error(
            409,
            Some("uniqueness"),
            format!("a user with userName {:?} already exists", input.user_name),
        ));
    };
    let stored = user::Model::from_query_result(&row, "")?;
    let rendered = render_user(&stored.as_stored(), &ctx.scim_base);

    let mut changes: Map<String, Value> = input.resource.clone();
    changes.retain(|k, _| !k.eq_ignore_ascii_case("schemas"));
    changes.insert("active".into(), json!(stored.active));
    let event = Envelope::new(
        events::USER_CREATED,
        Some(org_id),
        &env.correlation_id,
        UserEvent {
            user_id: stored.id,
            version: stored.version,
            user_name: stored.user_name.clone(),
            changes,
        },
    );
    enqueue_event(tx, &event).await?;
    // The invite is decided now, with the org's setting as it is at creation; the mailer
    // sends what this row asks for, once.
    let address = stored.email.clone().or_else(|| {
        stored
            .user_name
            .contains('@')
            .then(|| stored.user_name.clone())
    });
    if let Some(email) = address {
        tx.execute_raw(stmt(
            "INSERT INTO invites (id, org_id, user_id, email) \
             SELECT $1, id, $3, $4 FROM orgs WHERE id = $2 AND send_invites",
            [
                Uuid::now_v7().into(),
                org_id.into(),
                stored.id.into(),
                email.into(),
            ],
        ))
        .await?;
    }
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "user.created",
            resource_type: "User",
            resource_id: Some(stored.id.to_string()),
            detail: json!({"userName": stored.user_name, "externalId": stored.external_id}),
        },
    )
    .await?;
    Ok(Reply::ok(201, rendered))
}
