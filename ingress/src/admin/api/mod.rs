//! The JSON admin API (CONTRACT.md): `/admin/v1` — orgs (operator), provisioning and its
//! token, settings, mappings, activity, integration credentials (org admin) — and the
//! directory at `/api/v1/people`.
//! Handlers parse and delegate to `admin::service`; errors are `{"error": "…"}`.

use super::service::{self, reply_body};
use crate::{
    auth::{AdminOrg, Operator},
    body::JsonBody,
    commands::execute,
    error::{ApiError, ScimApiError},
    request_id::RequestId,
    state::AppState,
};
use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{
    mapping::Mapping,
    messages::{Command, CreateOrg, GuardDecision, UpdateSettings},
    secret::{self, TokenKind},
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

mod log;
mod people;

use log::{get_activity, get_guard, get_provisioning_log};
use people::{delete_person, get_person, list_people, patch_person};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/orgs", post(create_org))
        .route(
            "/admin/v1/provisioning",
            get(get_provisioning).put(put_provisioning),
        )
        .route("/admin/v1/provisioning/token", post(rotate_token))
        .route("/admin/v1/admin-key", post(rotate_admin_key))
        .route("/admin/v1/orgs/{id}/admin-key", post(reset_admin_key))
        .route("/admin/v1/orgs/{id}", axum::routing::delete(delete_org))
        .route(
            "/admin/v1/orgs/{id}/retention",
            get(get_retention).put(put_retention),
        )
        .route("/admin/v1/settings", get(get_settings).put(put_settings))
        .route("/admin/v1/mappings", get(get_mappings).put(put_mappings))
        .route("/admin/v1/activity", get(get_activity))
        .route("/admin/v1/provisioning/log", get(get_provisioning_log))
        .route("/admin/v1/deprovision-guard", get(get_guard))
        .route(
            "/admin/v1/deprovision-guard/approve",
            post(|State(state), org, Extension(request)| {
                log::decide_guard(state, org, request, GuardDecision::Approve)
            }),
        )
        .route(
            "/admin/v1/deprovision-guard/reject",
            post(|State(state), org, Extension(request)| {
                log::decide_guard(state, org, request, GuardDecision::Reject)
            }),
        )
        .route(
            "/admin/v1/integrations",
            get(list_integrations).post(create_integration),
        )
        .route(
            "/admin/v1/integrations/{id}",
            axum::routing::delete(revoke_integration),
        )
        .route(
            "/admin/v1/sso",
            get(get_sso).put(put_sso).delete(delete_sso),
        )
        .route("/api/v1/people", get(list_people))
        .route(
            "/api/v1/people/{id}",
            get(get_person).patch(patch_person).delete(delete_person),
        )
}

/// A JSON body parsed into `T`, with a 400 naming what is wrong.
fn parse<T: serde::de::DeserializeOwned>(
    body: Result<JsonBody, ScimApiError>,
) -> Result<T, ApiError> {
    let JsonBody(value) = body.map_err(ApiError::from)?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
}

async fn create_org(
    State(state): State<AppState>,
    _op: Operator,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Response, ApiError> {
    let NewOrg { name } = parse(body)?;
    let key = secret::issue(TokenKind::AdminKey);
    let org_id = Uuid::now_v7();
    let cmd = Command::CreateOrg(CreateOrg {
        org_id,
        name,
        admin_key_hash: key.hash.clone(),
    });
    let (status, body) = reply_body(execute(&state, None, &request, cmd).await?)?;
    let out = json!({"id": org_id, "name": body["name"], "admin_key": key.plain.expose()});
    Ok((status, Json(out)).into_response())
}

async fn get_provisioning(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<service::ProvisioningStatus>, ApiError> {
    Ok(Json(service::provisioning(&state, org.0).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisioningChange {
    enabled: bool,
}

async fn put_provisioning(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Json<Value>, ApiError> {
    let ProvisioningChange { enabled } = parse(body)?;
    let token = service::set_provisioning(&state, org.0, &request, enabled).await?;
    let mut out = json!({"enabled": enabled});
    match token {
        Some(t) => out["token"] = json!(t),
        None if enabled => {
            out["note"] = json!(
                "provisioning was already on; the existing token stays valid (rotate it to get a new one)"
            );
        }
        None => {}
    }
    Ok(Json(out))
}

async fn rotate_token(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
) -> Result<Json<Value>, ApiError> {
    let token = service::rotate_token(&state, org.0, &request).await?;
    Ok(Json(json!({"token": token})))
}

/// The admin replaces their own key (`POST /admin/v1/admin-key`).
async fn rotate_admin_key(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
) -> Result<Json<Value>, ApiError> {
    let key = service::rotate_admin_key(&state, org.0, &request, false).await?;
    Ok(Json(json!({"admin_key": key})))
}

/// The operator resets an org's key, e.g. a leaked one (`POST /admin/v1/orgs/{id}/admin-key`).
async fn reset_admin_key(
    State(state): State<AppState>,
    _op: Operator,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "organisation not found");
    let org = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let key = service::rotate_admin_key(&state, org, &request, true).await?;
    Ok(Json(json!({"admin_key": key})))
}

/// The operator removes an org with every row it owns (`DELETE /admin/v1/orgs/{id}`).
async fn delete_org(
    State(state): State<AppState>,
    _op: Operator,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let org = org_id(&id)?;
    service::delete_org(&state, org, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn org_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))
}

async fn get_retention(
    State(state): State<AppState>,
    _op: Operator,
    Path(id): Path<String>,
) -> Result<Json<service::Retention>, ApiError> {
    Ok(Json(service::retention(&state, org_id(&id)?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionChange {
    activity_days: Option<u32>,
}

async fn put_retention(
    State(state): State<AppState>,
    _op: Operator,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Json<service::Retention>, ApiError> {
    let org = org_id(&id)?;
    let RetentionChange { activity_days } = parse(body)?;
    Ok(Json(
        service::set_retention(&state, org, &request, activity_days).await?,
    ))
}

async fn get_settings(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<service::Settings>, ApiError> {
    Ok(Json(service::settings(&state, org.0).await?))
}

async fn put_settings(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Json<service::Settings>, ApiError> {
    let change: UpdateSettings = parse(body)?;
    Ok(Json(
        service::update_settings(&state, org.0, &request, change).await?,
    ))
}

async fn get_mappings(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<Vec<Mapping>>, ApiError> {
    Ok(Json(service::mappings(&state, org.0).await?))
}

async fn put_mappings(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Json<Vec<Mapping>>, ApiError> {
    let rows: Vec<Mapping> = parse(body)?;
    Ok(Json(
        service::set_mappings(&state, org.0, &request, rows).await?,
    ))
}

async fn get_sso(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<service::Sso>, ApiError> {
    Ok(Json(service::sso(&state, org.0).await?))
}

async fn put_sso(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Json<service::Sso>, ApiError> {
    let change: service::SsoChange = parse(body)?;
    Ok(Json(
        service::set_sso(&state, org.0, &request, change).await?,
    ))
}

async fn delete_sso(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
) -> Result<Json<service::Sso>, ApiError> {
    Ok(Json(service::disable_sso(&state, org.0, &request).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIntegration {
    name: String,
}

async fn create_integration(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, ScimApiError>,
) -> Result<Response, ApiError> {
    let NewIntegration { name } = parse(body)?;
    let created = service::create_integration(&state, org.0, &request, name).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list_integrations(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<Vec<service::Integration>>, ApiError> {
    Ok(Json(service::integrations(&state, org.0).await?))
}

async fn revoke_integration(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "integration not found"))?;
    service::revoke_integration(&state, org.0, &request, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
