//! The org chart, read side (the worker resolves managers: `worker::apply::manager`):
//! `GET /api/v1/people/{id}/reports` and `GET /api/v1/org-chart?root=&depth=` (admin key),
//! and the tree the `/admin/org-chart` page renders.

use super::service::{self, Person, name_sql};
use crate::{app::AppState, auth::AdminOrg, error::ApiError};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use common::db::stmt;
use sea_orm::ConnectionTrait;
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
    let rows = state
        .db
        .query_all_raw(stmt(
            &format!(
                "SELECT u.id, u.user_name, u.active, u.profile, u.version, u.updated_at, u.manager_ref, \
                     m.id AS manager_id, m.active AS manager_active, {} AS manager_name \
                 FROM users u JOIN users m ON m.id = u.manager_id \
                 WHERE u.manager_id = $2 AND u.org_id = $1 \
                 ORDER BY lower({}), u.id",
                name_sql("m"),
                name_sql("u")
            ),
            [org.into(), id.into()],
        ))
        .await?;
    rows.iter().map(service::person).collect()
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

/// One row of the tree query.
struct Row {
    node: Node,
    parent: Option<Uuid>,
    reports_any: i64,
}

/// The tree below `root` (`[root]`), or below everyone without a manager; `depth` levels
/// of reports. Deactivated people appear only where they have reports (a vacancy).
pub async fn chart(
    state: &AppState,
    org: Uuid,
    root: Option<Uuid>,
    depth: u32,
) -> Result<Vec<Node>, ApiError> {
    if let Some(id) = root {
        service::person_by_id(state, org, id).await?;
    }
    let rows = state
        .db
        .query_all_raw(stmt(
            &format!(
                "WITH RECURSIVE t (id, parent, depth) AS ( \
                     SELECT u.id, NULL::uuid, 0 FROM users u \
                     WHERE u.org_id = $1 AND (CASE WHEN $2::uuid IS NULL THEN u.manager_id IS NULL ELSE u.id = $2 END) \
                     UNION ALL \
                     SELECT u.id, u.manager_id, t.depth + 1 FROM t JOIN users u ON u.manager_id = t.id \
                     WHERE t.depth < $3 AND u.org_id = $1) \
                 SELECT t.id, t.parent, {} AS name, u.profile->>'job_title' AS job_title, u.active, \
                     c.active_reports, c.reports_any \
                 FROM t JOIN users u ON u.id = t.id \
                 CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE r.active) AS active_reports, count(*) AS reports_any \
                     FROM users r WHERE r.manager_id = t.id) c",
                name_sql("u")
            ),
            [org.into(), root.into(), i32::try_from(depth.min(MAX_DEPTH)).unwrap_or(0).into()],
        ))
        .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(Row {
                node: Node {
                    id: r.try_get("", "id")?,
                    name: r.try_get("", "name")?,
                    job_title: r.try_get("", "job_title")?,
                    active: r.try_get("", "active")?,
                    report_count: r.try_get("", "active_reports")?,
                    reports: Vec::new(),
                },
                parent: r.try_get("", "parent")?,
                reports_any: r.try_get("", "reports_any")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(tree(rows, root.is_some()))
}

/// Assembles the rows into trees, children by name; a deactivated person without reports
/// is left out (unless they are the root asked for).
fn tree(rows: Vec<Row>, keep_root: bool) -> Vec<Node> {
    let mut children: HashMap<Option<Uuid>, Vec<Row>> = HashMap::new();
    for r in rows {
        children.entry(r.parent).or_default().push(r);
    }
    fn build(row: Row, children: &mut HashMap<Option<Uuid>, Vec<Row>>, keep: bool) -> Option<Node> {
        let mut node = row.node;
        if !node.active && row.reports_any == 0 && !keep {
            return None;
        }
        let mut kids = children.remove(&Some(node.id)).unwrap_or_default();
        kids.sort_by(|a, b| {
            (a.node.name.to_lowercase(), a.node.id).cmp(&(b.node.name.to_lowercase(), b.node.id))
        });
        node.reports = kids
            .into_iter()
            .filter_map(|k| build(k, children, false))
            .collect();
        Some(node)
    }
    let mut roots = children.remove(&None).unwrap_or_default();
    roots.sort_by(|a, b| {
        (a.node.name.to_lowercase(), a.node.id).cmp(&(b.node.name.to_lowercase(), b.node.id))
    });
    roots
        .into_iter()
        .filter_map(|r| build(r, &mut children, keep_root))
        .collect()
}

/// People whose manager value names no one yet, for the page: (id, name, raw value).
pub async fn waiting(
    state: &AppState,
    org: Uuid,
    limit: u64,
) -> Result<Vec<(Uuid, String, String)>, ApiError> {
    let rows = state
        .db
        .query_all_raw(stmt(
            &format!(
                "SELECT u.id, {} AS name, u.manager_ref FROM users u \
                 WHERE u.org_id = $1 AND u.manager_id IS NULL AND u.manager_ref IS NOT NULL AND u.active \
                 ORDER BY lower(u.manager_ref), u.id LIMIT $2",
                name_sql("u")
            ),
            [org.into(), i64::try_from(limit).unwrap_or(100).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "id")?,
                r.try_get("", "name")?,
                r.try_get("", "manager_ref")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, parent: Option<Uuid>, active: bool, reports_any: i64) -> Row {
        Row {
            node: Node {
                id: Uuid::now_v7(),
                name: name.into(),
                job_title: None,
                active,
                report_count: 0,
                reports: Vec::new(),
            },
            parent,
            reports_any,
        }
    }

    #[test]
    fn trees_are_sorted_by_name_and_departed_leaves_dropped() {
        let boss = row("Zoe", None, true, 2);
        let vacancy = row("Gone", Some(boss.node.id), false, 1);
        let under_vacancy = row("bob", Some(vacancy.node.id), true, 0);
        let departed = row("Left", Some(boss.node.id), false, 0);
        let alone = row("amy", None, true, 0);
        let ids = (boss.node.id, vacancy.node.id, under_vacancy.node.id);
        let t = tree(vec![under_vacancy, departed, vacancy, boss, alone], false);
        let names: Vec<_> = t.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["amy", "Zoe"]);
        assert_eq!(t[1].id, ids.0);
        assert_eq!(t[1].reports.len(), 1, "the departed leaf is left out");
        assert_eq!(t[1].reports[0].id, ids.1);
        assert!(!t[1].reports[0].active);
        assert_eq!(t[1].reports[0].reports[0].id, ids.2);
    }
}
