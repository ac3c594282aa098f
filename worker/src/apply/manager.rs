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
    messages::{Envelope, UserEvent, events},
    org_chart::{self, MatchKey},
};
use sea_orm::{ConnectionTrait, DbErr, Value};
use serde_json::{Map, Value as Json, json};
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
    let raw = org_chart::manager_ref(&profile(new));
    let (old_ref, old_id) = old.map_or((None, None), |o| (o.manager_ref.clone(), o.manager_id));
    new.manager_ref = old_ref.clone();
    new.manager_id = old_id;
    // A changed value is resolved again, and so is one still waiting.
    let own = raw.is_some() && (raw != old_ref || old_id.is_none());
    let awaited = old.is_none_or(|o| keys_changed(o, new));
    if raw.is_none() && old_ref.is_some() {
        // Cleared: no link, nothing to wait for; dropping a link needs no lock.
        tx.execute_raw(stmt(
            "UPDATE users SET manager_id = NULL, manager_ref = NULL WHERE org_id = $1 AND id = $2",
            [org_id.into(), new.id.into()],
        ))
        .await?;
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
        key_values(new, &MatchKey::ALL).0
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

fn profile(u: &user::Model) -> Map<String, Json> {
    u.profile.as_object().cloned().unwrap_or_default()
}

fn employee_number(u: &user::Model) -> Option<String> {
    profile(u)
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
            "SELECT to_jsonb(o.manager_match) AS keys, \
                 (SELECT count(CASE WHEN s.x THEN pg_advisory_xact_lock(s.h) ELSE pg_advisory_xact_lock_shared(s.h) END) \
                  FROM (SELECT a.h, bool_or(a.x) AS x FROM ( \
                      SELECT hashtextextended($1::text || ':' || t.v, 7262810515) AS h, false AS x \
                      FROM jsonb_array_elements_text($2::jsonb) AS t (v) \
                      UNION ALL SELECT hashtextextended($1::text || ':' || t.v, 7262810515), true \
                      FROM jsonb_array_elements_text($3::jsonb) AS t (v)) a \
                  GROUP BY a.h ORDER BY a.h) s) AS locked \
             FROM orgs o WHERE o.id = $1",
            [org_id.into(), json!(waits_on).into(), json!(arrives_with).into()],
        ))
        .await?;
    let keys: Json = match row {
        Some(r) => r.try_get("", "keys")?,
        None => Json::Null,
    };
    let names = keys.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(org_chart::from_names(names.iter().filter_map(Json::as_str)))
}

/// Takes the org's chart lock (until commit), after any value locks: every change that
/// can close a cycle holds it, so each one's cycle check sees every link made before it.
async fn lock_chart(tx: &Tx<'_>, org_id: Uuid) -> Result<(), DbErr> {
    tx.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('roster.org_chart:' || $1::text, 0))",
        [org_id.into()],
    ))
    .await?;
    Ok(())
}

/// The SQL for "the first person matching `$3` by the keys in order" (`$1` the org; an
/// `id` key adds its UUID as the next parameter).
fn candidate_sql(keys: &[MatchKey], raw: &str, values: &mut Vec<Value>) -> String {
    let parts: Vec<String> = org_chart::applicable(keys, raw)
        .into_iter()
        .map(|k| {
            let cond = match k {
                MatchKey::Id => {
                    values.push(Uuid::parse_str(raw).unwrap_or_default().into());
                    format!("id = ${}", values.len())
                }
                MatchKey::ExternalId => "external_id = $3".to_owned(),
                MatchKey::Email => "lower(email) = lower($3)".to_owned(),
                MatchKey::UserName => "lower(user_name) = lower($3)".to_owned(),
                MatchKey::EmployeeNumber => "profile->>'employee_number' = $3".to_owned(),
            };
            format!("(SELECT id FROM users WHERE org_id = $1 AND {cond} ORDER BY id LIMIT 1)")
        })
        .collect();
    match parts.len() {
        0 => "NULL::uuid".to_owned(),
        1 => parts.join(""),
        _ => format!("COALESCE({})", parts.join(", ")),
    }
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
    let mut values: Vec<Value> = vec![org_id.into(), u.id.into(), raw.clone().into()];
    let candidate = candidate_sql(keys, &raw, &mut values);
    let row = tx
        .query_one_raw(stmt(
            &format!(
                "WITH RECURSIVE cand AS (SELECT {candidate} AS id), \
                 up (id, manager_id) AS ( \
                     SELECT u.id, u.manager_id FROM users u JOIN cand ON u.id = cand.id \
                     UNION SELECT u.id, u.manager_id FROM users u JOIN up ON u.id = up.manager_id), \
                 decision AS (SELECT cand.id, EXISTS (SELECT 1 FROM up WHERE up.id = $2) AS cycle FROM cand), \
                 linked AS (UPDATE users SET manager_id = d.id, manager_ref = $3 FROM decision d \
                     WHERE users.org_id = $1 AND users.id = $2 AND NOT d.cycle RETURNING users.id) \
                 SELECT d.id AS manager_id, d.cycle, m.user_name AS manager_user_name \
                 FROM decision d LEFT JOIN users m ON m.id = d.id"
            ),
            values,
        ))
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
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "manager.refused",
            resource_type: "User",
            resource_id: Some(u.id.to_string()),
            detail: json!({
                "userName": u.user_name,
                "manager": raw,
                "manager_id": manager,
                "reason": format!("{reason}; the manager link stays as it was, the rest of the change was applied"),
            }),
        },
    );
    Ok(())
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

/// People of org `$1` other than `$2` waiting on a value among `$3` (lowercased), equal
/// to one of `$4` (keys compared exactly) or, lowercased, to one of `$5` (the others).
/// The first test is the `users_waiting_manager` index.
const WAITING: &str = "r.org_id = $1 AND r.id <> $2 AND r.manager_id IS NULL AND r.manager_ref IS NOT NULL \
     AND lower(r.manager_ref) = ANY (ARRAY(SELECT jsonb_array_elements_text($3::jsonb))) \
     AND (r.manager_ref = ANY (ARRAY(SELECT jsonb_array_elements_text($4::jsonb))) \
          OR lower(r.manager_ref) = ANY (ARRAY(SELECT jsonb_array_elements_text($5::jsonb))))";

/// Whether anyone waits on one of `m`'s keys.
async fn any_waiting(
    tx: &Tx<'_>,
    org_id: Uuid,
    m: &user::Model,
    keys: &[MatchKey],
) -> Result<bool, DbErr> {
    let (all, exact, folded) = key_values(m, keys);
    if all.is_empty() {
        return Ok(false);
    }
    let row = tx
        .query_one_raw(stmt(
            &format!("SELECT EXISTS (SELECT 1 FROM users r WHERE {WAITING}) AS found"),
            [
                org_id.into(),
                m.id.into(),
                json!(all).into(),
                json!(exact).into(),
                json!(folded).into(),
            ],
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
async fn link_waiting(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    m: &user::Model,
    keys: &[MatchKey],
) -> Result<(), DbErr> {
    let (all, exact, folded) = key_values(m, keys);
    if all.is_empty() {
        return Ok(());
    }
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
            [
                org_id.into(),
                m.id.into(),
                json!(all).into(),
                json!(exact).into(),
                json!(folded).into(),
            ],
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
            audit(
                tx,
                env,
                Some(org_id),
                Audit {
                    action: "manager.refused",
                    resource_type: "User",
                    resource_id: Some(id.to_string()),
                    detail: json!({
                        "userName": user_name,
                        "manager": manager_ref,
                        "manager_id": m.id,
                        "reason": format!(
                            "{} already reports to {user_name}, directly or through others; \
                             {user_name} stays without a manager",
                            m.user_name
                        ),
                    }),
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn person(
        external_id: &str,
        email: &str,
        user_name: &str,
        employee: Option<&str>,
    ) -> user::Model {
        let now = chrono::Utc::now();
        user::Model {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            user_name: user_name.into(),
            external_id: Some(external_id.into()),
            active: true,
            display_name: None,
            given_name: None,
            family_name: None,
            email: Some(email.into()),
            resource: json!({}),
            profile: employee.map_or(json!({}), |e| json!({"employee_number": e})),
            version: 1,
            created_at: now,
            updated_at: now,
            manager_ref: None,
            manager_id: None,
        }
    }

    #[test]
    fn key_values_split_exact_from_case_insensitive_keys() {
        let m = person("00uAbC", "Boss@X.com", "boss@x.com", Some("E-7"));
        let (all, exact, folded) = key_values(
            &m,
            &[
                MatchKey::ExternalId,
                MatchKey::Email,
                MatchKey::EmployeeNumber,
            ],
        );
        assert_eq!(all, ["00uabc", "boss@x.com", "e-7"]);
        assert_eq!(exact, ["00uAbC", "E-7"]);
        assert_eq!(folded, ["boss@x.com"]);
        let (all, ..) = key_values(&m, &[MatchKey::Id]);
        assert_eq!(all, [m.id.to_string()]);
    }

    #[test]
    fn only_keys_someone_may_wait_on_count_as_changed() {
        let a = person("00u1", "a@x", "a@x", None);
        let mut b = a.clone();
        b.active = false;
        b.display_name = Some("A".into());
        b.email = Some("A@X".into());
        assert!(!keys_changed(&a, &b), "case and other fields do not count");
        b.email = Some("new@x".into());
        assert!(keys_changed(&a, &b));
        let mut c = a.clone();
        c.profile = json!({"employee_number": "9"});
        assert!(keys_changed(&a, &c));
    }

    #[test]
    fn candidates_follow_the_key_order() {
        let mut values = vec![
            Value::from(Uuid::nil()),
            Value::from(Uuid::nil()),
            Value::from("x"),
        ];
        let sql = candidate_sql(
            &[MatchKey::Email, MatchKey::Id, MatchKey::ExternalId],
            "boss@x",
            &mut values,
        );
        assert!(
            sql.starts_with("COALESCE((SELECT id FROM users WHERE org_id = $1 AND lower(email)"),
            "{sql}"
        );
        assert!(
            !sql.contains("id = $4"),
            "no id key for a value that is not a UUID: {sql}"
        );
        assert_eq!(values.len(), 3);
        let id = Uuid::now_v7().to_string();
        let sql = candidate_sql(&[MatchKey::Id], &id, &mut values);
        assert_eq!(
            sql,
            "(SELECT id FROM users WHERE org_id = $1 AND id = $4 ORDER BY id LIMIT 1)"
        );
        assert_eq!(
            candidate_sql(&[MatchKey::Id], "boss", &mut values),
            "NULL::uuid"
        );
    }
}
