//! `/Groups` (RFC 7644 §3.3–§3.6), as Okta's Push Groups and Entra use it: create, get,
//! list with `displayName eq` filters and `excludedAttributes=members`, replace, patch
//! (answered `204`), delete. Reads come from PostgreSQL; writes are commands.

use crate::{
    auth::ScimOrg,
    body::JsonBody,
    error::ScimApiError,
    scim::{
        ListQuery, Write,
        list::{ListParams, Table, fetch_page, list_response},
        not_modified, resource_id, scim_json,
    },
    state::AppState,
    store,
};
use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{get, post},
};
use common::{
    db::{
        entities::group,
        query::{groups_order, groups_where},
    },
    messages::{Command, CreateGroup, DeleteGroup, PatchGroup, ReplaceGroup},
    scim::{
        GROUP_SCHEMA, ScimError,
        model::{GroupInput, MemberRef, render_group},
        patch,
        projection::project,
        schema,
    },
};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Groups", get(list).post(create))
        .route("/Groups/.search", post(list))
        .route(
            "/Groups/{id}",
            get(retrieve).put(replace).patch(patch).delete(delete),
        )
}

/// Whether the projection keeps `members` (Entra excludes them on every lookup; then
/// they are not even read).
fn members_wanted(params: &ListParams) -> bool {
    let mut probe = serde_json::json!({"id": "", "members": []});
    project(
        &mut probe,
        GROUP_SCHEMA,
        &params.attributes,
        &params.excluded,
    );
    probe.get("members").is_some()
}

/// A group as its body, with `members` when the projection keeps them (`members` holds
/// them for every group of the page, read in one query by `store::scim::group_members`).
fn render(
    state: &AppState,
    g: &group::Model,
    members: Option<&HashMap<Uuid, Vec<MemberRef>>>,
    params: &ListParams,
) -> Value {
    let members = members.map(|m| m.get(&g.id).map_or(&[][..], Vec::as_slice));
    let mut body = render_group(&g.as_stored(), members, &state.scim_base());
    project(
        &mut body,
        GROUP_SCHEMA,
        &params.attributes,
        &params.excluded,
    );
    body
}

/// The members of `groups`, when the projection keeps them: one query for them all.
async fn members_of(
    state: &AppState,
    groups: &[group::Model],
    params: &ListParams,
) -> Result<Option<HashMap<Uuid, Vec<MemberRef>>>, ScimApiError> {
    if !members_wanted(params) {
        return Ok(None);
    }
    let ids: Vec<_> = groups.iter().map(|g| g.id).collect();
    Ok(Some(store::scim::group_members(&state.db, &ids).await?))
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn create(w: Write, JsonBody(body): JsonBody) -> Result<Response, ScimApiError> {
    GroupInput::from_json(body.clone())?;
    w.send(|_| Command::CreateGroup(CreateGroup { resource: body }))
        .await
}

fn group_id(id: &str) -> Result<Uuid, ScimApiError> {
    resource_id("Group", id)
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn retrieve(
    State(state): State<AppState>,
    org: ScimOrg,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimApiError> {
    let params = ListParams::from_query(query.as_deref())?;
    let not_found = || ScimApiError::from(ScimError::not_found(format!("Group {id} not found")));
    let group_id = group_id(&id)?;
    let g = store::scim::group(&state.db, org.0, group_id)
        .await?
        .ok_or_else(not_found)?;
    if let Some(res) = not_modified(&headers, g.version)? {
        return Ok(res);
    }
    let groups = std::slice::from_ref(&g);
    let members = members_of(&state, groups, &params).await?;
    Ok(scim_json(
        StatusCode::OK,
        render(&state, &g, members.as_ref(), &params),
    ))
}

/// `GET /Groups` and `POST /Groups/.search`.
#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list(
    State(state): State<AppState>,
    org: ScimOrg,
    ListQuery(params): ListQuery,
) -> Result<Response, ScimApiError> {
    let (total, groups) = fetch_page::<group::Model>(&state.db, &GROUPS, org.0, &params).await?;
    const GROUPS: Table = Table {
        name: "groups",
        filter: groups_where,
        order: groups_order,
    };

    let members = members_of(&state, &groups, &params).await?;
    let resources = groups
        .iter()
        .map(|g| render(&state, g, members.as_ref(), &params))
        .collect();
    Ok(list_response(total, params.start_index, resources))
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn replace(
    w: Write,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let group_id = group_id(&id)?;
    GroupInput::from_json(body.clone())?;
    w.send(|if_match| {
        Command::ReplaceGroup(ReplaceGroup {
            group_id,
            resource: body,
            if_match,
        })
    })
    .await
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn patch(
    w: Write,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let group_id = group_id(&id)?;
    patch::parse_request(&body, &schema::GROUP)?;
    w.send(|if_match| {
        Command::PatchGroup(PatchGroup {
            group_id,
            patch: body,
            if_match,
        })
    })
    .await
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn delete(w: Write, Path(id): Path<String>) -> Result<Response, ScimApiError> {
    let group_id = group_id(&id)?;
    w.send(|if_match| Command::DeleteGroup(DeleteGroup { group_id, if_match }))
        .await
}
