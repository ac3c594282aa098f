//! `/Users` (RFC 7644 §3.3 create, §3.4.1 retrieve, §3.4.2 query). Reads come from
//! PostgreSQL scoped by the token's org; writes are commands.

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
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{
    db::{
        entities::user,
        query::{users_order, users_where},
        reads::user_groups,
        stmt,
    },
    messages::{Command, CreateUser, DeleteUser, PatchUser, ReplaceUser},
    scim::{
        ScimError, USER_SCHEMA, filter,
        model::{UserInput, render_user, set_user_groups},
        patch,
        projection::project,
        schema,
    },
};
use sea_orm::{ConnectionTrait, FromQueryResult, Value as SqlValue};
use serde_json::Value;
use uuid::Uuid;

pub use super::list::MAX_PAGE;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/Users", get(list).post(create))
        .route("/Users/.search", post(search))
        .route(
            "/Users/{id}",
            get(retrieve).put(replace).patch(patch).delete(delete),
        )
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn create(
    State(state): State<AppState>,
    org: ScimOrg,
    Extension(request): Extension<RequestId>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let input = UserInput::from_json(body)?;
    let cmd = Command::CreateUser(CreateUser {
        resource: Value::Object(input.resource),
    });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
}

fn user_id(id: &str) -> Result<Uuid, ScimApiError> {
    resource_id("User", id)
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
    let user_id = user_id(&id)?;
    let input = UserInput::from_json(body)?;
    let cmd = Command::ReplaceUser(ReplaceUser {
        user_id,
        resource: Value::Object(input.resource),
        if_match: etag_version(&headers, header::IF_MATCH)?,
    });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn patch(
    State(state): State<AppState>,
    org: ScimOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let user_id = user_id(&id)?;
    patch::parse_request(&body, &schema::USER)?;
    let cmd = Command::PatchUser(PatchUser {
        user_id,
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
    let user_id = user_id(&id)?;
    let cmd = Command::DeleteUser(DeleteUser {
        user_id,
        if_match: etag_version(&headers, header::IF_MATCH)?,
    });
    reply_response(execute(&state, Some(org.0), &request, cmd).await?)
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
    let not_found = || ScimApiError::from(ScimError::not_found(format!("User {id} not found")));
    let uuid = user_id(&id)?;
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT * FROM users WHERE org_id = $1 AND id = $2",
            [org.0.into(), uuid.into()],
        ))
        .await?
        .ok_or_else(not_found)?;
    let u = user::Model::from_query_result(&row, "")?;
    if etag_version(&headers, header::IF_NONE_MATCH)? == Some(u.version) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&common::scim::model::etag(u.version)) {
            res.headers_mut().insert(header::ETAG, v);
        }
        return Ok(res);
    }
    let groups = user_groups(&state.db, &[u.id]).await?;
    let mut body = render_user(&u.as_stored(), &state.scim_base());
    set_user_groups(
        &mut body,
        groups.get(&u.id).map_or(&[][..], Vec::as_slice),
        &state.scim_base(),
    );
    project(&mut body, USER_SCHEMA, &params.attributes, &params.excluded);
    Ok(scim_json(StatusCode::OK, body))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list(
    State(state): State<AppState>,
    org: ScimOrg,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimApiError> {
    query_users(&state, org, ListParams::from_query(query.as_deref())?).await
}

/// `POST /Users/.search` (RFC 7644 §3.4.3): the query in the body.
#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn search(
    State(state): State<AppState>,
    org: ScimOrg,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    query_users(&state, org, ListParams::from_search(&body)?).await
}

/// Filters, sorts and pages in PostgreSQL; the count is exact.
async fn query_users(
    state: &AppState,
    org: ScimOrg,
    params: ListParams,
) -> Result<Response, ScimApiError> {
    let mut values: Vec<SqlValue> = vec![org.0.into()];
    let mut where_sql = "org_id = $1".to_owned();
    if let Some(f) = params.filter.as_deref() {
        let w = users_where(&filter::parse(f)?, values.len())?;
        where_sql = format!("{where_sql} AND {}", w.sql);
        values.extend(w.params);
    }
    let order = users_order(params.sort_by.as_deref(), params.descending)?;
    let total: i64 = state
        .db
        .query_one_raw(stmt(
            &format!("SELECT count(*) AS n FROM users WHERE {where_sql}"),
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
            "SELECT * FROM users WHERE {where_sql} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = state.db.query_all_raw(stmt(&sql, values)).await?;
        let users = rows
            .iter()
            .map(|row| user::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<_> = users.iter().map(|u| u.id).collect();
        let groups = user_groups(&state.db, &ids).await?;
        let base = state.scim_base();
        for u in &users {
            let mut r = render_user(&u.as_stored(), &base);
            set_user_groups(
                &mut r,
                groups.get(&u.id).map_or(&[][..], Vec::as_slice),
                &base,
            );
            project(&mut r, USER_SCHEMA, &params.attributes, &params.excluded);
            resources.push(r);
        }
    }
    Ok(list_response(total, params.start_index, resources))
}
