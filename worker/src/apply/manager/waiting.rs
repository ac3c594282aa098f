//! The reports waiting for a manager who arrives (or whose keys change): found, and linked
//! with their events, in one statement however many they are.

use super::super::{Audit, Tx, audit};
use super::{key_values, refused};
use common::{
    db::{entities::user, stmt},
    messages::{Envelope, UserEvent, events},
    org_chart::MatchKey,
};
use sea_orm::{ConnectionTrait, DbErr, Value};
use serde_json::json;
use uuid::Uuid;

/// People of org `$1` other than `$2` waiting on a value among `$3` (lowercased), equal
/// to one of `$4` (keys compared exactly) or, lowercased, to one of `$5` (the others).
/// The first test is the `users_waiting_manager` index.
const WAITING: &str = "r.org_id = $1 AND r.id <> $2 AND r.manager_id IS NULL AND r.manager_ref IS NOT NULL \
     AND lower(r.manager_ref) = ANY (ARRAY(SELECT jsonb_array_elements_text($3::jsonb))) \
     AND (r.manager_ref = ANY (ARRAY(SELECT jsonb_array_elements_text($4::jsonb))) \
          OR lower(r.manager_ref) = ANY (ARRAY(SELECT jsonb_array_elements_text($5::jsonb))))";

/// The parameters of [`WAITING`] for `m`; `None` when `m` has no value anyone could wait on.
fn waiting_params(org_id: Uuid, m: &user::Model, keys: &[MatchKey]) -> Option<Vec<Value>> {
    let (all, exact, folded) = key_values(m, keys);
    (!all.is_empty()).then(|| {
        vec![
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
    let Some(params) = waiting_params(org_id, m, keys) else {
        return Ok(false);
    };
    let row = tx
        .query_one_raw(stmt(
            &format!("SELECT EXISTS (SELECT 1 FROM users r WHERE {WAITING}) AS found"),
            params,
        ))
        .await?;
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
    let Some(params) = waiting_params(org_id, m, keys) else {
        return Ok(());
    };
    let rows = tx
        .query_all_raw(stmt(
            &format!("WITH RECURSIVE up (id, manager_id) AS ( \
                 SELECT id, manager_id FROM users WHERE id = $2 \
                 UNION SELECT u.id, u.manager_id FROM users u JOIN up ON u.id = up.manager_id), \
             cand AS ( \
                 SELECT r.id, r.user_name, r.manager_ref, r.id IN (SELECT id FROM up) AS cycle FROM users r \
                 WHERE {WAITING}), \
             linked AS ( \
                 UPDATE users u SET manager_id = $2, version = u.version + 1, updated_at = now() \
                 FROM cand WHERE u.id = cand.id AND NOT cand.cycle \
                   AND u.manager_id IS NULL AND u.manager_ref = cand.manager_ref \
                 RETURNING u.id, u.version, u.user_name) \
             SELECT true AS linked, id, version, user_name, NULL::text AS manager_ref FROM linked \
             UNION ALL \
             SELECT false, id, NULL, user_name, manager_ref FROM cand WHERE cycle"),
            params,
        ))
        .await?;
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
