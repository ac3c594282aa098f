//! Group commands (Okta Push Groups, RFC 7644 §3.3–§3.6): create, replace, patch (member
//! add, remove by filter or value list, replace of the whole list, rename) and delete.
//! Members are users of the same org; `displayName` is unique per org, case-insensitively.

use super::Tx;
use super::rows::{Field, GROUPS};
use super::{ApplyContext, lock_row, not_found, precondition_failed, record_change, scim_error};
use common::{
    db::{entities::group, reads::group_members},
    messages::{
        CreateGroup, DeleteGroup, Envelope, GroupEvent, PatchGroup, ReplaceGroup, Reply, events,
    },
    scim::{
        ScimError,
        model::{GroupInput, render_group},
        patch::{self, PatchOp},
        schema,
    },
};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde_json::{Map, Value, json};
use uuid::Uuid;

mod members;
use members::{
    Scope, add_members, check_members, diff_members, member_ids, named_members, remove_members,
};

fn taken(name: &str) -> Reply {
    Reply::error(
        409,
        Some("uniqueness"),
        format!("a group named {name:?} already exists"),
    )
}

fn emit(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    g: &group::Model,
    kind: &str,
    changes: Map<String, Value>,
) {
    let detail = json!({"displayName": g.display_name, "version": g.version, "fields": changes.keys().collect::<Vec<_>>()});
    let event = Envelope::new(
        kind,
        Some(org_id),
        &env.correlation_id,
        GroupEvent {
            group_id: g.id,
            version: g.version,
            display_name: g.display_name.clone(),
            changes,
        },
    );
    record_change(tx, env, org_id, ("Group", g.id), &event, detail);
}

pub(super) async fn create(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &CreateGroup,
) -> Result<Reply, DbErr> {
    let input = match GroupInput::from_json(cmd.resource.clone()) {
        Ok(i) => i,
        Err(e) => return Ok(scim_error(e)),
    };
    if let Some(refused) = check_members(tx, org_id, &input.members).await? {
        return Ok(refused);
    }
    let Some(row) = tx
        .query_one(&GROUPS.insert(Uuid::now_v7(), org_id, named(&input)))
        .await?
    else {
        return Ok(taken(&input.display_name));
    };
    let g = group::Model::from_query_result(&row, "")?;
    add_members(tx, org_id, g.id, &input.members).await?;
    let mut changes = input.resource.clone();
    changes.remove("schemas");
    changes.insert("members_added".into(), json!(input.members));
    emit(tx, env, org_id, &g, events::GROUP_CREATED, changes);
    let members = group_members(tx, g.id).await?;
    Ok(Reply::ok(
        201,
        render_group(&g.as_stored(), Some(&members), &ctx.scim_base),
    ))
}

pub(super) async fn replace(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &ReplaceGroup,
) -> Result<Reply, DbErr> {
    let edit = Edit::Replace(&cmd.resource);
    update(tx, ctx, env, org_id, cmd.group_id, cmd.if_match, edit).await
}

pub(super) async fn patch(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &PatchGroup,
) -> Result<Reply, DbErr> {
    let ops = match patch::parse_request(&cmd.patch, &schema::GROUP) {
        Ok(ops) => ops,
        Err(e) => return Ok(scim_error(e)),
    };
    let edit = Edit::Patch(&ops);
    update(tx, ctx, env, org_id, cmd.group_id, cmd.if_match, edit).await
}

/// What a replace or a patch makes of a group.
enum Edit<'a> {
    /// `PUT`: the resource as sent.
    Replace(&'a Value),
    /// `PATCH`: the operations, applied to the stored group with its members.
    Patch(&'a [PatchOp]),
}

impl Edit<'_> {
    /// Which members the edit may touch. A PATCH that names the members it adds or removes
    /// reads only those: adding one member to a group of 100,000 costs what it costs for a
    /// group of ten.
    fn scope(&self) -> Scope {
        match self {
            Edit::Replace(_) => Scope::All,
            Edit::Patch(ops) => named_members(ops).map_or(Scope::All, Scope::Only),
        }
    }

    /// The group as the edit leaves it, given the group and its member ids within
    /// [`Edit::scope`].
    fn resource(&self, g: &group::Model, members: &[Uuid]) -> Result<Value, ScimError> {
        let ops = match self {
            Edit::Replace(resource) => return Ok((*resource).clone()),
            Edit::Patch(ops) => ops,
        };
        let mut resource = match &g.resource {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        resource.insert("displayName".into(), json!(g.display_name));
        if let Some(x) = &g.external_id {
            resource.insert("externalId".into(), json!(x));
        }
        let list: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m.to_string()}))
            .collect();
        resource.insert("members".into(), Value::Array(list));
        patch::apply(&mut resource, &schema::GROUP, ops)?;
        Ok(Value::Object(resource))
    }
}

/// Replaces a group, at the version `If-Match` names if any, with what `edit` makes of it,
/// under the row lock. Members outside the edit's scope are left as they are; those within
/// it are diffed as sets. A patch answers `204` (Entra's expectation; Okta takes either).
async fn update(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    group_id: Uuid,
    if_match: Option<i64>,
    edit: Edit<'_>,
) -> Result<Reply, DbErr> {
    let scope = edit.scope();
    let Some(old) = lock_row::<group::Model>(tx, &GROUPS, org_id, group_id).await? else {
        return Ok(not_found("Group", group_id));
    };
    if if_match.is_some_and(|v| v != old.version) {
        return Ok(precondition_failed("group", old.version));
    }
    let before = member_ids(tx, group_id, &scope).await?;
    let input = match edit.resource(&old, &before).and_then(GroupInput::from_json) {
        Ok(i) => i,
        Err(e) => return Ok(scim_error(e)),
    };
    let (added, removed) = diff_members(&before, &input.members);
    if let Some(refused) = check_members(tx, org_id, &added).await? {
        return Ok(refused);
    }
    if !input.display_name.eq_ignore_ascii_case(&old.display_name) {
        let exists = tx
            .query_one(&GROUPS.name_taken(org_id, &input.display_name, group_id))
            .await?
            .is_some();
        if exists {
            return Ok(taken(&input.display_name));
        }
    }
    let mut changes = Map::new();
    if input.display_name != old.display_name {
        changes.insert("displayName".into(), json!(input.display_name));
    }
    if input.external_id != old.external_id {
        changes.insert("externalId".into(), json!(input.external_id));
    }
    let others = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        for k in ["displayName", "externalId", "schemas"] {
            m.remove(k);
        }
        m
    };
    let (was, now) = (
        others(&old.resource),
        others(&Value::Object(input.resource.clone())),
    );
    for (k, v) in &now {
        if was.get(k) != Some(v) {
            changes.insert(k.clone(), v.clone());
        }
    }
    for k in was.keys().filter(|k| !now.contains_key(*k)) {
        changes.insert(k.clone(), Value::Null);
    }
    if !added.is_empty() {
        changes.insert("members_added".into(), json!(added));
    }
    if !removed.is_empty() {
        changes.insert("members_removed".into(), json!(removed));
    }
    let g = if changes.is_empty() {
        old
    } else {
        add_members(tx, org_id, group_id, &added).await?;
        remove_members(tx, group_id, &removed).await?;
        let row = tx
            .query_one(&GROUPS.update(org_id, group_id, named(&input)))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the locked group vanished".into()))?;
        let g = group::Model::from_query_result(&row, "")?;
        emit(tx, env, org_id, &g, events::GROUP_UPDATED, changes);
        g
    };
    if let Edit::Patch(_) = edit {
        return Ok(Reply::ok(204, Value::Null));
    }
    let members = group_members(tx, g.id).await?;
    Ok(Reply::ok(
        200,
        render_group(&g.as_stored(), Some(&members), &ctx.scim_base),
    ))
}

pub(super) async fn delete(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &DeleteGroup,
) -> Result<Reply, DbErr> {
    let Some(old) = lock_row::<group::Model>(tx, &GROUPS, org_id, cmd.group_id).await? else {
        return Ok(not_found("Group", cmd.group_id));
    };
    if cmd.if_match.is_some_and(|v| v != old.version) {
        return Ok(precondition_failed("group", old.version));
    }
    tx.execute(&GROUPS.delete(org_id, cmd.group_id)).await?;
    let gone = group::Model {
        version: old.version + 1,
        ..old
    };
    emit(tx, env, org_id, &gone, events::GROUP_DELETED, Map::new());
    Ok(Reply::ok(204, Value::Null))
}

/// The columns a create or a replace writes from the SCIM resource, with their values.
fn named(input: &GroupInput) -> [Field; 3] {
    [
        ("display_name", input.display_name.clone().into()),
        ("external_id", input.external_id.clone().into()),
        ("resource", Value::Object(input.resource.clone()).into()),
    ]
}

#[cfg(test)]
mod tests;
