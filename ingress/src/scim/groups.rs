//! `/Groups` (RFC 7644 §3.3–§3.6), as Okta's Push Groups and Entra use it: create, get,
//! list with `displayName eq` filters and `excludedAttributes=members`, replace, patch
//! (answered `204`), delete. Reads come from PostgreSQL; writes are commands.

use crate::{
    state::AppState,
    auth::ScimOrg,
    body::JsonBody,
    commands::execute,
    error::ScimApiError,
    request_id::RequestId,
    scim::{
        etag_version,
        list::{ListParams, Table, fetch_page, list_response},
        reply_response, resource_id, scim_json,
    },
};
use axum::{
    Extension, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
    routing::{get, post},
};
use common::{
    db::{
        entities::group,
        query::{groups_order, groups_where},
        reads::group_members,
        stmt,
    },
    messages::{Command, CreateGroup, DeleteGroup, PatchGroup, ReplaceGroup},
    scim::{
        GROUP_SCHEMA,
        model::{GroupInput, render_group},
        patch,
        projection::project,
        schema,
    },
};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Groups", get(list).post(create))
        .route("/Groups/.search", post(search))
        .route(
            "/Groups/{id}",
            get(retrieve).put(replace).patch(patch_group).delete(delete),
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

async fn render(
    state: &AppState,
    g: &group::Model,
    params: &ListParams,
) -> Result<Value, ScimApiError> {
    let members = if members_wanted(params) {
        Some(group_members(&state.db, g.id).await?)
    } else {
        None
    };
    let mut body = render_group(&g.as_stored(), members.as_deref(), &state.scim_base());
    project(
        &mut body,
        GROUP_SCHEMA,
        &params.attributes,
        &params.excluded,
    );
    Ok(body)
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn create(
    State(state): State<AppState>,
    org: ScimOrg,
    Extension(request): Extension<RequestId>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    GroupInput::from_json(body.clone())?;
    let cmd = Command::CreateGroup(CreateGroup { resource: body });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn retrieve(
    State(state): State<AppState>,
    org: ScimOrg,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimApiError> {
    let params = ListParams::from_query(query.as_deref())?;
    let group_id = resource_id("Group", &id)?;
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT * FROM groups WHERE org_id = $1 AND id = $2",
            [org.0.into(), group_id.into()],
        ))
        .await?
        .ok_or_else(|| {
            ScimApiError::from(common::scim::ScimError::not_found(format!(
                "Group {id} not found"
            )))
        })?;
    let g = group::Model::from_query_result(&row, "")?;
    Ok(scim_json(
        StatusCode::OK,
        render(&state, &g, &params).await?,
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list(
    State(state): State<AppState>,
    org: ScimOrg,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimApiError> {
    query_groups(&state, org, ListParams::from_query(query.as_deref())?).await
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn search(
    State(state): State<AppState>,
    org: ScimOrg,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    query_groups(&state, org, ListParams::from_search(&body)?).await
}

const GROUPS: Table = Table {
    name: "groups",
    filter: groups_where,
    order: groups_order,
};

async fn query_groups(
    state: &AppState,
    org: ScimOrg,
    params: ListParams,
) -> Result<Response, ScimApiError> {
    let (total, groups) = fetch_page::<group::Model>(&state.db, &GROUPS, org.0, &params).await?;
    let mut resources = Vec::with_capacity(groups.len());
    for g in &groups {
        resources.push(render(state, g, &params).await?);
    }
    Ok(list_response(total, params.start_index, resources))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn replace(
    State(state): State<AppState>,
    org: ScimOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let group_id = resource_id("Group", &id)?;
    GroupInput::from_json(body.clone())?;
    let cmd = Command::ReplaceGroup(ReplaceGroup {
        group_id,
        resource: body,
        if_match: etag_version(&headers, header::IF_MATCH)?,
    });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn patch_group(
    State(state): State<AppState>,
    org: ScimOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let group_id = resource_id("Group", &id)?;
    patch::parse_request(&body, &schema::GROUP)?;
    let cmd = Command::PatchGroup(PatchGroup {
        group_id,
        patch: body,
        if_match: etag_version(&headers, header::IF_MATCH)?,
    });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn delete(
    State(state): State<AppState>,
    org: ScimOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimApiError> {
    let group_id = resource_id("Group", &id)?;
    let cmd = Command::DeleteGroup(DeleteGroup {
        group_id,
        if_match: etag_version(&headers, header::IF_MATCH)?,
    });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
}
