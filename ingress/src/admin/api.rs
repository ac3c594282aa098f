//! `/admin/v1`: creating orgs (operator), and turning provisioning on and off and rotating
//! the SCIM token (org admin). New secrets are generated here, shown once, and travel to
//! the worker only as SHA-256 digests.

use crate::{
    app::AppState,
    auth::{AdminOrg, Operator},
    body::JsonBody,
    commands::execute,
    error::ApiError,
    request_id::RequestId,
};
use axum::{
    Extension, Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{
    db::stmt,
    messages::{
        Command, CreateOrg, NewToken, Reply, RotateScimToken, SetProvisioning, UpdateSettings,
    },
    secret::{self, TokenKind},
};
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/orgs", post(create_org))
        .route(
            "/admin/v1/provisioning",
            get(get_provisioning).put(put_provisioning),
        )
        .route("/admin/v1/provisioning/token", post(rotate_token))
        .route("/admin/v1/settings", get(get_settings).put(put_settings))
}

/// Parses an admin JSON body into `T`, with a 400 naming what is wrong.
fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

/// Replies as admin API results: the body on success, `{"error"}` otherwise.
fn reply_body(reply: Reply) -> Result<(StatusCode, Value), ApiError> {
    match reply {
        Reply::Ok { status, body } => {
            Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
        }
        Reply::Error { status, detail, .. } => Err(ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail,
        )),
    }
}

fn body_of(body: Result<JsonBody, crate::error::ScimApiError>) -> Result<Value, ApiError> {
    body.map(|b| b.0).map_err(ApiError::from)
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
    body: Result<JsonBody, crate::error::ScimApiError>,
) -> Result<Response, ApiError> {
    let NewOrg { name } = parse(body_of(body)?)?;
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
) -> Result<Json<Value>, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT o.provisioning_enabled, t.hint, t.created_at FROM orgs o \
             LEFT JOIN scim_tokens t ON t.org_id = o.id AND t.revoked_at IS NULL \
             WHERE o.id = $1 ORDER BY t.created_at DESC LIMIT 1",
            [org.0.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))?;
    let enabled: bool = row.try_get("", "provisioning_enabled")?;
    let hint: Option<String> = row.try_get("", "hint")?;
    let created: Option<chrono::DateTime<chrono::Utc>> = row.try_get("", "created_at")?;
    Ok(Json(json!({
        "enabled": enabled,
        "token_hint": hint.map(|h| format!("…{h}")),
        "token_created_at": created,
        "scim_base_url": format!("{}/scim/v2", state.settings.public_url),
    })))
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
    body: Result<JsonBody, crate::error::ScimApiError>,
) -> Result<Json<Value>, ApiError> {
    let ProvisioningChange { enabled } = parse(body_of(body)?)?;
    let token = enabled.then(|| secret::issue(TokenKind::Scim));
    let cmd = Command::SetProvisioning(SetProvisioning {
        enabled,
        token: token.as_ref().map(|t| NewToken {
            hash: t.hash.clone(),
            hint: t.hint.clone(),
        }),
    });
    let (_, body) = reply_body(execute(&state, Some(org.0), &request, cmd).await?)?;
    let issued = body["token_issued"].as_bool().unwrap_or(false);
    let mut out = json!({"enabled": enabled});
    match (issued, token) {
        (true, Some(t)) => out["token"] = json!(t.plain.expose()),
        (false, _) if enabled => {
            out["note"] = json!(
                "provisioning was already on; the existing token stays valid (rotate it to get a new one)"
            );
        }
        _ => {}
    }
    Ok(Json(out))
}

async fn rotate_token(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
) -> Result<Json<Value>, ApiError> {
    let token = secret::issue(TokenKind::Scim);
    let cmd = Command::RotateScimToken(RotateScimToken {
        token: NewToken {
            hash: token.hash.clone(),
            hint: token.hint.clone(),
        },
    });
    reply_body(execute(&state, Some(org.0), &request, cmd).await?)?;
    Ok(Json(json!({"token": token.plain.expose()})))
}

async fn get_settings(
    State(state): State<AppState>,
    org: AdminOrg,
) -> Result<Json<Value>, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT send_invites, lock_synced_fields FROM orgs WHERE id = $1",
            [org.0.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))?;
    Ok(Json(json!({
        "send_invites": row.try_get::<bool>("", "send_invites")?,
        "lock_synced_fields": row.try_get::<bool>("", "lock_synced_fields")?,
    })))
}

async fn put_settings(
    State(state): State<AppState>,
    org: AdminOrg,
    Extension(request): Extension<RequestId>,
    body: Result<JsonBody, crate::error::ScimApiError>,
) -> Result<Json<Value>, ApiError> {
    let change: UpdateSettings = parse(body_of(body)?)?;
    let cmd = Command::UpdateSettings(change);
    let (_, body) = reply_body(execute(&state, Some(org.0), &request, cmd).await?)?;
    Ok(Json(body))
}
