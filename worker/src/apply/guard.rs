//! The mass-deprovisioning guard (docs/admin.md): a deactivation or deletion of an active
//! person passes only while the org's deactivations and deletions within its window stay
//! within `max(min_count, threshold_percent % of its people)`. The one that would pass the
//! limit trips the guard; from then on they are held — answered `503` with nothing applied
//! (Okta retries) — until an admin approves (the held ones pass on their next retry, and
//! the count starts again) or rejects (every deactivation and deletion is refused until
//! the window has passed). Creates, updates and reactivations never wait.
//!
//! Decided in the command's transaction under a lock of the org's `deprovision_guards`
//! row, so concurrent workers count one at a time; `decide` is the pure decision.

use super::Tx;
use super::{ApplyContext, Audit, audit};
use chrono::{DateTime, Duration, Utc};
use common::{
    messages::{DecideGuard, Envelope, GuardDecision, Reply},
    metrics::{GUARD_HELD, GUARD_TRIPS},
};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde_json::json;
use uuid::Uuid;

/// An org's guard as stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Guard {
    pub enabled: bool,
    pub threshold_percent: i64,
    pub min_count: i64,
    pub window_minutes: i64,
    pub tripped_at: Option<DateTime<Utc>>,
    pub rejected_until: Option<DateTime<Utc>>,
}

impl Guard {
    fn from_row(r: &QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            enabled: r.try_get("", "enabled")?,
            threshold_percent: i64::from(r.try_get::<i32>("", "threshold_percent")?),
            min_count: i64::from(r.try_get::<i32>("", "min_count")?),
            window_minutes: i64::from(r.try_get::<i32>("", "window_minutes")?),
            tripped_at: r.try_get("", "tripped_at")?,
            rejected_until: r.try_get("", "rejected_until")?,
        })
    }

    /// The most deactivations and deletions the window allows, for an org that had
    /// `people` active people at its start.
    pub fn limit(&self, people: i64) -> i64 {
        let share = (self.threshold_percent * people + 99) / 100;
        share.max(self.min_count)
    }
}

/// What the guard knows about one person's pending deactivation or deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    None,
    Held,
    Approved,
    Rejected,
}

/// The guard's verdict on one deactivation or deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Apply it, and count it (`counted`) toward the window.
    Pass { counted: bool },
    /// Hold it; `trips` when this one trips the guard.
    Hold {
        trips: bool,
        recent: i64,
        limit: i64,
    },
    /// Refuse it: an admin rejected, until then.
    Refuse { until: DateTime<Utc> },
}

/// The decision, given the guard, this person's hold, the deactivations and deletions
/// counted within the window, the org's active people now, and the time.
pub(crate) fn decide(
    g: &Guard,
    hold: Hold,
    recent: i64,
    active: i64,
    now: DateTime<Utc>,
) -> Verdict {
    if !g.enabled {
        return Verdict::Pass { counted: false };
    }
    if let Some(until) = g.rejected_until.filter(|u| *u > now) {
        return Verdict::Refuse { until };
    }
    if hold == Hold::Approved {
        return Verdict::Pass { counted: false };
    }
    let limit = g.limit(active + recent);
    if g.tripped_at.is_some() {
        return Verdict::Hold {
            trips: false,
            recent,
            limit,
        };
    }
    if recent + 1 > limit {
        return Verdict::Hold {
            trips: true,
            recent,
            limit,
        };
    }
    Verdict::Pass { counted: true }
}

/// Locks the org's guard row (creating it with the defaults if missing).
async fn lock(tx: &Tx<'_>, org_id: Uuid) -> Result<Guard, DbErr> {
    if let Some(r) = tx.query_one(&sql::locked_guard(org_id)).await? {
        return Guard::from_row(&r);
    }
    tx.execute(&sql::create_guard(org_id)).await?;
    let r = tx
        .query_one(&sql::locked_guard(org_id))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("organisation not found".into()))?;
    Guard::from_row(&r)
}

/// Checks the deactivation (`action` = `deactivate`) or deletion (`delete`) of the active
/// person `user_id`. `None`: go ahead (it is counted); `Some(reply)`: answer that, and
/// apply nothing of the change.
pub(super) async fn check(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    user_id: Uuid,
    action: &str,
) -> Result<Option<Reply>, DbErr> {
    let mut g = lock(tx, org_id).await?;
    if !g.enabled {
        return Ok(None);
    }
    let window = i32::try_from(g.window_minutes).unwrap_or(60);
    let row = tx
        .query_one(&sql::counts(org_id, user_id, window))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("no row".into()))?;
    let now: DateTime<Utc> = row.try_get("", "now")?;
    // A rejection that has run out: the guard is armed again, and what it refused may be
    // tried afresh.
    if g.rejected_until.is_some_and(|u| u <= now) {
        tx.execute(&sql::rearm(org_id)).await?;
        g.rejected_until = None;
    }
    let decision: Option<String> = row.try_get("", "decision")?;
    let hold = match (row.try_get::<i64>("", "held")?, decision.as_deref()) {
        (0, _) => Hold::None,
        (_, Some("approved")) => Hold::Approved,
        (_, Some("rejected")) if g.rejected_until.is_some() => Hold::Rejected,
        _ => Hold::Held,
    };
    let recent: i64 = row.try_get("", "recent")?;
    let active: i64 = row.try_get("", "active")?;
    match decide(&g, hold, recent, active, now) {
        Verdict::Pass { counted } => {
            // Rows that fell out of the window go as new ones come in.
            tx.execute(&sql::pass(org_id, user_id, counted, window))
                .await?;
            Ok(None)
        }
        Verdict::Hold {
            trips,
            recent,
            limit,
        } => {
            record_hold(tx, org_id, user_id, action, None).await?;
            if trips {
                trip(tx, env, org_id, &g, recent, limit).await?;
                metrics::counter!(GUARD_TRIPS, "prefix" => ctx.prefix.clone()).increment(1);
            }
            metrics::counter!(GUARD_HELD, "action" => action.to_owned(), "prefix" => ctx.prefix.clone())
                .increment(1);
            Ok(Some(Reply::error(503, None, held_detail(action, &g))))
        }
        Verdict::Refuse { until } => {
            record_hold(tx, org_id, user_id, action, Some("rejected")).await?;
            metrics::counter!(GUARD_HELD, "action" => action.to_owned(), "prefix" => ctx.prefix.clone())
                .increment(1);
            Ok(Some(Reply::error(
                503,
                None,
                rejected_detail(action, until),
            )))
        }
    }
}

async fn record_hold(
    tx: &Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    action: &str,
    decision: Option<&str>,
) -> Result<(), DbErr> {
    tx.execute(&sql::record_hold(org_id, user_id, action, decision))
        .await?;
    Ok(())
}

async fn trip(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    g: &Guard,
    recent: i64,
    limit: i64,
) -> Result<(), DbErr> {
    tx.execute(&sql::trip(org_id)).await?;
    tracing::warn!(%org_id, recent, limit, "mass-deprovisioning guard tripped; deactivations and deletions are held");
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "deprovision_guard.tripped",
            resource_type: "DeprovisionGuard",
            resource_id: None,
            detail: json!({
                "deprovisioned": recent,
                "limit": limit,
                "window_minutes": g.window_minutes,
            }),
        },
    );
    Ok(())
}

fn noun(action: &str) -> &'static str {
    if action == "delete" {
        "deletion"
    } else {
        "deactivation"
    }
}

/// What Okta shows in its Tasks for a held change.
pub(crate) fn held_detail(action: &str, g: &Guard) -> String {
    format!(
        "this {} is held for an admin's approval: more people were deactivated or deleted in \
         this organisation within {} minutes than its mass-deprovisioning guard allows. Nothing \
         was changed; an admin approves or rejects held changes on Roster's admin page, and an \
         approved one succeeds on the next retry",
        noun(action),
        g.window_minutes
    )
}

fn rejected_detail(action: &str, until: DateTime<Utc>) -> String {
    format!(
        "this {} was refused: an admin rejected the mass deprovisioning that Roster's guard held, \
         and deactivations and deletions are refused until {}. Nothing was changed",
        noun(action),
        until.format("%Y-%m-%d %H:%M UTC")
    )
}

/// `deprovision_guard.decide`: the admin's approval or rejection of what the guard holds.
/// `409` when nothing is held.
pub(super) async fn decide_command(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &DecideGuard,
) -> Result<Reply, DbErr> {
    let g = lock(tx, org_id).await?;
    if g.tripped_at.is_none() {
        return Ok(Reply::error(
            409,
            None,
            "the mass-deprovisioning guard holds nothing to approve or reject",
        ));
    }
    let (statement, action) = match cmd.decision {
        GuardDecision::Approve => (sql::approve(org_id), "deprovision_guard.approved"),
        GuardDecision::Reject => (sql::reject(org_id), "deprovision_guard.rejected"),
    };
    let held = tx.query_all(&statement).await?.len();
    let until = (cmd.decision == GuardDecision::Reject)
        .then(|| {
            g.tripped_at
                .map(|t| t + Duration::minutes(g.window_minutes))
        })
        .flatten();
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action,
            resource_type: "DeprovisionGuard",
            resource_id: None,
            detail: json!({"held": held, "refused_until": until}),
        },
    );
    Ok(Reply::ok(
        200,
        json!({"held": held, "refused_until": until}),
    ))
}

/// A reactivated person no longer counts toward the window: the guard counts people
/// gone, not deactivate/reactivate churn.
pub(super) async fn reactivated(tx: &Tx<'_>, org_id: Uuid, user_id: Uuid) -> Result<(), DbErr> {
    tx.execute(&sql::uncount(org_id, user_id)).await?;
    Ok(())
}

mod settings;
mod sql;
pub(super) use settings::{settings_json, update_settings};

#[cfg(test)]
mod tests;
