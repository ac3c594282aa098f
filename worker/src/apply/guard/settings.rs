//! The guard's settings: as the admin API shows them, and changed by an admin.

use super::super::Tx;
use super::lock;
use common::{db::stmt, messages::GuardSettings};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::json;
use uuid::Uuid;

/// The guard's settings as the admin API shows them.
pub(in crate::apply) async fn settings_json(
    tx: &Tx<'_>,
    org_id: Uuid,
) -> Result<serde_json::Value, DbErr> {
    let g = lock(tx, org_id).await?;
    Ok(json!({
        "enabled": g.enabled,
        "threshold_percent": g.threshold_percent,
        "min_count": g.min_count,
        "window_minutes": g.window_minutes,
    }))
}

/// Changes the guard's settings (already validated).
pub(in crate::apply) async fn update_settings(
    tx: &Tx<'_>,
    org_id: Uuid,
    s: &GuardSettings,
) -> Result<(), DbErr> {
    lock(tx, org_id).await?;
    if s.enabled == Some(false) {
        // Off means off: nothing stays held or refused, and the count starts afresh.
        tx.execute_raw(stmt(
            "WITH g AS (UPDATE deprovision_guards SET tripped_at = NULL, rejected_until = NULL \
                        WHERE org_id = $1), \
                  d AS (DELETE FROM deprovisions WHERE org_id = $1) \
             DELETE FROM deprovision_holds WHERE org_id = $1",
            [org_id.into()],
        ))
        .await?;
    }
    let int = |v: Option<u32>| v.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
    tx.execute_raw(stmt(
        "UPDATE deprovision_guards SET enabled = COALESCE($2, enabled), \
           threshold_percent = COALESCE($3, threshold_percent), \
           min_count = COALESCE($4, min_count), window_minutes = COALESCE($5, window_minutes) \
         WHERE org_id = $1",
        [
            org_id.into(),
            s.enabled.into(),
            int(s.threshold_percent).into(),
            int(s.min_count).into(),
            int(s.window_minutes).into(),
        ],
    ))
    .await?;
    Ok(())
}
