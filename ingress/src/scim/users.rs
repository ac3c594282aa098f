//! `/Users` (RFC 7644 §3.3 create, §3.4.1 retrieve, §3.4.2 query). Reads come from
//! PostgreSQL scoped by the token's org; writes are commands.

use crate::{
    app::AppState,
    auth::ScimOrg,
    body::JsonBody,
    commands::{execute, reply_error},
    error::ScimApiError,
    request_id::RequestId,
};
use axum::{
    Extension, Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    db::{entities::user, query::users_where, stmt},
    messages::{Command, CreateUser, Reply},
    scim::{
        LIST_RESPONSE_SCHEMA, SCIM_CONTENT_TYPE, ScimError, filter,
        model::{UserInput, render_user},
    },
};
use sea_orm::{ConnectionTrait, FromQueryResult, Value as SqlValue};
use serde_json::{Value, json};
use uuid::Uuid;

/// Largest page a list returns (advertised in ServiceProviderConfig).
pub const MAX_PAGE: u64 = 200;
const DEFAULT_PAGE: u64 = 100;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/Users", get(list).post(create))
        .route("/Users/{id}", get(retrieve))
}

/// A SCIM response: the body as `application/scim+json`, plus `ETag`/`Location` when given.
fn scim_json(status: StatusCode, body: Value) -> Response {
    let version = body
        .pointer("/meta/version")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let location = body
        .pointer("/meta/location")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut res = (status, Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(v) = location.and_then(|v| HeaderValue::from_str(&v).ok())
    {
        h.insert(header::LOCATION, v);
    }
    res
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
    let reply = execute(&state, Some(org.0), &request, cmd).await?;
    if let Some(e) = reply_error(&reply) {
        return Err(e);
    }
    let Reply::Ok { status, body } = reply else {
        return Err(ScimApiError::internal());
    };
    Ok(scim_json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
        body,
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn retrieve(
    State(state): State<AppState>,
    org: ScimOrg,
    Path(id): Path<String>,
) -> Result<Response, ScimApiError> {
    let not_found = || ScimApiError::from(ScimError::not_found(format!("User {id} not found")));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT * FROM users WHERE org_id = $1 AND id = $2",
            [org.0.into(), uuid.into()],
        ))
        .await?
        .ok_or_else(not_found)?;
    let u = user::Model::from_query_result(&row, "")?;
    Ok(scim_json(
        StatusCode::OK,
        render_user(&u.as_stored(), &state.scim_base()),
    ))
}

/// `filter`, `startIndex` and `count` (names case-insensitive) from a query string.
#[derive(Debug, PartialEq)]
pub struct ListParams {
    pub filter: Option<String>,
    pub start_index: u64,
    pub count: u64,
}

impl ListParams {
    pub fn parse(query: Option<&str>) -> Result<Self, ScimError> {
        let mut p = ListParams {
            filter: None,
            start_index: 1,
            count: DEFAULT_PAGE,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let number = |v: &str| -> Result<i64, ScimError> {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::invalid_value(format!("{k} must be an integer")))
            };
            match k.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(v.into_owned()),
                // RFC 7644 §3.4.2.4: below 1 is read as 1; negative counts as 0.
                "startindex" => p.start_index = number(&v)?.max(1).unsigned_abs(),
                "count" => p.count = number(&v)?.max(0).unsigned_abs().min(MAX_PAGE),
                _ => {}
            }
        }
        Ok(p)
    }
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list(
    State(state): State<AppState>,
    org: ScimOrg,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimApiError> {
    let params = ListParams::parse(query.as_deref())?;
    let mut values: Vec<SqlValue> = vec![org.0.into()];
    let mut where_sql = "org_id = $1".to_owned();
    if let Some(f) = params.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        let ast = filter::parse(f)?;
        let w = users_where(&ast, values.len())?;
        where_sql = format!("{where_sql} AND {}", w.sql);
        values.extend(w.params);
    }
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
    if params.count > 0 {
        let n = values.len();
        values.push((params.count as i64).into());
        values.push(((params.start_index - 1) as i64).into());
        let rows = state
            .db
            .query_all_raw(stmt(
                &format!(
                    "SELECT * FROM users WHERE {where_sql} ORDER BY id LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                ),
                values,
            ))
            .await?;
        let base = state.scim_base();
        for row in rows {
            let u = user::Model::from_query_result(&row, "")?;
            resources.push(render_user(&u.as_stored(), &base));
        }
    }
    let body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": params.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    let mut res = (StatusCode::OK, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_paging_parameters() {
        let p = ListParams::parse(Some(
            "filter=userName%20eq%20%22a%40b.c%22&startIndex=1&count=100",
        ))
        .expect("ok");
        assert_eq!(p.filter.as_deref(), Some("userName eq \"a@b.c\""));
        assert_eq!((p.start_index, p.count), (1, 100));
    }

    #[test]
    fn entra_plus_encoding_and_clamping() {
        let p = ListParams::parse(Some("filter=userName+eq+%22x%22&StartIndex=0&Count=100000"))
            .expect("ok");
        assert_eq!(p.filter.as_deref(), Some("userName eq \"x\""));
        assert_eq!((p.start_index, p.count), (1, MAX_PAGE));
        let p = ListParams::parse(Some("count=-5")).expect("ok");
        assert_eq!(p.count, 0);
        assert!(ListParams::parse(Some("count=ten")).is_err());
        assert_eq!(ListParams::parse(None).expect("ok").count, DEFAULT_PAGE);
    }
}
