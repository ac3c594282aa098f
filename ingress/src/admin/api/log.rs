//! `/admin/v1/activity`, `/admin/v1/provisioning/log` and `/admin/v1/deprovision-guard`.

use super::service;
use crate::{auth::AdminOrg, error::ApiError, request_id::RequestId, state::AppState};
use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
};
use common::messages::GuardDecision;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Deserialize)]
pub(super) struct ActivityQuery {
    limit: Option<u64>,
    before: Option<i64>,
}

pub(super) async fn get_activity(
    State(state): State<AppState>,
    org: AdminOrg,
    Query(ActivityQuery { limit, before }): Query<ActivityQuery>,
) -> Result<Json<Vec<service::Activity>>, ApiError> {
    Ok(Json(
        service::activity(&state, org.0, limit.unwrap_or(50), before).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogParams {
    /// `failed` or `succeeded`.
    outcome: Option<String>,
    person: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

/// `GET /admin/v1/provisioning/log?outcome=failed&person={id}&cursor=…&limit=…`.
pub(super) async fn get_provisioning_log(
    State(state): State<AppState>,
    org: AdminOrg,
    Query(LogParams {
        outcome,
        person,
        cursor,
        limit,
    }): Query<LogParams>,
) -> Result<Json<Value>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let failed = match outcome.as_deref() {
        None | Some("") | Some("all") => None,
        Some("failed") => Some(true),
        Some("succeeded") => Some(false),
        Some(o) => {
            return Err(bad(format!(
                "outcome must be failed, succeeded or all, not {o:?}"
            )));
        }
    };
    let id = |name: &str, v: Option<String>| {
        v.filter(|v| !v.is_empty())
            .map(|v| Uuid::parse_str(&v).map_err(|_| bad(format!("{name} must be an id"))))
            .transpose()
    };
    let query = service::LogQuery {
        failed,
        person: id("person", person)?,
        cursor: id("cursor", cursor)?,
        limit: limit.unwrap_or(50),
    };
    let (entries, next) = service::provisioning_log(&state, org.0, &query).await?;
    Ok(Json(json!({"entries": entries, "next_cursor": next})))
}

pub(super) async fn get_guard(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<service::GuardStatus>, ApiError> {
    Ok(Json(service::guard(&state, org.0).await?))
}

/// Approves or rejects what the guard holds.
pub(super) async fn decide_guard(
    state: AppState,
    org: AdminOrg,
    request: RequestId,
    decision: GuardDecision,
) -> Result<Json<service::GuardStatus>, ApiError> {
    Ok(Json(
        service::decide_guard(&state, org.0, &request, decision).await?,
    ))
}
