//! The directory's people as the admin API and page show them, their edits and erasure,
//! and the activity log.

use super::command;
use crate::store::admin::Activity;
use crate::{error::ApiError, request_id::RequestId, state::AppState, store};
use axum::http::StatusCode;
use common::{
    mapping::{self, Mapping},
    messages::{Command, DeletePerson, UpdatePerson},
};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Deletes a person and erases their personal data.
pub async fn delete_person(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    id: Uuid,
) -> Result<(), ApiError> {
    let cmd = Command::DeletePerson(DeletePerson {
        user_id: id,
        by_policy: false,
    });
    command(state, org, request, cmd).await.map(|_| ())
}

/// Newest first; `before` (an activity id) pages back.
pub async fn activity(
    state: &AppState,
    org: Uuid,
    limit: u64,
    before: Option<i64>,
) -> Result<Vec<Activity>, ApiError> {
    let limit = limit.clamp(1, 200);
    Ok(store::admin::activity(&state.db, org, before.unwrap_or(i64::MAX), limit).await?)
}

pub use crate::store::directory::{Manager, Person};

/// The directory: active people (all with `include_inactive`), by name.
pub async fn people(
    state: &AppState,
    org: Uuid,
    include_inactive: bool,
    limit: u64,
    offset: u64,
) -> Result<Vec<Person>, ApiError> {
    let rows = store::directory::people(
        &state.db,
        org,
        include_inactive,
        limit.clamp(1, 500),
        offset,
    )
    .await?;
    Ok(rows.into_iter().map(Person::from).collect())
}

/// One person of the org (inactive ones included), or `404`.
pub async fn person_by_id(state: &AppState, org: Uuid, id: Uuid) -> Result<Person, ApiError> {
    store::directory::person(&state.db, org, id)
        .await?
        .map(Person::from)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "person not found"))
}

/// An employee's edit of their fields. With "lock synced fields" on, fields Okta
/// overwrites are refused with `409` naming them.
pub async fn update_person(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    id: Uuid,
    fields: Map<String, Value>,
) -> Result<Person, ApiError> {
    if fields.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "send {\"fields\": {\"<field>\": \"<value>\"}}",
        ));
    }
    let cmd = Command::UpdatePerson(UpdatePerson {
        user_id: id,
        fields,
    });
    command(state, org, request, cmd).await?;
    person_by_id(state, org, id).await
}

/// The field labels people see, for every mapped field.
pub fn field_labels(rows: &[Mapping]) -> Vec<(String, String)> {
    rows.iter()
        .map(|m| (m.field.clone(), mapping::label(&m.field)))
        .collect()
}
