//! The mass-deprovisioning guard, and the provisioning log.

use super::{
    command,
    settings::{GuardSettings, settings},
};
use crate::store::admin::{HeldChange, LogEntry};
use crate::{error::ApiError, request_id::RequestId, state::AppState, store};
use chrono::{DateTime, Utc};
use common::messages::{Command, DecideGuard, GuardDecision};
use serde::Serialize;
use uuid::Uuid;

/// The guard's state: its settings, whether it is tripped, and what it holds.
#[derive(Clone, Debug, Serialize)]
pub struct GuardStatus {
    #[serde(flatten)]
    pub settings: GuardSettings,
    /// `armed`, `tripped` (changes are held) or `rejected` (refused until `refused_until`).
    pub state: String,
    pub tripped_at: Option<DateTime<Utc>>,
    pub refused_until: Option<DateTime<Utc>>,
    /// How many people's deactivation or deletion is held now.
    pub held: i64,
    pub changes: Vec<HeldChange>,
}

pub async fn guard(state: &AppState, org: Uuid) -> Result<GuardStatus, ApiError> {
    let settings = settings(state, org).await?.deprovision_guard;
    let (tripped_at, refused_until) = store::admin::guard_state(&state.db, org)
        .await?
        .map_or((None, None), |g| (g.tripped_at, g.refused_until));
    let changes = store::admin::held_changes(&state.db, org).await?;
    let held = changes.iter().filter(|c| c.state == "held").count() as i64;
    let state_name = if tripped_at.is_some() {
        "tripped"
    } else if refused_until.is_some() {
        "rejected"
    } else {
        "armed"
    };
    Ok(GuardStatus {
        settings,
        state: state_name.to_owned(),
        tripped_at,
        refused_until,
        held,
        changes,
    })
}

/// Approves or rejects what the guard holds; `409` when it holds nothing.
pub async fn decide_guard(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    decision: GuardDecision,
) -> Result<GuardStatus, ApiError> {
    command(
        state,
        org,
        request,
        Command::DecideGuard(DecideGuard { decision }),
    )
    .await?;
    guard(state, org).await
}

/// What to list: `failed` (status 400 and up) or `succeeded` only, one person's, before
/// the cursor (an entry id).
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub failed: Option<bool>,
    pub person: Option<Uuid>,
    pub cursor: Option<Uuid>,
    pub limit: u64,
}

/// Newest first; the page and the cursor of the next one (`None` at the end).
pub async fn provisioning_log(
    state: &AppState,
    org: Uuid,
    q: &LogQuery,
) -> Result<(Vec<LogEntry>, Option<Uuid>), ApiError> {
    let limit = q.limit.clamp(1, 200);
    let mut entries =
        store::admin::provisioning_log(&state.db, org, q.failed, q.person, q.cursor, limit + 1)
            .await?;
    let more = entries.len() as u64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(50));
    let next = more.then(|| entries.last().map(|e| e.id)).flatten();
    Ok((entries, next))
}
