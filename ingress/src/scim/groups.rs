//! `/Groups` (RFC 7644 §3.3–§3.6), as Okta's Push Groups and Entra use it: create, get,
//! list with `displayName eq` filters and `excludedAttributes=members`, replace, patch
//! (answered `204`), delete. Reads come from PostgreSQL; writes are commands.

use crate::{
    app::AppState,
    auth::ScimOrg,
    body::JsonBody,
    commands::execute,
    error::ScimApiError,
    request_id::RequestId,
    scim::{
        etag_version,
        list::{ListParams, list_response},
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
        GROUP_SCHEMA, filter,
        model::{GroupInput, StoredGroup, render_group},
        patch,
        projection::project,
        schema,
    },
};
use sea_orm::{ConnectionTrait, FromQueryResult, Value as SqlValue};
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

fn stored(g: &group::Model) -> StoredGroup<'_> {
    StoredGroup {
        id: g.id,
        display_name: &g.display_name,
        external_id: g.external_id.as_deref(),
        resource: &g.resource,
        version: g.version,
        created_at: g.created_at,
        updated_at: g.updated_at,
    }
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
    let mut body = render_group(&stored(g), members.as_deref(), &state.scim_base());
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

async fn query_groups(
    state: &AppState,
    org: ScimOrg,
    params: ListParams,
) -> Result<Response, ScimApiError> {
    let mut values: Vec<SqlValue> = vec![org.0.into()];
    let mut where_sql = "org_id = $1".to_owned();
    if let Some(f) = params.filter.as_deref() {
        let w = groups_where(&filter::parse(f)?, values.len())?;
        where_sql = format!("{where_sql} AND {}", w.sql);
        values.extend(w.params);
    }
    let order = groups_order(params.sort_by.as_deref(), params.descending)?;
    let total: i64 = state
        .db
        .query_one_raw(stmt(
            &format!("SELECT count(*) AS n FROM groups WHERE {where_sql}"),
            values.clone(),
        ))
        .await?
        .map(|r| r.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    let mut resources = Vec::new();
    if params.count > 0 && params.offset() < total {
        let n = values.len();
        values.push(i64::try_from(params.count).unwrap_or(i64::MAX).into());
        values.push(params.offset().into());
        let sql = format!(
            "SELECT * FROM groups WHERE {where_sql} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        for row in state.db.query_all_raw(stmt(&sql, values)).await? {
            let g = group::Model::from_query_result(&row, "")?;
            resources.push(render(state, &g, &params).await?);
        }
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
