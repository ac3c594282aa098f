//! `/invite/{token}`: the link in an invite email. `GET` only shows a page with a button
//! (mail scanners fetch links, and must not accept invites); the button `POST`s to the same
//! URL, whose token is the proof. Accepting is a command like every write, applied once;
//! the page says plainly what happened and shows nothing of the person but their first name.
//! When the org has employee sign-in (docs/sso.md), accepting is signing in for the first
//! time: the page links to `/invite/{token}/sign-in`, which starts the OpenID Connect flow
//! with the invite's digest, and the worker accepts the invite with the sign-in.

use crate::{commands::execute, request_id::RequestId, state::AppState, store};
use axum::{
    Extension, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    messages::{AcceptInvite, Command, Reply},
    secret::TokenHash,
};
use uuid::Uuid;

/// Longer paths are not Roster's tokens (`rst_inv_` and 43 characters).
const MAX_TOKEN_LEN: usize = 128;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/invite/{token}", get(show).post(accept))
        .route("/invite/{token}/sign-in", get(sign_in))
}

/// What the database says about a token.
enum Found {
    Unknown,
    Used,
    Expired,
    /// The person is not active in the directory (deactivated since the invite was sent).
    Inactive,
    Open {
        first_name: Option<String>,
        org_name: String,
        /// The org has employee sign-in: accepting is signing in.
        sso: bool,
    },
}

async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match lookup(&state, &token).await {
        Ok(Found::Open {
            first_name,
            org_name,
            sso,
        }) => confirm_page(
            first_name.as_deref(),
            &org_name,
            sso.then_some(token.as_str()),
        ),
        Ok(Found::Unknown) => not_found(),
        Ok(Found::Used) => already_used(),
        Ok(Found::Expired) => expired(),
        Ok(Found::Inactive) => inactive(),
        Err(()) => unavailable(),
    }
}

async fn accept(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    Path(token): Path<String>,
) -> Response {
    let org_id = match org_of(&state, &token).await {
        Ok(Some((_, true))) => {
            // With employee sign-in the button is a sign-in link; a form posted anyway
            // goes back to the page that has it.
            return axum::response::Redirect::to(&format!("/invite/{token}")).into_response();
        }
        Ok(Some((id, false))) => id,
        Ok(None) => return not_found(),
        Err(()) => return unavailable(),
    };
    let cmd = Command::AcceptInvite(AcceptInvite {
        token_hash: TokenHash::of(&token),
    });
    // The worker decides, holding the invite's row lock: two clicks accept once.
    match execute(&state, Some(org_id), &request, cmd).await {
        Ok(Reply::Ok { .. }) => page(
            StatusCode::OK,
            "Invite accepted",
            "<p>Welcome to Roster. Your invite is accepted and your profile is in the directory.</p>",
        ),
        Ok(Reply::Error { status: 409, .. }) => already_used(),
        Ok(Reply::Error { status: 410, .. }) => expired(),
        Ok(Reply::Error { status: 403, .. }) => inactive(),
        Ok(Reply::Error { .. }) => not_found(),
        Err(_) => unavailable(),
    }
}

/// Finds the invite a token opens, with what the confirmation page may show.
async fn lookup(state: &AppState, token: &str) -> Result<Found, ()> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(Found::Unknown);
    }
    let Some(invite) = store::invite::by_token(&state.db, &TokenHash::of(token))
        .await
        .map_err(|_| ())?
    else {
        return Ok(Found::Unknown);
    };
    if invite.used {
        return Ok(Found::Used);
    }
    if invite.expired {
        return Ok(Found::Expired);
    }
    if !invite.active {
        return Ok(Found::Inactive);
    }
    Ok(Found::Open {
        first_name: invite.given_name,
        org_name: invite.org_name,
        sso: invite.sso,
    })
}

/// Starts the employee sign-in that accepts the invite (its digest rides in the flow).
async fn sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(token): Path<String>,
) -> Response {
    match org_of(&state, &token).await {
        Ok(Some((org, true))) => {
            let hash = TokenHash::of(&token).as_str().to_owned();
            crate::sso::start_flow(&state, &headers, org, Some(hash)).await
        }
        Ok(Some((_, false))) => {
            axum::response::Redirect::to(&format!("/invite/{token}")).into_response()
        }
        Ok(None) => not_found(),
        Err(()) => unavailable(),
    }
}

/// The org an invite belongs to (the command is scoped by it), and whether it has employee
/// sign-in.
async fn org_of(state: &AppState, token: &str) -> Result<Option<(Uuid, bool)>, ()> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    store::invite::org_of(&state.db, &TokenHash::of(token))
        .await
        .map_err(|_| ())
}

/// The confirmation page; with `sign_in_token`, its button is the employee sign-in link.
fn confirm_page(first_name: Option<&str>, org_name: &str, sign_in_token: Option<&str>) -> Response {
    let hello = first_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map_or("Hello,".to_owned(), |n| {
            format!("Hello {},", common::html::escape(n))
        });
    let button = match sign_in_token {
        Some(token) => format!(
            "<p><a id=\"accept-sign-in\" href=\"/invite/{}/sign-in\" \
             style=\"font-size:1rem;padding:.5rem 1rem;border:1px solid;text-decoration:none\">\
             Sign in with Okta to accept</a></p>",
            common::html::escape(token)
        ),
        None => "<form method=\"post\"><button type=\"submit\" \
                 style=\"font-size:1rem;padding:.5rem 1rem\">Accept the invite</button></form>"
            .to_owned(),
    };
    let body = format!(
        "<p>{hello}</p><p>{org} invites you to its people directory on Roster.</p>{button}",
        org = common::html::escape(org_name),
    );
    page(StatusCode::OK, "Accept your invite", &body)
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Invite not found",
        "<p>This invite link is not valid. Check that you copied all of it, or ask your \
         administrator for a new one.</p>",
    )
}

fn already_used() -> Response {
    page(
        StatusCode::CONFLICT,
        "Invite already used",
        "<p>This invite link was already used; it works once. If that was not you, tell \
         your administrator.</p>",
    )
}

fn expired() -> Response {
    page(
        StatusCode::GONE,
        "Invite expired",
        "<p>This invite link has expired. Ask your administrator for a new one.</p>",
    )
}

fn inactive() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Not in the directory",
        "<p>Your profile is not active in the directory right now, so this invite cannot be \
         accepted. Ask your administrator.</p>",
    )
}

fn unavailable() -> Response {
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<p>Roster is busy right now. Reload this page in a few seconds.</p>",
    );
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::error::RETRY_AFTER_SECS),
    );
    res
}

/// A whole page; `body` is trusted markup (every value in it already escaped).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\">\
         <h1>{title}</h1>{body}</body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_page_escapes_names_and_posts_back() {
        let res = confirm_page(Some("<script>x</script>"), "A&B \"Co\"", None);
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(csp.contains("form-action 'self'"), "{csp}");
        let body = futures_body(res);
        assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");
        assert!(!body.contains("<script>"));
        assert!(body.contains("A&amp;B &quot;Co&quot;"));
        assert!(body.contains("<form method=\"post\">"));
    }

    #[test]
    fn with_employee_sign_in_the_button_is_the_sign_in_link() {
        let body = futures_body(confirm_page(Some("Jo"), "Acme", Some("rst_inv_abc")));
        assert!(
            body.contains("href=\"/invite/rst_inv_abc/sign-in\""),
            "{body}"
        );
        assert!(!body.contains("<form"), "{body}");
    }

    fn futures_body(res: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = rt
            .block_on(axum::body::to_bytes(res.into_body(), 1 << 16))
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf8")
    }
}
