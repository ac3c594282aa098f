//! `/Users` (RFC 7644 §3.3 create, §3.4.1 retrieve, §3.4.2 query). Reads come from
//! PostgreSQL scoped by the token's org; writes are commands.

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
    db::{
        entities::user,
        query::{users_order, users_where},
        reads::user_groups,
    },
    messages::{Command, CreateUser, DeleteUser, PatchUser, ReplaceUser},
    scim::{
        ScimError, USER_SCHEMA,
        model::{UserInput, render_user, set_user_groups},
        patch,
        projection::project,
        schema,
    },
};
use serde_json::Value;
use uuid::Uuid;

pub use super::list::MAX_PAGE;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/Users", get(list).post(create))
        .route("/Users/.search", post(list))
        .route(
            "/Users/{id}",
            get(retrieve).put(replace).patch(patch).delete(delete),
        )
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn create(w: Write, JsonBody(body): JsonBody) -> Result<Response, ScimApiError> {
    let input = UserInput::from_json(body)?;
    let resource = Value::Object(input.resource);
    w.send(|_| Command::CreateUser(CreateUser { resource }))
        .await
}

fn user_id(id: &str) -> Result<Uuid, ScimApiError> {
    resource_id("User", id)
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn replace(
    w: Write,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let user_id = user_id(&id)?;
    let resource = Value::Object(UserInput::from_json(body)?.resource);
    w.send(|if_match| {
        Command::ReplaceUser(ReplaceUser {
            user_id,
            resource,
            if_match,
        })
    })
    .await
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn patch(
    w: Write,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ScimApiError> {
    let user_id = user_id(&id)?;
    patch::parse_request(&body, &schema::USER)?;
    // POST and PUT drop it in `UserInput`: no password is ever published.
    let mut patch = body;
    patch::strip_write_only(&mut patch);
    w.send(|if_match| {
        Command::PatchUser(PatchUser {
            user_id,
            patch,
            if_match,
        })
    })
    .await
}

#[tracing::instrument(skip_all, fields(org_id = %w.org))]
async fn delete(w: Write, Path(id): Path<String>) -> Result<Response, ScimApiError> {
    let user_id = user_id(&id)?;
    w.send(|if_match| Command::DeleteUser(DeleteUser { user_id, if_match }))
        .await
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
    let u = store::scim::user(&state.db, org.0, uuid)
        .await?
        .ok_or_else(not_found)?;
    if let Some(res) = not_modified(&headers, u.version)? {
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

/// `GET /Users` and `POST /Users/.search`.
#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list(
    State(state): State<AppState>,
    org: ScimOrg,
    ListQuery(params): ListQuery,
) -> Result<Response, ScimApiError> {
    let (total, users) = fetch_page::<user::Model>(&state.db, &USERS, org.0, &params).await?;
    const USERS: Table = Table {
        name: "users",
        filter: users_where,
        order: users_order,
    };

    let ids: Vec<_> = users.iter().map(|u| u.id).collect();
    let groups = user_groups(&state.db, &ids).await?;
    let base = state.scim_base();
    let resources = users
        .iter()
        .map(|u| {
            let mut r = render_user(&u.as_stored(), &base);
            set_user_groups(
                &mut r,
                groups.get(&u.id).map_or(&[][..], Vec::as_slice),
                &base,
            );
            project(&mut r, USER_SCHEMA, &params.attributes, &params.excluded);
            r
        })
        .collect();
    Ok(list_response(total, params.start_index, resources))
}
