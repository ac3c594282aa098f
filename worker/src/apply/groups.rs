//! Group commands (Okta Push Groups, RFC 7644 §3.3–§3.6): create, replace, patch (member
//! add, remove by filter or value list, replace of the whole list, rename) and delete.
//! Members are users of the same org; `displayName` is unique per org, case-insensitively.

use super::Tx;
use super::{
    ApplyContext, Audit, Side, audit_with, none_string, not_found, precondition_failed, scim_error,
};
use common::{
    db::{
        entities::group,
        reads::{existing_users, group_members},
        stmt,
    },
    messages::{
        CreateGroup, DeleteGroup, Envelope, GroupEvent, PatchGroup, ReplaceGroup, Reply, events,
    },
    scim::{
        ScimError,
        filter::{CompValue, CompareOp, Filter},
        model::{GroupInput, render_group},
        patch::{self, OpKind, PatchOp, PatchPath},
        schema,
    },
};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value as SqlValue};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use uuid::Uuid;

fn taken(name: &str) -> Reply {
    Reply::error(
        409,
        Some("uniqueness"),
        format!("a group named {name:?} already exists"),
    )
}

/// Members that are not users of the org are refused, naming them.
async fn check_members(
    tx: &Tx<'_>,
    org_id: Uuid,
    members: &[Uuid],
) -> Result<Option<Reply>, DbErr> {
    let found: HashSet<Uuid> = existing_users(tx, org_id, members)
        .await?
        .into_iter()
        .collect();
    let missing: Vec<String> = members
        .iter()
        .filter(|m| !found.contains(m))
        .map(Uuid::to_string)
        .collect();
    Ok((!missing.is_empty()).then(|| {
        Reply::error(
            400,
            Some("invalidValue"),
            format!("no such users: {}", missing.join(", ")),
        )
    }))
}

fn uuid_array(ids: &[Uuid]) -> SqlValue {
    SqlValue::Array(
        sea_orm::sea_query::ArrayType::Uuid,
        Some(Box::new(
            ids.iter().map(|m| SqlValue::Uuid(Some(*m))).collect(),
        )),
    )
}

/// Inserts the memberships in one statement (STYLE.md item 16).
async fn add_members(
    tx: &Tx<'_>,
    org_id: Uuid,
    group_id: Uuid,
    members: &[Uuid],
) -> Result<(), DbErr> {
    if members.is_empty() {
        return Ok(());
    }
    tx.execute_raw(stmt(
        "INSERT INTO group_members (group_id, user_id, org_id) \
         SELECT $1, u, $2 FROM UNNEST($3::uuid[]) AS u ON CONFLICT DO NOTHING",
        [group_id.into(), org_id.into(), uuid_array(members)],
    ))
    .await?;
    Ok(())
}

async fn remove_members(tx: &Tx<'_>, group_id: Uuid, members: &[Uuid]) -> Result<(), DbErr> {
    if members.is_empty() {
        return Ok(());
    }
    tx.execute_raw(stmt(
        "DELETE FROM group_members WHERE group_id = $1 AND user_id = ANY($2)",
        [group_id.into(), uuid_array(members)],
    ))
    .await?;
    Ok(())
}

/// Which members a change may touch: all of them (a PUT, a replace of the list), or only
/// those it names (see [`named_members`]).
enum Scope {
    All,
    Only(Vec<Uuid>),
}

/// The group's member ids within `scope`, in the order they were added (the order
/// `group_members` lists them in).
async fn member_ids(tx: &Tx<'_>, group_id: Uuid, scope: &Scope) -> Result<Vec<Uuid>, DbErr> {
    let rows = match scope {
        Scope::All => {
            tx.query_all_raw(stmt(
                "SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY added_at, user_id",
                [group_id.into()],
            ))
            .await?
        }
        Scope::Only(ids) if ids.is_empty() => return Ok(Vec::new()),
        Scope::Only(ids) => {
            tx.query_all_raw(stmt(
                "SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2) \
                 ORDER BY added_at, user_id",
                [group_id.into(), uuid_array(ids)],
            ))
            .await?
        }
    };
    rows.iter().map(|r| r.try_get("", "user_id")).collect()
}

/// The member ids a PATCH can touch when it touches members only by naming them: Okta's
/// `add` to `members`, `remove` of `members[value eq "…"]`, and Entra's `remove` of
/// `members` with a value list. `None` when some operation may touch members it does not
/// name (a replace of the list, a remove of all, another filter, a pathless operation that
/// mentions members): then the whole list is needed. Names that are not ids are left out:
/// no stored member (a canonical id) can match them.
fn named_members(ops: &[PatchOp]) -> Option<Vec<Uuid>> {
    let mut named = Vec::new();
    for op in ops {
        let target = match &op.path {
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    return None;
                };
                if values
                    .keys()
                    .any(|k| k.to_ascii_lowercase().contains("members"))
                {
                    return None;
                }
                continue;
            }
            Some(PatchPath::Extension(_)) => continue,
            Some(PatchPath::Attr(t)) if !t.attr.eq_ignore_ascii_case("members") => continue,
            Some(PatchPath::Attr(t)) => t,
        };
        if target.extension.is_some() || target.sub.is_some() {
            return None;
        }
        match (op.op, &target.filter, &op.value) {
            (OpKind::Add, None, Some(v @ (Value::Array(_) | Value::Object(_))))
            | (OpKind::Remove, None, Some(v @ (Value::Array(_) | Value::Object(_)))) => {
                let list = match v {
                    Value::Array(list) => list.as_slice(),
                    one => std::slice::from_ref(one),
                };
                named.extend(
                    list.iter()
                        .filter_map(|m| m.get("value").and_then(Value::as_str))
                        .filter_map(|s| Uuid::parse_str(s.trim()).ok()),
                );
            }
            (
                OpKind::Remove,
                Some(Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value: CompValue::Str(s),
                }),
                _,
            ) if path.uri.is_none() && path.sub.is_none() && path.name == "value" => {
                named.extend(Uuid::parse_str(s.trim()).ok());
            }
            _ => return None,
        }
    }
    let mut seen = HashSet::with_capacity(named.len());
    named.retain(|id| seen.insert(*id));
    Some(named)
}

/// What a change does to a member list, as sets: who joins (in the new list's order) and
/// who leaves (in the old list's order).
fn diff_members(before: &[Uuid], after: &[Uuid]) -> (Vec<Uuid>, Vec<Uuid>) {
    let (was, now): (HashSet<&Uuid>, HashSet<&Uuid>) =
        (before.iter().collect(), after.iter().collect());
    let added = after.iter().filter(|m| !was.contains(m)).copied().collect();
    let removed = before
        .iter()
        .filter(|m| !now.contains(m))
        .copied()
        .collect();
    (added, removed)
}

async fn emit(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    g: &group::Model,
    kind: &str,
    changes: Map<String, Value>,
) -> Result<(), DbErr> {
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
    audit_with(
        tx,
        env,
        Some(org_id),
        Audit {
            action: kind,
            resource_type: "Group",
            resource_id: Some(g.id.to_string()),
            detail,
        },
        Side {
            event: Some(&event),
            invite: None,
        },
    );
    Ok(())
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
    let row = tx
        .query_one_raw(stmt(
            "INSERT INTO groups (id, org_id, display_name, external_id, resource, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, now(), now()) \
             ON CONFLICT (org_id, lower(display_name)) DO NOTHING RETURNING *",
            [
                Uuid::now_v7().into(),
                org_id.into(),
                input.display_name.clone().into(),
                input.external_id.clone().map_or_else(none_string, Into::into),
                Value::Object(input.resource.clone()).into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(taken(&input.display_name));
    };
    let g = group::Model::from_query_result(&row, "")?;
    add_members(tx, org_id, g.id, &input.members).await?;
    let mut changes = input.resource.clone();
    changes.remove("schemas");
    changes.insert("members_added".into(), json!(input.members));
    emit(tx, env, org_id, &g, events::GROUP_CREATED, changes).await?;
    let members = group_members(tx, g.id).await?;
    Ok(Reply::ok(
        201,
        render_group(&g.as_stored(), Some(&members), &ctx.scim_base),
    ))
}

async fn lock_group(
    tx: &Tx<'_>,
    org_id: Uuid,
    group_id: Uuid,
) -> Result<Option<group::Model>, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT * FROM groups WHERE org_id = $1 AND id = $2 FOR UPDATE",
            [org_id.into(), group_id.into()],
        ))
        .await?;
    row.map(|r| group::Model::from_query_result(&r, ""))
        .transpose()
}

pub(super) async fn replace(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &ReplaceGroup,
) -> Result<Reply, DbErr> {
    update(
        tx,
        ctx,
        env,
        org_id,
        cmd.group_id,
        cmd.if_match,
        false,
        Scope::All,
        |_, _| Ok(cmd.resource.clone()),
    )
    .await
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
    // A PATCH that names the members it adds or removes reads only those: adding one
    // member to a group of 100,000 costs what it costs for a group of ten.
    let scope = named_members(&ops).map_or(Scope::All, Scope::Only);
    update(
        tx,
        ctx,
        env,
        org_id,
        cmd.group_id,
        cmd.if_match,
        true,
        scope,
        |g, members| {
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
            patch::apply(&mut resource, &schema::GROUP, &ops)?;
            Ok(Value::Object(resource))
        },
    )
    .await
}

/// Replaces a group with what `change` makes of it (given the group and its member ids
/// within `scope`), under the row lock. Members outside `scope` are left as they are; those
/// within it are diffed as sets. `patched` answers `204` (Entra's expectation; Okta takes
/// either).
#[allow(clippy::too_many_arguments)]
async fn update(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    group_id: Uuid,
    if_match: Option<i64>,
    patched: bool,
    scope: Scope,
    change: impl FnOnce(&group::Model, &[Uuid]) -> Result<Value, ScimError>,
) -> Result<Reply, DbErr> {
    let Some(old) = lock_group(tx, org_id, group_id).await? else {
        return Ok(not_found("Group", group_id));
    };
    if if_match.is_some_and(|v| v != old.version) {
        return Ok(precondition_failed("group", old.version));
    }
    let before = member_ids(tx, group_id, &scope).await?;
    let input = match change(&old, &before).and_then(GroupInput::from_json) {
        Ok(i) => i,
        Err(e) => return Ok(scim_error(e)),
    };
    let (added, removed) = diff_members(&before, &input.members);
    if let Some(refused) = check_members(tx, org_id, &added).await? {
        return Ok(refused);
    }
    if !input.display_name.eq_ignore_ascii_case(&old.display_name) {
        let exists = tx
            .query_one_raw(stmt(
                "SELECT 1 AS one FROM groups WHERE org_id = $1 AND lower(display_name) = lower($2) AND id <> $3",
                [org_id.into(), input.display_name.clone().into(), group_id.into()],
            ))
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
            .query_one_raw(stmt(
                "UPDATE groups SET display_name = $3, external_id = $4, resource = $5, version = version + 1, \
                     updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING *",
                [
                    org_id.into(),
                    group_id.into(),
                    input.display_name.clone().into(),
                    input.external_id.clone().map_or_else(none_string, Into::into),
                    Value::Object(input.resource.clone()).into(),
                ],
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the locked group vanished".into()))?;
        let g = group::Model::from_query_result(&row, "")?;
        emit(tx, env, org_id, &g, events::GROUP_UPDATED, changes).await?;
        g
    };
    if patched {
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
    let Some(old) = lock_group(tx, org_id, cmd.group_id).await? else {
        return Ok(not_found("Group", cmd.group_id));
    };
    if cmd.if_match.is_some_and(|v| v != old.version) {
        return Ok(precondition_failed("group", old.version));
    }
    tx.execute_raw(stmt(
        "DELETE FROM groups WHERE org_id = $1 AND id = $2",
        [org_id.into(), cmd.group_id.into()],
    ))
    .await?;
    let gone = group::Model {
        version: old.version + 1,
        ..old
    };
    emit(tx, env, org_id, &gone, events::GROUP_DELETED, Map::new()).await?;
    Ok(Reply::ok(204, Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(list: Value) -> Vec<PatchOp> {
        patch::parse_request(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list}),
            &schema::GROUP,
        )
        .expect("a valid PATCH")
    }

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    /// The member list `ops` makes of `members`, as the worker computes it.
    fn patched(members: &[Uuid], ops: &[PatchOp]) -> Result<Vec<Uuid>, ScimError> {
        let list: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m.to_string()}))
            .collect();
        let mut resource = Map::new();
        resource.insert("displayName".into(), json!("G"));
        resource.insert("members".into(), Value::Array(list));
        patch::apply(&mut resource, &schema::GROUP, ops)?;
        GroupInput::from_json(Value::Object(resource)).map(|g| g.members)
    }

    #[test]
    fn okta_and_entra_member_changes_name_their_members() {
        let (a, b) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let add = ops(
            json!([{"op": "add", "path": "members", "value": [{"value": a.to_string(), "display": "A"}, {"value": a.to_string()}]}]),
        );
        assert_eq!(named_members(&add), Some(vec![a]), "deduplicated");
        let remove = ops(json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}]));
        assert_eq!(named_members(&remove), Some(vec![b]));
        let entra = ops(
            json!([{"op": "Remove", "path": "members", "value": [{"value": a.to_string()}, {"value": b.to_string()}]}]),
        );
        assert_eq!(named_members(&entra), Some(vec![a, b]));
        let rename = ops(json!([{"op": "replace", "value": {"id": "x", "displayName": "New"}}]));
        assert_eq!(named_members(&rename), Some(vec![]));
        let not_ids = ops(json!([{"op": "add", "path": "members", "value": [{"value": "nope"}]}]));
        assert_eq!(named_members(&not_ids), Some(vec![]));
    }

    #[test]
    fn changes_that_may_touch_unnamed_members_need_the_whole_list() {
        let a = Uuid::from_u128(7).to_string();
        for body in [
            json!([{"op": "replace", "path": "members", "value": [{"value": a}]}]),
            json!([{"op": "remove", "path": "members"}]),
            json!([{"op": "add", "path": "members", "value": null}]),
            json!([{"op": "replace", "value": {"members": [{"value": a}]}}]),
            json!([{"op": "add", "value": {"Members": [{"value": a}]}}]),
            json!([{"op": "remove", "path": format!("members[value ne \"{a}\"]")}]),
            json!([{"op": "remove", "path": "members[display eq \"A\"]"}]),
            json!([{"op": "replace", "path": format!("members[value eq \"{a}\"].display"), "value": "B"}]),
        ] {
            assert_eq!(named_members(&ops(body.clone())), None, "{body}");
        }
    }

    /// Applying a PATCH to only the members it names changes exactly what applying it to the
    /// whole list changes: the worker's shortcut is not a different semantics.
    #[test]
    fn named_members_alone_give_the_same_change_as_the_whole_list() {
        let all = ids(50);
        let s = |i: u128| Uuid::from_u128(i).to_string();
        for body in [
            json!([{"op": "add", "path": "members", "value": [{"value": s(60), "display": "x"}]}]),
            json!([{"op": "add", "path": "members", "value": [{"value": s(3)}, {"value": s(61)}, {"value": s(61)}]}]),
            json!([{"op": "add", "path": "members", "value": {"value": s(62)}}]),
            json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", s(10))}]),
            json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", s(99))}]),
            json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", s(10).to_uppercase())}]),
            json!([{"op": "remove", "path": "members", "value": [{"value": s(1)}, {"value": s(50)}, {"value": s(77)}]}]),
            json!([
                {"op": "add", "path": "members", "value": [{"value": s(70)}]},
                {"op": "remove", "path": format!("members[value eq \"{}\"]", s(70))},
                {"op": "remove", "path": format!("members[value eq \"{}\"]", s(20))},
                {"op": "add", "path": "members", "value": [{"value": s(20)}]},
                {"op": "replace", "value": {"displayName": "Renamed"}},
            ]),
        ] {
            let ops = ops(body.clone());
            let named: HashSet<Uuid> = named_members(&ops).expect("named").into_iter().collect();
            let scoped: Vec<Uuid> = all.iter().filter(|m| named.contains(m)).copied().collect();
            let whole = diff_members(&all, &patched(&all, &ops).expect("applies"));
            let part = diff_members(&scoped, &patched(&scoped, &ops).expect("applies"));
            assert_eq!(whole, part, "{body}");
        }
        let bad = ops(json!([{"op": "add", "path": "members", "value": [{"value": "nope"}]}]));
        assert!(patched(&all, &bad).is_err() && patched(&[], &bad).is_err());
    }

    #[test]
    fn member_lists_diff_as_sets_in_order() {
        let [a, b, c, d] = [1, 2, 3, 4].map(Uuid::from_u128);
        assert_eq!(
            diff_members(&[a, b, c], &[d, c, a]),
            (vec![d], vec![b]),
            "joiners in the new order, leavers in the old"
        );
        assert_eq!(diff_members(&[a, b], &[b, a]), (vec![], vec![]));
        assert_eq!(diff_members(&[], &[a, b]), (vec![a, b], vec![]));
        assert_eq!(diff_members(&[a, b], &[]), (vec![], vec![a, b]));
        let big = ids(100_000);
        let (added, removed) = diff_members(&big, &big[1..]);
        assert_eq!((added.len(), removed), (0, vec![big[0]]));
    }
}
