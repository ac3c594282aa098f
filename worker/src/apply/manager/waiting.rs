//! The reports waiting for a manager who arrives (or whose keys change): found, and linked
//! with their events, in one statement however many they are.

use super::super::{
    Audit, Tx, audit,
    hot_sql::{ANY_WAITING, LINK_ARRIVALS, LINK_WAITING},
};
use super::{key_values, refused};
use common::{
    db::{entities::user, stmt},
    messages::{Envelope, UserEvent, events},
    org_chart::MatchKey,
};
use sea_orm::{ConnectionTrait, DbErr, Value};
use serde_json::json;
use uuid::Uuid;

/// The parameters of `hot_sql::ANY_WAITING` and `LINK_WAITING` for `m`; `None` when `m`
/// has no value anyone could wait on.
fn waiting(org_id: Uuid, m: &user::Model, keys: &[MatchKey]) -> Option<[Value; 5]> {
    let (all, exact, folded) = key_values(m, keys);
    (!all.is_empty()).then(|| {
        [
            org_id.into(),
            m.id.into(),
            json!(all).into(),
            json!(exact).into(),
            json!(folded).into(),
        ]
    })
}

/// Whether anyone waits on one of `m`'s keys.
pub(super) async fn any_waiting(
    tx: &Tx<'_>,
    org_id: Uuid,
    m: &user::Model,
    keys: &[MatchKey],
) -> Result<bool, DbErr> {
    let Some(waiting) = waiting(org_id, m, keys) else {
        return Ok(false);
    };
    let row = tx.query_one_raw(stmt(ANY_WAITING, waiting)).await?;
    match row {
        Some(r) => r.try_get("", "found"),
        None => Ok(false),
    }
}

/// Links everyone waiting on one of `m`'s keys to `m`, bumping each one's version and
/// with their `user.updated` events; those who are above `m` (it would close a cycle)
/// keep waiting, with an activity entry saying why. One statement, however many reports.
pub(super) async fn link_waiting(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    m: &user::Model,
    keys: &[MatchKey],
) -> Result<(), DbErr> {
    let Some(waiting) = waiting(org_id, m, keys) else {
        return Ok(());
    };
    let rows = tx.query_all_raw(stmt(LINK_WAITING, waiting)).await?;
    let mut linked = Vec::new();
    for r in &rows {
        let (id, user_name): (Uuid, String) = (r.try_get("", "id")?, r.try_get("", "user_name")?);
        if r.try_get::<bool>("", "linked")? {
            linked.push(Report::from_row(r)?);
        } else {
            let manager_ref: Option<String> = r.try_get("", "manager_ref")?;
            let reason = format!(
                "{} already reports to {user_name}, directly or through others; \
                 {user_name} stays without a manager",
                m.user_name
            );
            refused(
                tx,
                env,
                org_id,
                (id, &user_name),
                manager_ref.as_deref(),
                Some(m.id),
                reason,
            );
        }
    }
    reports_linked(tx, env, org_id, m, &linked);
    Ok(())
}

/// A report just linked to their manager, at their new version.
pub(in super::super) struct Report {
    pub id: Uuid,
    pub version: i64,
    pub user_name: String,
}

impl Report {
    /// From a row of `LINK_WAITING` or `LINK_ARRIVALS` (`id`, `version`, `user_name`).
    fn from_row(r: &sea_orm::QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            id: r.try_get("", "id")?,
            version: r.try_get("", "version")?,
            user_name: r.try_get("", "user_name")?,
        })
    }
}

/// The effects of linking `reports` to `m`: each one's `user.updated` event, written in
/// order with the batch's, and one activity entry for them all.
pub(in super::super) fn reports_linked(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    m: &user::Model,
    reports: &[Report],
) {
    if reports.is_empty() {
        return;
    }
    for r in reports {
        let mut changes = serde_json::Map::new();
        changes.insert("manager_id".into(), json!(m.id));
        let event = Envelope::new(
            events::USER_UPDATED,
            Some(org_id),
            &env.correlation_id,
            UserEvent {
                user_id: r.id,
                version: r.version,
                user_name: r.user_name.clone(),
                changes,
                manager_id: Some(m.id),
            },
        );
        tx.effects().events.push(event);
    }
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "manager.reports_linked",
            resource_type: "User",
            resource_id: Some(m.id.to_string()),
            detail: json!({"userName": m.user_name, "reports": reports.len()}),
        },
    );
    tracing::debug!(manager = %m.id, linked = reports.len(), "reports waiting for their manager linked");
}

/// Links everyone waiting on a key of one of `arrivals` — people just created with no
/// manager value of their own, each with their org's keys — in one statement, however
/// many they are: a report waiting on a key of several goes to the first, as if they had
/// been created one after another. None of these links can close a cycle: no arrival
/// reports to anyone. The caller holds the arrivals' value locks (`arrives_with`).
/// Returns each arrival's reports, in order.
pub(in super::super) async fn link_arrivals(
    tx: &impl ConnectionTrait,
    arrivals: &[(user::Model, Vec<MatchKey>)],
) -> Result<Vec<Vec<Report>>, DbErr> {
    let mut values = Vec::new();
    for (n, (m, keys)) in arrivals.iter().enumerate() {
        for (v, exact) in compared_values(m, keys) {
            values.push(json!({
                "n": n, "org_id": m.org_id, "manager": m.id,
                "lv": v.to_lowercase(), "v": v, "exact": exact,
            }));
        }
    }
    let mut reports: Vec<Vec<Report>> = arrivals.iter().map(|_| Vec::new()).collect();
    if values.is_empty() {
        return Ok(reports);
    }
    let rows = tx
        .query_all_raw(stmt(LINK_ARRIVALS, [json!(values).into()]))
        .await?;
    for r in &rows {
        let n: i32 = r.try_get("", "n")?;
        if let Some(of) = usize::try_from(n).ok().and_then(|n| reports.get_mut(n)) {
            of.push(Report::from_row(r)?);
        }
    }
    Ok(reports)
}

/// `m`'s values for the org's `keys`, each with whether it is compared exactly (else
/// lowercased, as `waiting!` compares them).
pub(super) fn compared_values(m: &user::Model, keys: &[MatchKey]) -> Vec<(String, bool)> {
    let (_, exact, folded) = key_values(m, keys);
    let exact = exact.into_iter().map(|v| (v, true));
    exact
        .chain(folded.into_iter().map(|v| (v, false)))
        .collect()
}
