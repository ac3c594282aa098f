//! The org chart in the worker: a person's mapped `manager` value resolved to a person of
//! the same org, in the transaction of the command that creates or changes either side
//! (docs/admin.md, "The org chart").
//!
//! - The person's own value is tried against the org's `manager_match` keys in order; a
//!   match links them, no match leaves them waiting on the raw value (`manager_ref`).
//! - A person who arrives (or whose keys change) picks up everyone waiting on one of their
//!   keys, in one statement; each report's `user.updated` event is one of the command's
//!   effects (`effects`), so it follows the events written before it.
//! - A link that would close a cycle is refused: the rest of the change stands, the link
//!   stays as it was, and the activity log says why.
//! - A deactivated manager stays linked (the chart shows a vacancy); a deleted one leaves
//!   the reports waiting again (`ON DELETE SET NULL`).
//!
//! Concurrent workers (transaction-level advisory locks, held until commit):
//! - a person waiting on a value (shared) and a person arriving with it (exclusive) lock
//!   that value, so whichever commits second sees the first (without it a report and its
//!   manager created at once could each miss the other);
//! - every link that could close a cycle is made under the org's chart lock, so each
//!   cycle check sees every link made before it (two crossing changes could otherwise
//!   both pass). A first import mostly never takes it: a new person's own link cannot
//!   close a cycle, nor can linking reports to a new person who has no manager yet.

use super::Tx;
use super::{Audit, audit};
use common::{
    db::{entities::user, stmt},
    messages::Envelope,
    org_chart::{self, MatchKey},
};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::{Value as Json, json};
use uuid::Uuid;

/// Resolves `new`'s manager after its row was written (`old` is the row before, `None` on
/// create), links the people waiting for `new`, and sets `new.manager_id`/`manager_ref`
/// to what is stored. Returns whether `new`'s own link changed.
pub(super) async fn resolve(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    old: Option<&user::Model>,
    new: &mut user::Model,
) -> Result<bool, DbErr> {
    let raw = own_value(new);
    let (old_ref, old_id) = old.map_or((None, None), |o| (o.manager_ref.clone(), o.manager_id));
    new.manager_ref = old_ref.clone();
    new.manager_id = old_id;
    // A changed value is resolved again, and so is one still waiting.
    let own = raw.is_some() && (raw != old_ref || old_id.is_none());
    let awaited = old.is_none_or(|o| keys_changed(o, new));
    if raw.is_none() && old_ref.is_some() {
        // Cleared: no link, nothing to wait for; dropping a link needs no lock.
        tx.execute(&sql::clear_link(org_id, new.id)).await?;
        new.manager_ref = None;
        new.manager_id = None;
    }
    if !own && !awaited {
        return Ok(new.manager_id != old_id);
    }
    let waits_on: Vec<String> = raw
        .iter()
        .filter(|_| own)
        .map(|r| r.to_lowercase())
        .collect();
    let arrives_with = if awaited {
        arrives_with(new)
    } else {
        Vec::new()
    };
    let keys = lock_values(tx, org_id, &waits_on, &arrives_with).await?;
    // A new person's own link cannot close a cycle: no one reports to them before they
    // commit. A changed one's can, so it waits for the chart.
    let mut chart = false;
    if let Some(raw) = raw.filter(|_| own) {
        if old.is_some() {
            lock_chart(tx, org_id).await?;
            chart = true;
        }
        link_own(tx, env, org_id, new, &keys, raw).await?;
    }
    if awaited {
        // Linking reports to a new person without a manager cannot close a cycle either.
        let may_cycle = old.is_some() || new.manager_id.is_some();
        if may_cycle && !chart {
            if !any_waiting(tx, org_id, new, &keys).await? {
                return Ok(new.manager_id != old_id);
            }
            lock_chart(tx, org_id).await?;
        }
        link_waiting(tx, env, org_id, new, &keys).await?;
    }
    Ok(new.manager_id != old_id)
}

/// The person's own manager value, as their mapping gave it (`org_chart::manager_ref`).
pub(super) fn own_value(u: &user::Model) -> Option<String> {
    u.profile.as_object().and_then(org_chart::manager_ref)
}

fn employee_number(u: &user::Model) -> Option<String> {
    u.profile
        .get("employee_number")
        .and_then(Json::as_str)
        .map(str::to_owned)
}

/// Whether a key someone may be waiting on changed.
fn keys_changed(old: &user::Model, new: &user::Model) -> bool {
    let lower = |s: &Option<String>| s.as_deref().map(str::to_lowercase);
    old.external_id != new.external_id
        || lower(&old.email) != lower(&new.email)
        || old.user_name.to_lowercase() != new.user_name.to_lowercase()
        || employee_number(old) != employee_number(new)
}

/// Locks the values a person waits on (shared) and the key values they arrive with
/// (exclusive), lowercased, until commit, and reads the org's `manager_match`. A person
/// waiting on a value and a person arriving with it conflict, so whichever comes second
/// sees the first and neither misses the other; people waiting on the same manager (a
/// team imported at once) do not. All locks are taken in one pass in hash order, so two
/// sets cannot deadlock.
async fn lock_values(
    tx: &Tx<'_>,
    org_id: Uuid,
    waits_on: &[String],
    arrives_with: &[String],
) -> Result<Vec<MatchKey>, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            super::hot_sql::LOCK_VALUES,
            [
                org_id.into(),
                json!(waits_on).into(),
                json!(arrives_with).into(),
            ],
        ))
        .await?;
    let keys: Json = match row {
        Some(r) => r.try_get("", "keys")?,
        None => Json::Null,
    };
    Ok(match_keys(&keys))
}

/// An org's `manager_match` as a statement returns it (`to_jsonb(o.manager_match)`).
pub(super) fn match_keys(keys: &Json) -> Vec<MatchKey> {
    let names = keys.as_array().map(Vec::as_slice).unwrap_or_default();
    org_chart::from_names(names.iter().filter_map(Json::as_str))
}

/// Takes the org's chart lock (until commit), after any value locks: every change that
/// can close a cycle holds it, so each one's cycle check sees every link made before it.
async fn lock_chart(tx: &Tx<'_>, org_id: Uuid) -> Result<(), DbErr> {
    tx.execute(&sql::lock_chart(org_id)).await?;
    Ok(())
}

/// Links `u` to the person its raw value names, unless that closes a cycle; no match
/// leaves `u` waiting on `raw`. One statement.
async fn link_own(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    u: &mut user::Model,
    keys: &[MatchKey],
    raw: String,
) -> Result<(), DbErr> {
    let candidate = sql::candidate(org_id, keys, &raw);
    let row = tx
        .query_one(&sql::link_own(org_id, u.id, &raw, candidate))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("no resolution row".into()))?;
    let manager: Option<Uuid> = row.try_get("", "manager_id")?;
    if !row.try_get::<bool>("", "cycle")? {
        u.manager_id = manager;
        u.manager_ref = Some(raw);
        return Ok(());
    }
    let manager_name: String = row.try_get("", "manager_user_name")?;
    let reason = if manager == Some(u.id) {
        format!("{} cannot be their own manager", u.user_name)
    } else {
        format!(
            "{manager_name} already reports to {}, directly or through others",
            u.user_name
        )
    };
    tracing::info!(user_id = %u.id, ?manager, "manager link refused: it would close a cycle");
    let reason =
        format!("{reason}; the manager link stays as it was, the rest of the change was applied");
    refused(
        tx,
        env,
        org_id,
        (u.id, &u.user_name),
        Some(&raw),
        manager,
        reason,
    );
    Ok(())
}

/// The activity entry `manager.refused`: `who` (id, userName) stays without the link to
/// `manager_id`, the person their value `manager` names, for `reason`.
fn refused(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    who: (Uuid, &str),
    manager: Option<&str>,
    manager_id: Option<Uuid>,
    reason: String,
) {
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "manager.refused",
            resource_type: "User",
            resource_id: Some(who.0.to_string()),
            detail: json!({
                "userName": who.1,
                "manager": manager,
                "manager_id": manager_id,
                "reason": reason,
            }),
        },
    );
}

/// `m`'s values for the org's keys: (every value lowercased, the exact ones, the
/// case-insensitive ones lowercased).
fn key_values(m: &user::Model, keys: &[MatchKey]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut all, mut exact, mut folded) = (Vec::new(), Vec::new(), Vec::new());
    for k in keys {
        let value = match k {
            MatchKey::Id => Some(m.id.to_string()),
            MatchKey::ExternalId => m.external_id.clone(),
            MatchKey::Email => m.email.clone(),
            MatchKey::UserName => Some(m.user_name.clone()),
            MatchKey::EmployeeNumber => employee_number(m),
        };
        let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
            continue;
        };
        all.push(v.to_lowercase());
        if k.case_insensitive() {
            folded.push(v.to_lowercase());
        } else {
            exact.push(v);
        }
    }
    (all, exact, folded)
}

/// The values a new person arrives with (every key's, lowercased): what their create
/// locks, exclusively, before it looks for the people waiting on one of them.
pub(super) fn arrives_with(m: &user::Model) -> Vec<String> {
    key_values(m, &MatchKey::ALL).0
}

mod sql;
mod waiting;
#[cfg(test)]
use waiting::compared_values;
use waiting::{any_waiting, link_waiting};
pub(super) use waiting::{link_arrivals, reports_linked};

#[cfg(test)]
mod tests;
