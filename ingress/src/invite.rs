//! `GET /invite/{token}`: the link in an invite email. Accepting is a command like every
//! write; the page says plainly what happened.

use crate::{app::AppState, commands::execute, request_id::RequestId};
use axum::{
    Extension, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    db::stmt,
    messages::{AcceptInvite, Command, Reply},
    secret::TokenHash,
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/invite/{token}", get(accept))
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\">\
         <h1>{title}</h1><p>{message}</p></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Invite not found",
        "This invite link is not valid or has expired. Ask your administrator for a new one.",
    )
}

async fn accept(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    Path(token): Path<String>,
) -> Response {
    if token.len() > 128 {
        return not_found();
    }
    let hash = TokenHash::of(&token);
    let org = state
        .db
        .query_one_raw(stmt(
            "SELECT org_id FROM invites WHERE token_hash = $1",
            [hash.as_str().into()],
        ))
        .await;
    let org_id: Uuid = match org {
        Ok(Some(row)) => match row.try_get("", "org_id") {
            Ok(id) => id,
            Err(_) => return unavailable(),
        },
        Ok(None) => return not_found(),
        Err(_) => return unavailable(),
    };
    let cmd = Command::AcceptInvite(AcceptInvite { token_hash: hash });
    match execute(&state, Some(org_id), &request, cmd).await {
        Ok(Reply::Ok { .. }) => page(
            StatusCode::OK,
            "Invite accepted",
            "Welcome to Roster. Your invite is accepted and your profile is in the directory.",
        ),
        Ok(Reply::Error { .. }) => not_found(),
        Err(_) => unavailable(),
    }
}

fn unavailable() -> Response {
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "Roster is busy right now. Reload this page in a few seconds.",
    );
    res.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from(crate::error::RETRY_AFTER_SECS),
    );
    res
}
