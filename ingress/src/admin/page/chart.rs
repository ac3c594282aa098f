//! `/admin/org-chart`: the org chart page, server-rendered for a signed-in admin (no
//! script needed): the tree as nested lists, a deactivated manager shown as a vacancy,
//! each person a link that shows the tree below them, and the people whose manager value
//! names no one yet.

use super::{PageError, Visit, view::layout};
use crate::{
    admin::org_chart::{self, MAX_DEPTH, Node},
    state::AppState,
};
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

/// Levels of reports the page shows at once; deeper people are one click away.
const PAGE_DEPTH: u32 = 3;
/// Waiting people the page lists.
const WAITING: u64 = 50;

#[derive(Deserialize)]
pub(super) struct ChartQuery {
    root: Option<String>,
    depth: Option<u32>,
}

pub(super) async fn show(
    State(state): State<AppState>,
    visit: Visit,
    Query(q): Query<ChartQuery>,
) -> Result<Response, PageError> {
    let org = visit
        .session
        .as_ref()
        .and_then(|s| s.org)
        .ok_or(PageError::SignIn)?;
    let root = org_chart::parse_root(q.root.as_deref())?;
    let depth = q.depth.unwrap_or(PAGE_DEPTH).min(MAX_DEPTH);
    let (trees, waiting) = tokio::try_join!(
        org_chart::chart(&state, org, root, depth),
        org_chart::waiting(&state, org, WAITING),
    )?;
    let html = page(&trees, root, &waiting).into_string();
    Ok((StatusCode::OK, Html(html)).into_response())
}

fn page(trees: &[Node], root: Option<Uuid>, waiting: &[(Uuid, String, String)]) -> Markup {
    layout(
        "Org chart",
        html! {
            header {
                h1 { "Org chart" }
                a #back-to-admin href="/admin" { "← Okta integration" }
            }
            main {
                section #org-chart {
                    @if root.is_some() {
                        p { a #whole-org href="/admin/org-chart" { "Whole organisation" } }
                    }
                    @if trees.is_empty() {
                        p.hint { "No one yet: people appear here as Okta provisions them." }
                    } @else {
                        ul.chart { @for n in trees { (node(n)) } }
                    }
                    p.hint {
                        "A vacancy is a deactivated manager whose reports have not moved yet. "
                        "Tap a name to see the tree below that person."
                    }
                }
                @if !waiting.is_empty() {
                    section #waiting {
                        h2 { "Waiting for their manager" }
                        p.hint { "Their manager value names no one in Roster yet; they are linked when that person arrives." }
                        ul.waiting {
                            @for (id, name, raw) in waiting {
                                li.waiting-person data-id=(id) { (name) " → " code { (raw) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn node(n: &Node) -> Markup {
    html! {
        li.node data-id=(n.id) data-active=(n.active) {
            div.card.vacant[!n.active] {
                @if n.active {
                    a.name href={ "/admin/org-chart?root=" (n.id) } { (n.name) }
                    @if let Some(t) = &n.job_title { span.title { (t) } }
                } @else {
                    span.name { "Vacant position" }
                    span.title { "was " (n.name) }
                }
                @if n.report_count > 0 && n.reports.is_empty() {
                    a.more href={ "/admin/org-chart?root=" (n.id) } { (n.report_count) " reports →" }
                }
            }
            @if !n.reports.is_empty() {
                ul { @for r in &n.reports { (node(r)) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, active: bool, reports: Vec<Node>) -> Node {
        Node {
            id: Uuid::now_v7(),
            name: name.into(),
            job_title: Some("<b>Chief</b>".into()),
            active,
            report_count: i64::try_from(reports.len()).unwrap_or(0),
            reports,
        }
    }

    #[test]
    fn vacancies_are_named_and_values_escaped() {
        let tree = vec![n(
            "Ann <Boss>",
            true,
            vec![n("Gone", false, vec![n("Bob", true, vec![])])],
        )];
        let html = page(&tree, None, &[]).into_string();
        assert!(html.contains("Ann &lt;Boss&gt;"), "{html}");
        assert!(html.contains("&lt;b&gt;Chief&lt;/b&gt;"), "{html}");
        assert!(html.contains("Vacant position"), "{html}");
        assert!(html.contains("was Gone"), "{html}");
        assert!(!html.contains("waiting-person"), "{html}");
    }
}
