//! The guard's settings: as the admin API shows them, and changed by an admin.

use super::super::Tx;
use super::{lock, sql};
use common::messages::GuardSettings;
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
        tx.execute(&sql::switch_off(org_id)).await?;
    }
    let int = |v: Option<u32>| v.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
    tx.execute(&sql::update_settings(
        org_id,
        s.enabled,
        int(s.threshold_percent),
        int(s.min_count),
        int(s.window_minutes),
    ))
    .await?;
    Ok(())
}
