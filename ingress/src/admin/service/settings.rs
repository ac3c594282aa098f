//! The org's settings, retention, field mapping, and the operator's removal of an org.

use super::{command, org_not_found, reply_body};
use crate::{commands::execute, error::ApiError, request_id::RequestId, state::AppState, store};
use axum::http::StatusCode;
use common::{
    db::reads::org_mapping,
    mapping::{self, Mapping},
    messages::{
        Command, DeactivatedPeople, DeleteOrg, SetMappings, SetOrgRetention, UpdateSettings,
    },
    org_chart::{self, MatchKey},
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Settings {
    pub send_invites: bool,
    pub lock_synced_fields: bool,
    /// Keep deactivated people, or erase them N days after deactivation.
    pub deactivated_people: DeactivatedPeople,
    pub deprovision_guard: GuardSettings,
    /// The keys a person's manager value is tried against, in order (docs/admin.md).
    pub manager_match: Vec<MatchKey>,
}

/// The mass-deprovisioning guard's settings (docs/admin.md).
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize)]
pub struct GuardSettings {
    pub enabled: bool,
    pub threshold_percent: i64,
    pub min_count: i64,
    pub window_minutes: i64,
}

pub async fn settings(state: &AppState, org: Uuid) -> Result<Settings, ApiError> {
    let row = store::admin::settings(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(Settings {
        send_invites: row.send_invites,
        lock_synced_fields: row.lock_synced_fields,
        deactivated_people: DeactivatedPeople::from_days(row.erase_deactivated_after_days),
        deprovision_guard: GuardSettings {
            enabled: row.enabled,
            threshold_percent: row.threshold_percent,
            min_count: row.min_count,
            window_minutes: row.window_minutes,
        },
        manager_match: org_chart::from_names(
            row.manager_match
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str),
        ),
    })
}

/// Removes an org and every row it owns (the operator).
pub async fn delete_org(state: &AppState, org: Uuid, request: &RequestId) -> Result<(), ApiError> {
    let cmd = Command::DeleteOrg(DeleteOrg { org_id: org });
    reply_body(execute(state, None, request, cmd).await?).map(|_| ())
}

/// How long an org's activity entries are kept.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Retention {
    /// The operator's override, in days; `null`: the default.
    pub activity_days: Option<u32>,
    /// `ACTIVITY_RETENTION`, in days (rounded down).
    pub default_activity_days: u64,
}

pub async fn retention(state: &AppState, org: Uuid) -> Result<Retention, ApiError> {
    let days = store::admin::retention_days(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(Retention {
        activity_days: days.and_then(|d| u32::try_from(d).ok()),
        default_activity_days: state.settings.activity_retention.as_secs() / 86_400,
    })
}

pub async fn set_retention(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    activity_days: Option<u32>,
) -> Result<Retention, ApiError> {
    let cmd = Command::SetOrgRetention(SetOrgRetention { activity_days });
    command(state, org, request, cmd).await?;
    retention(state, org).await
}

pub async fn update_settings(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    change: UpdateSettings,
) -> Result<Settings, ApiError> {
    if let Some(Err(e)) = change.deprovision_guard.as_ref().map(|g| g.validate()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, e));
    }
    if let Some(keys) = &change.manager_match {
        org_chart::validate(keys).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    }
    let body = command(state, org, request, Command::UpdateSettings(change)).await?;
    serde_json::from_value(body)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable reply"))
}

/// The org's mapping (the defaults until it saves one).
pub async fn mappings(state: &AppState, org: Uuid) -> Result<Vec<Mapping>, ApiError> {
    Ok(org_mapping(&state.db, org).await?)
}

/// Replaces the org's mapping; unknown fields or attributes are a `400` naming them.
pub async fn set_mappings(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    rows: Vec<Mapping>,
) -> Result<Vec<Mapping>, ApiError> {
    mapping::validate(&rows).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    command(
        state,
        org,
        request,
        Command::SetMappings(SetMappings { mappings: rows }),
    )
    .await?;
    mappings(state, org).await
}
