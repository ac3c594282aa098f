//! The directory at `/api/v1/people` (admin key).

use super::parse;
use super::service;
use crate::{
    auth::AdminOrg,
    body::JsonBody,
    error::{ApiError, ScimApiError},
    request_id::RequestId,
    state::AppState,
};
use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Deserialize)]
pub(super) struct PeopleQuery {
    #[serde(default)]
    include_inactive: bool,
    limit: Option<u64>,
    offset: Option<u64>,
}

pub(super) async fn list_people(
    State(state): State<AppState>,
    org: AdminOrg,
    Query(PeopleQuery {
        include_inactive,
        limit,
        offset,
    }): Query<PeopleQuery>,
) -> Result<Json<Vec<service::Person>>, ApiError> {
    let people = service::people(
        &state,
        org.0,
        include_inactive,
        limit.unwrap_or(100),
        offset.unwrap_or(0),
    )
    .await?;
    Ok(Json(people))
}

fn person_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "person not found"))
}

pub(super) async fn get_person(
    State(state): State<AppState>,
    org: AdminOrg,
    Path(id): Path<String>,
) -> Result<Json<service::Person>, ApiError> {
    Ok(Json(
        service::person_by_id(&state, org.0, person_id(&id)?).await?,
    ))
}

/// The directory API's delete: the person goes, and their personal data with them
/// (docs/data-lifecycle.md).
pub(super) async fn delete_person(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete_person(&state, org.0, &request, person_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PersonEdit {
    fields: Map<String, Value>,
}

pub(super) async fn patch_person(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Json<service::Person>, ApiError> {
    let id = person_id(&id)?;
    let PersonEdit { fields } = parse(body)?;
    Ok(Json(
        service::update_person(&state, org.0, &request, id, fields).await?,
    ))
}
