//! User commands: create (RFC 7644 §3.3), replace (§3.5.1), patch (§3.5.2) and delete
//! (§3.6), with per-org case-insensitive `userName` uniqueness answered as
//! `409 uniqueness`, `If-Match` as `412`, and one event per change.

use super::Tx;
use super::rows::{Field, USERS};

mod resource;
mod together;
use super::invites::{first_activation, invite_address};
use super::{
    ApplyContext, Audit, Side, audit_with, erase, guard, lock_row, manager, not_found,
    precondition_failed, record_change, scim_error,
};
use common::{
    db::{
        entities::user,
        reads::{org_mapping, user_groups},
        sql::now,
    },
    mapping,
    messages::{
        CreateUser, DeleteUser, Envelope, PatchUser, ReplaceUser, Reply, SetUserActive, UserEvent,
        events,
    },
    scim::{
        ScimError,
        model::{UserInput, render_user, set_user_groups},
        patch, schema,
    },
};
use resource::{current_resource, diff};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde_json::{Map, Value, json};
pub(super) use together::create_run;
use uuid::Uuid;

/// A create on its own. A batch applies its creates through `create_run` (`together`),
/// which writes a run of them together and calls `create_prepared` for a person with a
/// manager value of their own; this is what `apply_one` does with a create.
pub(super) async fn create(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &CreateUser,
) -> Result<Reply, DbErr> {
    match prepare(tx, org_id, cmd).await? {
        Prepared::Refused(reply) => Ok(reply),
        Prepared::Row(new) => create_prepared(tx, ctx, env, *new).await,
    }
}

/// Writes a prepared create's row, resolves its manager and links those waiting for it.
async fn create_prepared(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    new: NewUser,
) -> Result<Reply, DbErr> {
    let NewUser { row, input } = new;
    let fields = person(&input, into_object(row.resource), into_object(row.profile));
    let Some(written) = tx
        .query_one(&USERS.insert(
            row.id,
            row.org_id,
            fields.into_iter().chain([activated(input.active)]),
        ))
        .await?
    else {
        return Ok(taken(&input.user_name));
    };
    let mut stored = user::Model::from_query_result(&written, "")?;
    manager::resolve(tx, env, row.org_id, None, &mut stored).await?;
    Ok(created(tx, ctx, env, &input, &stored))
}

/// A create checked and mapped, not yet written: its row as it will be (the statement
/// sets its version and time stamps), and what the command sent.
pub(super) struct NewUser {
    row: user::Model,
    input: UserInput,
}

impl NewUser {
    /// Whether the person has a manager value of their own (their link is resolved as
    /// they are written, one at a time).
    fn has_manager_value(&self) -> bool {
        manager::own_value(&self.row).is_some()
    }
}

/// What a create comes to before anything is written.
pub(super) enum Prepared {
    /// Refused: the resource is invalid, or the org is gone.
    Refused(Reply),
    Row(Box<NewUser>),
}

/// Checks and maps a create's resource with the org's mappings (read once a batch).
pub(super) async fn prepare(
    tx: &Tx<'_>,
    org_id: Uuid,
    cmd: &CreateUser,
) -> Result<Prepared, DbErr> {
    let input = match UserInput::from_json(cmd.resource.clone()) {
        Ok(u) => u,
        Err(e) => return Ok(Prepared::Refused(scim_error(e))),
    };
    let Some(org_map) = tx.org_mapping(org_id).await? else {
        return Ok(Prepared::Refused(Reply::error(
            404,
            None,
            "organisation not found",
        )));
    };
    let mut resource = input.resource.clone();
    let profile = mapping::apply(&org_map, &mut resource, None);
    let now = chrono::Utc::now();
    let row = user::Model {
        id: Uuid::now_v7(),
        org_id,
        user_name: input.user_name.clone(),
        external_id: input.external_id.clone(),
        active: input.active,
        display_name: input.display_name.clone(),
        given_name: input.given_name.clone(),
        family_name: input.family_name.clone(),
        email: input.email.clone(),
        resource: Value::Object(resource),
        profile: Value::Object(profile),
        version: 1,
        created_at: now,
        updated_at: now,
        manager_ref: None,
        manager_id: None,
    };
    Ok(Prepared::Row(Box::new(NewUser { row, input })))
}

/// The `409` of a create whose `userName` the org already has.
fn taken(user_name: &str) -> Reply {
    Reply::error(
        409,
        Some("uniqueness"),
        format!("a user with userName {user_name:?} already exists"),
    )
}

/// The `201` reply to a create now `stored`, with its event, activity entry and invite.
fn created(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    input: &UserInput,
    stored: &user::Model,
) -> Reply {
    let rendered = render_user(&stored.as_stored(), &ctx.scim_base);
    let mut changes: Map<String, Value> = input.resource.clone();
    changes.retain(|k, _| !k.eq_ignore_ascii_case("schemas"));
    changes.insert("active".into(), json!(stored.active));
    let event = user_event(env, stored.org_id, stored, events::USER_CREATED, changes);
    // An invite is due when a person is first active in the directory, decided with the
    // org's setting as it is then; the mailer sends what this row asks for, once, and only
    // while the person is active. One created inactive gets it on activation (`update`).
    let address = invite_address(stored).filter(|_| stored.active);
    audit_with(
        tx,
        env,
        Some(stored.org_id),
        Audit {
            action: "user.created",
            resource_type: "User",
            resource_id: Some(stored.id.to_string()),
            detail: json!({"userName": stored.user_name, "externalId": stored.external_id}),
        },
        Side {
            event: Some(&event),
            invite: address.map(|email| (stored.id, email)),
        },
    );
    Reply::ok(201, rendered)
}

/// A JSON object's map, taken (empty for anything else).
fn into_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(super) async fn replace(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &ReplaceUser,
) -> Result<Reply, DbErr> {
    update(tx, ctx, env, org_id, cmd.user_id, cmd.if_match, |old| {
        let Value::Object(mut new) = cmd.resource.clone() else {
            return Err(ScimError::invalid_syntax("a User must be a JSON object"));
        };
        // A PUT without `active` keeps the current status rather than reactivating.
        if !new.keys().any(|k| k.eq_ignore_ascii_case("active")) {
            new.insert("active".into(), json!(old.active));
        }
        Ok(new)
    })
    .await
}

pub(super) async fn patch(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &PatchUser,
) -> Result<Reply, DbErr> {
    let ops = match patch::parse_request(&cmd.patch, &schema::USER) {
        Ok(ops) => ops,
        Err(e) => return Ok(scim_error(e)),
    };
    update(tx, ctx, env, org_id, cmd.user_id, cmd.if_match, |old| {
        let mut resource = current_resource(old);
        patch::apply(&mut resource, &schema::USER, &ops)?;
        // `remove` of `active` leaves the status as it is: an absent `active` would
        // otherwise read as true and silently reactivate a deactivated person.
        if !resource.contains_key("active") {
            resource.insert("active".into(), json!(old.active));
        }
        Ok(resource)
    })
    .await
}

/// `user.deactivate` / `user.reactivate`: exactly a PATCH that replaces `active`, so the
/// effect, the event and the reply are the ones Okta's deactivation gets.
pub(super) async fn set_active(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SetUserActive,
    active: bool,
) -> Result<Reply, DbErr> {
    let as_patch = PatchUser {
        user_id: cmd.user_id,
        patch: json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": active}}],
        }),
        if_match: cmd.if_match,
    };
    patch(tx, ctx, env, org_id, &as_patch).await
}

/// Replaces a user with what `change` makes of it, under the row lock: validation, the
/// `If-Match` check, case-insensitive `userName` uniqueness, a version bump and one event
/// (`user.deactivated`/`user.reactivated` when `active` flips, else `user.updated`). A
/// change that changes nothing bumps nothing.
async fn update(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    user_id: Uuid,
    if_match: Option<i64>,
    change: impl FnOnce(&user::Model) -> Result<Map<String, Value>, ScimError>,
) -> Result<Reply, DbErr> {
    let Some(old) = lock_row::<user::Model>(tx, &USERS, org_id, user_id).await? else {
        return Ok(not_found("User", user_id));
    };
    if if_match.is_some_and(|v| v != old.version) {
        return Ok(precondition_failed("user", old.version));
    }
    let stored_profile = old.profile.as_object().cloned().unwrap_or_default();
    let org_map = org_mapping(tx, org_id).await?;
    let mut profile = Map::new();
    let input = match change(&old)
        .map(|mut m| {
            profile = mapping::apply(&org_map, &mut m, Some(&stored_profile));
            m
        })
        .and_then(|m| UserInput::from_json(Value::Object(m)))
    {
        Ok(i) => i,
        Err(e) => return Ok(scim_error(e)),
    };
    if !input.user_name.eq_ignore_ascii_case(&old.user_name) {
        let in_use = tx
            .query_one(&USERS.name_taken(org_id, &input.user_name, user_id))
            .await?
            .is_some();
        if in_use {
            return Ok(taken(&input.user_name));
        }
    }
    if old.active
        && !input.active
        && let Some(held) = guard::check(tx, ctx, env, org_id, user_id, "deactivate").await?
    {
        return Ok(held);
    }
    if !old.active && input.active {
        guard::reactivated(tx, org_id, user_id).await?;
    }
    let before = current_resource(&old);
    let mut after = input.resource.clone();
    after.insert("userName".into(), json!(input.user_name));
    after.insert("active".into(), json!(input.active));
    if let Some(x) = &input.external_id {
        after.insert("externalId".into(), json!(x));
    }
    let mut changes = diff(&before, &after);
    if changes.is_empty() && profile == stored_profile {
        return rendered(tx, ctx, &old).await;
    }
    let row = tx
        .query_one(&USERS.update(
            org_id,
            user_id,
            person(&input, input.resource.clone(), profile),
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the locked user vanished".into()))?;
    let mut stored = user::Model::from_query_result(&row, "")?;
    if manager::resolve(tx, env, org_id, Some(&old), &mut stored).await? {
        changes.insert("manager_id".into(), json!(stored.manager_id));
    }
    let kind = match (old.active, stored.active) {
        (true, false) => events::USER_DEACTIVATED,
        (false, true) => events::USER_REACTIVATED,
        _ => events::USER_UPDATED,
    };
    if kind == events::USER_REACTIVATED {
        first_activation(tx, org_id, &stored).await?;
    }
    emit(tx, env, org_id, &stored, kind, changes);
    rendered(tx, ctx, &stored).await
}

/// The `200` reply: the user with its groups.
async fn rendered(tx: &Tx<'_>, ctx: &ApplyContext, u: &user::Model) -> Result<Reply, DbErr> {
    let mut body = render_user(&u.as_stored(), &ctx.scim_base);
    let groups = user_groups(tx, &[u.id]).await?;
    set_user_groups(
        &mut body,
        groups.get(&u.id).map_or(&[][..], Vec::as_slice),
        &ctx.scim_base,
    );
    Ok(Reply::ok(200, body))
}

/// The `kind` event (`user.*`) of `u` as it now is, with what changed.
pub(super) fn user_event(
    env: &Envelope,
    org_id: Uuid,
    u: &user::Model,
    kind: &str,
    changes: Map<String, Value>,
) -> Envelope {
    Envelope::new(
        kind,
        Some(org_id),
        &env.correlation_id,
        UserEvent {
            user_id: u.id,
            version: u.version,
            user_name: u.user_name.clone(),
            changes,
            manager_id: u.manager_id,
        },
    )
}

/// Writes the user event to the outbox and the audit log.
fn emit(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    u: &user::Model,
    kind: &str,
    changes: Map<String, Value>,
) {
    let detail = json!({"userName": u.user_name, "version": u.version, "fields": changes.keys().collect::<Vec<_>>()});
    let event = user_event(env, org_id, u, kind, changes);
    record_change(tx, env, org_id, ("User", u.id), &event, detail);
}

/// `user.delete` (SCIM `DELETE /Users/{id}`, an integration's delete) and `person.delete`
/// (the directory API's delete, or the org's policy once due; `erase::delete_person`):
/// the row goes, and an erasure of what the person leaves elsewhere is recorded for the
/// background pass (`erase`).
pub(super) async fn delete(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &DeleteUser,
) -> Result<Reply, DbErr> {
    let Some(old) = lock_row::<user::Model>(tx, &USERS, org_id, cmd.user_id).await? else {
        return Ok(not_found("User", cmd.user_id));
    };
    if cmd.if_match.is_some_and(|v| v != old.version) {
        return Ok(precondition_failed("user", old.version));
    }
    if old.active
        && let Some(held) = guard::check(tx, ctx, env, org_id, cmd.user_id, "delete").await?
    {
        return Ok(held);
    }
    tx.execute(&USERS.delete(org_id, cmd.user_id)).await?;
    erase::record(tx, org_id, cmd.user_id, erase::needles_of(&old)).await?;
    let gone = user::Model {
        version: old.version + 1,
        ..old
    };
    emit(tx, env, org_id, &gone, events::USER_DELETED, Map::new());
    Ok(Reply::ok(204, Value::Null))
}

/// The columns a create or a replace writes from the SCIM resource, with their values.
fn person(
    input: &UserInput,
    resource: Map<String, Value>,
    profile: Map<String, Value>,
) -> [Field; 9] {
    [
        ("user_name", input.user_name.clone().into()),
        ("external_id", input.external_id.clone().into()),
        ("active", input.active.into()),
        ("display_name", input.display_name.clone().into()),
        ("given_name", input.given_name.clone().into()),
        ("family_name", input.family_name.clone().into()),
        ("email", input.email.clone().into()),
        ("resource", Value::Object(resource).into()),
        ("profile", Value::Object(profile).into()),
    ]
}

/// When a person created active became so: now; one created inactive, not yet.
fn activated(active: bool) -> Field {
    let at = if active {
        now()
    } else {
        sea_orm::sea_query::Expr::null()
    };
    ("activated_at", at)
}
