//! `/directory`: what a signed-in person sees — the org's active people — and their own
//! edit of the fields the org's lock allows (the worker's `person.update` decides, as for
//! `PATCH /api/v1/people/{id}`).

use super::{
    FormPost, Visitor, ended, failure_page, jar, oidc::Failure, session::Session, unavailable,
    view, visitor,
};
use crate::{admin::service, state::AppState};
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};
use common::mapping::Policy;
use serde_json::{Map, Value};

/// People the directory lists.
const PEOPLE: u64 = 500;

pub(super) async fn directory(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let jar = jar(&state, &headers);
    match visitor(&state, &jar).await {
        Ok(Visitor::SignedIn(s)) => render(&state, &s, None, StatusCode::OK)
            .await
            .unwrap_or_else(|f| failure_page(&f, Some(s.org))),
        Ok(Visitor::Ended(org)) => ended(jar, org, org.is_some()),
        Err(f) => failure_page(&f, None),
    }
}

/// Which of the person's fields they may edit: every mapped field but the manager link,
/// minus those Okta overwrites while the org locks synced fields.
fn editable(mappings: &[common::mapping::Mapping], locked: bool) -> Vec<(String, bool)> {
    mappings
        .iter()
        .filter(|m| m.field != "manager")
        .map(|m| {
            let locked = locked && m.policy == Policy::Overwrite;
            (m.field.clone(), !locked)
        })
        .collect()
}

async fn render(
    state: &AppState,
    s: &Session,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Failure> {
    let (people, me, mappings, settings) = tokio::try_join!(
        service::people(state, s.org, false, PEOPLE, 0),
        service::person_by_id(state, s.org, s.user),
        service::mappings(state, s.org),
        service::settings(state, s.org),
    )
    .map_err(|_| unavailable())?;
    let fields = editable(&mappings, settings.lock_synced_fields);
    let page = view::Directory {
        people: &people,
        me: &me,
        fields: &fields,
        csrf: &s.csrf,
        error: error.as_deref(),
    };
    Ok((status, Html(view::directory(&page).into_string())).into_response())
}

/// The person's own edit: the fields whose value changed (empty clears). A locked field in
/// the form is sent too, and the worker refuses the whole edit (`409`), as on the API.
#[tracing::instrument(skip_all)]
pub(super) async fn edit_me(State(state): State<AppState>, post: FormPost) -> Response {
    let s = match visitor(&state, &post.jar).await {
        Ok(Visitor::SignedIn(s)) => s,
        Ok(Visitor::Ended(org)) => return ended(post.jar, org, org.is_some()),
        Err(f) => return failure_page(&f, None),
    };
    if !s.csrf_matches(post.csrf()) {
        let f = Failure::new(
            "stale_form",
            403,
            "This form has expired or did not come from Roster. Reload the directory and try again.",
        );
        return failure_page(&f, Some(s.org));
    }
    let me = match service::person_by_id(&state, s.org, s.user).await {
        Ok(me) => me,
        Err(_) => return failure_page(&unavailable(), Some(s.org)),
    };
    let changes = changed_fields(&me.fields, &post.fields);
    if changes.is_empty() {
        return Redirect::to("/directory").into_response();
    }
    match service::update_person(&state, s.org, &post.request, s.user, changes).await {
        Ok(_) => Redirect::to("/directory").into_response(),
        Err(e) if e.status.is_client_error() => render(&state, &s, Some(e.message), e.status)
            .await
            .unwrap_or_else(|f| failure_page(&f, Some(s.org))),
        Err(_) => failure_page(&unavailable(), Some(s.org)),
    }
}

/// The form's `field.<name>` values that differ from the stored ones; empty is `null`.
fn changed_fields(current: &Map<String, Value>, form: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in form {
        let Some(field) = key.strip_prefix("field.") else {
            continue;
        };
        let value = value.trim();
        let now = current.get(field).and_then(Value::as_str).unwrap_or("");
        if value != now {
            let v = if value.is_empty() {
                Value::Null
            } else {
                Value::String(value.to_owned())
            };
            out.insert(field.to_owned(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::mapping::Mapping;

    #[test]
    fn only_changed_fields_are_sent_and_empty_clears() {
        let mut current = Map::new();
        current.insert("first_name".into(), "Jane".into());
        current.insert("phone".into(), "123".into());
        let form = [
            ("csrf".to_owned(), "x".to_owned()),
            ("field.first_name".to_owned(), " Jane ".to_owned()),
            ("field.phone".to_owned(), String::new()),
            ("field.preferred_name".to_owned(), "JJ".to_owned()),
            ("field.location".to_owned(), String::new()),
        ];
        let out = changed_fields(&current, &form);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out["phone"], Value::Null);
        assert_eq!(out["preferred_name"], "JJ");
    }

    #[test]
    fn the_lock_makes_overwritten_fields_read_only() {
        let rows = vec![
            Mapping {
                field: "job_title".into(),
                scim_attribute: "title".into(),
                policy: Policy::Overwrite,
            },
            Mapping {
                field: "preferred_name".into(),
                scim_attribute: "nickName".into(),
                policy: Policy::CreateOnly,
            },
            Mapping {
                field: "manager".into(),
                scim_attribute: "x".into(),
                policy: Policy::Ignore,
            },
        ];
        assert_eq!(
            editable(&rows, true),
            [
                ("job_title".to_owned(), false),
                ("preferred_name".to_owned(), true)
            ]
        );
        assert!(editable(&rows, false).iter().all(|(_, e)| *e));
    }
}
