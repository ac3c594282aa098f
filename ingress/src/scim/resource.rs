//! The handlers `/Users` and `/Groups` share (RFC 7644 §3.3 create, §3.4.1 retrieve,
//! §3.4.2–§3.4.3 query, §3.5.1 replace, §3.5.2 modify, §3.6 delete), generic over the
//! `Resource`: reads come from PostgreSQL scoped by the token's org, answer `If-None-Match`
//! with `304` and read what a page's resources link to in one query; writes are commands
//! that carry `If-Match`.

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
    messages::Command,
    scim::{ScimError, projection::project},
};
use sea_orm::FromQueryResult;
use serde_json::Value;
use std::future::Future;
use uuid::Uuid;

/// A write on one resource, before `If-Match` is added: what `Resource::command` turns
/// into the resource type's own command.
pub(crate) enum Op {
    Create(Value),
    Replace(Uuid, Value),
    Patch(Uuid, Value),
    Delete(Uuid),
}

/// What differs between Users and Groups: names, table, validation, commands and how a
/// page of rows becomes SCIM bodies.
pub(crate) trait Resource: Send + Sync + 'static {
    /// `User`: the resource type as error messages name it.
    const KIND: &'static str;
    /// `/Users`: the endpoint, under `/scim/v2`.
    const PATH: &'static str;
    /// The core schema, for `attributes` / `excludedAttributes`.
    const SCHEMA: &'static str;
    /// Where lists read (`store::page`).
    const TABLE: Table;
    type Model: FromQueryResult + Send + Sync + 'static;
    /// What a page's resources link to (a user's groups, a group's members), read once for
    /// the whole page.
    type Related: Send + Sync;

    /// The row's version (its ETag).
    fn version(m: &Self::Model) -> i64;
    /// What `models` link to, in one query (or none, when the projection drops it).
    fn related(
        state: &AppState,
        models: &[Self::Model],
        params: &ListParams,
    ) -> impl Future<Output = Result<Self::Related, ScimApiError>> + Send;
    /// One row as its body, before projection.
    fn render(m: &Self::Model, related: &Self::Related, base: &str) -> Value;
    /// A `POST` or `PUT` body, validated: what the command forwards.
    fn resource(body: Value) -> Result<Value, ScimError>;
    /// A `PATCH` body, parsed to answer `400` at once: what the command forwards.
    fn patch(body: Value) -> Result<Value, ScimError>;
    /// The resource type's command for `op`.
    fn command(op: Op, if_match: Option<i64>) -> Command;
}

/// `PATH`, `PATH/.search` and `PATH/{id}`.
pub(crate) fn router<R: Resource>() -> Router<AppState> {
    Router::new()
        .route(R::PATH, get(list::<R>).post(create::<R>))
        .route(&format!("{}/.search", R::PATH), post(list::<R>))
        .route(
            &format!("{}/{{id}}", R::PATH),
            get(retrieve::<R>)
                .put(replace::<R>)
                .patch(patch::<R>)
                .delete(delete::<R>),
        )
}

/// One row as its body, projected.
fn render<R: Resource>(
    m: &R::Model,
    related: &R::Related,
    base: &str,
    params: &ListParams,
) -> Value {
    let mut body = R::render(m, related, base);
    project(&mut body, R::SCHEMA, &params.attributes, &params.excluded);
    body
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn create<R: Resource>(w: Write, JsonBody(body): JsonBody) -> Result<Response, ScimApiError> {
    let resource = R::resource(body)?;
    w.send(|_| R::command(Op::Create(resource), None)).await
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn retrieve<R: Resource>(
    State(state): State<AppState>,
    org: ScimOrg,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimApiError> {
    let params = ListParams::from_query(query.as_deref())?;
    let not_found = || ScimError::not_found(format!("{} {id} not found", R::KIND));
    let uuid = resource_id(R::KIND, &id)?;
    let found = store::scim::by_id::<R::Model>(&state.db, &R::TABLE, org.0, uuid)
        .await?
        .ok_or_else(not_found)?;
    if let Some(res) = not_modified(&headers, R::version(&found))? {
        return Ok(res);
    }
    let related = R::related(&state, std::slice::from_ref(&found), &params).await?;
    let body = render::<R>(&found, &related, &state.scim_base(), &params);
    Ok(scim_json(StatusCode::OK, body))
}

/// `GET PATH` and `POST PATH/.search`.
#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list<R: Resource>(
    State(state): State<AppState>,
    org: ScimOrg,
    ListQuery(params): ListQuery,
) -> Result<Response, ScimApiError> {
    let (total, rows) = fetch_page::<R::Model>(&state.db, &R::TABLE, org.0, &params).await?;
    let related = R::related(&state, &rows, &params).await?;
    let base = state.scim_base();
    let resources = rows
        .iter()
        .map(|m| render::<R>(m, &related, &base, &params))
        .collect();
    Ok(list_response(total, params.start_index, resources))
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn replace<R: Resource>(
    w: Write,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let id = resource_id(R::KIND, &id)?;
    let resource = R::resource(body)?;
    w.send(|if_match| R::command(Op::Replace(id, resource), if_match))
        .await
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn patch<R: Resource>(
    w: Write,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let id = resource_id(R::KIND, &id)?;
    let patch = R::patch(body)?;
    w.send(|if_match| R::command(Op::Patch(id, patch), if_match))
        .await
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn delete<R: Resource>(w: Write, Path(id): Path<String>) -> Result<Response, ScimApiError> {
    let id = resource_id(R::KIND, &id)?;
    w.send(|if_match| R::command(Op::Delete(id), if_match))
        .await
}
