//! The org chart, read side (the worker resolves managers: `worker::apply::manager`):
//! `GET /api/v1/people/{id}/reports` and `GET /api/v1/org-chart?root=&depth=` (admin key),
//! and the tree the `/admin/org-chart` page renders.

use super::service::{self, Person};
use crate::{auth::AdminOrg, error::ApiError, state::AppState, store};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// The deepest tree served: levels of reports below the roots.
pub const MAX_DEPTH: u32 = 64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/people/{id}/reports", get(get_reports))
        .route("/api/v1/org-chart", get(get_chart))
}

/// One person in the chart.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub id: Uuid,
    pub name: String,
    pub job_title: Option<String>,
    /// `false`: a deactivated manager, shown as a vacancy above their reports.
    pub active: bool,
    /// Their active direct reports, whether or not `reports` lists them (it does not at
    /// the depth limit).
    pub report_count: i64,
    pub reports: Vec<Node>,
}

async fn get_reports(
    State(state): State<AppState>,
    org: AdminOrg,
    Path(id): Path<String>,
) -> Result<Json<Vec<Person>>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "person not found");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    Ok(Json(reports(&state, org.0, id).await?))
}

/// A person's direct reports (inactive ones too), by name; `404` for no such person.
pub async fn reports(state: &AppState, org: Uuid, id: Uuid) -> Result<Vec<Person>, ApiError> {
    service::person_by_id(state, org, id).await?;
    let rows = store::directory::reports(&state.db, org, id).await?;
    Ok(rows.into_iter().map(Person::from).collect())
}

#[derive(Deserialize)]
struct ChartQuery {
    root: Option<String>,
    depth: Option<u32>,
}

async fn get_chart(
    State(state): State<AppState>,
    org: AdminOrg,
    Query(q): Query<ChartQuery>,
) -> Result<Json<Vec<Node>>, ApiError> {
    let root = parse_root(q.root.as_deref())?;
    if q.depth.is_some_and(|d| d > MAX_DEPTH) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("depth is at most {MAX_DEPTH}"),
        ));
    }
    Ok(Json(
        chart(&state, org.0, root, q.depth.unwrap_or(MAX_DEPTH)).await?,
    ))
}

/// `root` as a person id; an empty one means none.
pub fn parse_root(root: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    match root.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(r) => Uuid::parse_str(r)
            .map(Some)
            .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "person not found")),
    }
}

use store::directory::ChartRow as Row;

/// The tree below `root` (`[root]`), or below everyone without a manager; `depth` levels
/// of reports. Deactivated people appear only where they have reports (a vacancy).
///
/// One plain read of the org's people (an index scan, no recursion for the planner to
/// misjudge), assembled here: 10,000 people are a few milliseconds of SQL
/// (docs/performance.md).
pub async fn chart(
    state: &AppState,
    org: Uuid,
    root: Option<Uuid>,
    depth: u32,
) -> Result<Vec<Node>, ApiError> {
    let rows = store::directory::chart(&state.db, org).await?;
    if let Some(id) = root
        && !rows.iter().any(|r| r.id == id)
    {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "person not found"));
    }
    Ok(tree(rows, root, depth.min(MAX_DEPTH)))
}

/// Assembles the org's people into the trees below `root` (or below everyone without a
/// manager), `depth` levels deep, children by name. A deactivated person without reports
/// is left out, unless they are the root asked for.
fn tree(rows: Vec<Row>, root: Option<Uuid>, depth: u32) -> Vec<Node> {
    let mut children: HashMap<Option<Uuid>, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        children.entry(r.manager_id).or_default().push(i);
    }
    for kids in children.values_mut() {
        kids.sort_by(|&a, &b| {
            (rows[a].name.to_lowercase(), rows[a].id)
                .cmp(&(rows[b].name.to_lowercase(), rows[b].id))
        });
    }
    let kids_of = |id: Uuid| children.get(&Some(id)).map_or(&[][..], Vec::as_slice);
    // Iterative, so no tree is too deep for the stack: a node's reports are built before
    // it, from the bottom level up.
    let roots: Vec<usize> = match root {
        Some(id) => rows.iter().position(|r| r.id == id).into_iter().collect(),
        None => children.get(&None).cloned().unwrap_or_default(),
    };
    let mut levels: Vec<Vec<usize>> = vec![roots.clone()];
    while levels.len() <= depth as usize {
        let next: Vec<usize> = levels[levels.len() - 1]
            .iter()
            .flat_map(|&i| kids_of(rows[i].id).iter().copied())
            .collect();
        if next.is_empty() {
            break;
        }
        levels.push(next);
    }
    let mut built: HashMap<usize, Node> = HashMap::new();
    for (level, members) in levels.iter().enumerate().rev() {
        for &i in members {
            let r = &rows[i];
            let kids = kids_of(r.id);
            let reports: Vec<Node> = if level < depth as usize {
                kids.iter().filter_map(|k| built.remove(k)).collect()
            } else {
                Vec::new()
            };
            let keep = r.active || !kids.is_empty() || (level == 0 && root.is_some());
            if keep {
                let report_count = kids.iter().filter(|&&k| rows[k].active).count();
                built.insert(
                    i,
                    Node {
                        id: r.id,
                        name: r.name.clone(),
                        job_title: r.job_title.clone(),
                        active: r.active,
                        report_count: i64::try_from(report_count).unwrap_or(i64::MAX),
                        reports,
                    },
                );
            }
        }
    }
    roots.iter().filter_map(|i| built.remove(i)).collect()
}

/// People whose manager value names no one yet, for the page: (id, name, raw value).
pub async fn waiting(
    state: &AppState,
    org: Uuid,
    limit: u64,
) -> Result<Vec<(Uuid, String, String)>, ApiError> {
    Ok(store::directory::waiting(&state.db, org, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, manager_id: Option<Uuid>, active: bool) -> Row {
        Row {
            id: Uuid::now_v7(),
            manager_id,
            name: name.into(),
            job_title: None,
            active,
        }
    }

    #[test]
    fn trees_are_sorted_by_name_and_departed_leaves_dropped() {
        let boss = row("Zoe", None, true);
        let vacancy = row("Gone", Some(boss.id), false);
        let under_vacancy = row("bob", Some(vacancy.id), true);
        let departed = row("Left", Some(boss.id), false);
        let alone = row("amy", None, true);
        let ids = (boss.id, vacancy.id, under_vacancy.id);
        let rows = vec![under_vacancy, departed, vacancy, boss, alone];
        let t = tree(rows, None, MAX_DEPTH);
        let names: Vec<_> = t.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["amy", "Zoe"]);
        assert_eq!(t[1].id, ids.0);
        assert_eq!(t[1].reports.len(), 1, "the departed leaf is left out");
        assert_eq!(t[1].report_count, 0, "no active direct report");
        assert_eq!(t[1].reports[0].id, ids.1);
        assert!(!t[1].reports[0].active);
        assert_eq!(t[1].reports[0].reports[0].id, ids.2);
    }

    #[test]
    fn depth_cuts_the_tree_and_counts_stay() {
        // A chain of 10 000: no recursion to overflow, and depth cuts it.
        let mut rows = vec![row("p0", None, true)];
        for i in 1..10_000 {
            let up = rows[i - 1].id;
            rows.push(row(&format!("p{i}"), Some(up), true));
        }
        let (top, second) = (rows[0].id, rows[1].id);
        let t = tree(rows, Some(second), 2);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].reports[0].reports[0].reports.len(),
            0,
            "cut at depth 2"
        );
        assert_eq!(t[0].reports[0].reports[0].report_count, 1, "but counted");
        let mut rows = vec![row("solo", None, true)];
        rows.push(row("r", Some(rows[0].id), true));
        let t = tree(rows, None, 0);
        assert!(t[0].reports.is_empty());
        assert_eq!(t[0].report_count, 1);
        assert_ne!(top, second);
    }
}
