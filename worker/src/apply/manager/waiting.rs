//! The reports waiting for a manager who arrives (or whose keys change): found, and linked
//! with their events, in one statement however many they are.

use super::super::{
    Audit, Tx, audit,
    hot_sql::{ANY_WAITING, LINK_WAITING},
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
    // Their events and activity entries are effects, written in order with the batch's.
    let mut linked = 0;
    for r in &rows {
        let (id, user_name): (Uuid, String) = (r.try_get("", "id")?, r.try_get("", "user_name")?);
        if r.try_get::<bool>("", "linked")? {
            linked += 1;
            let mut changes = serde_json::Map::new();
            changes.insert("manager_id".into(), json!(m.id));
            let event = Envelope::new(
                events::USER_UPDATED,
                Some(org_id),
                &env.correlation_id,
                UserEvent {
                    user_id: id,
                    version: r.try_get("", "version")?,
                    user_name,
                    changes,
                    manager_id: Some(m.id),
                },
            );
            tx.effects().events.push(event);
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
    if linked > 0 {
        audit(
            tx,
            env,
            Some(org_id),
            Audit {
                action: "manager.reports_linked",
                resource_type: "User",
                resource_id: Some(m.id.to_string()),
                detail: json!({"userName": m.user_name, "reports": linked}),
            },
        );
        tracing::debug!(manager = %m.id, linked, "reports waiting for their manager linked");
    }
    Ok(())
}
