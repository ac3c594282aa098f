//! The admin operations' reads (`admin::service`): provisioning, integrations, settings,
//! retention, activity, employee sign-in, the deprovisioning guard and the provisioning log.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Condition, Expr, ExprTrait, JoinType, Order, Query, SelectStatement},
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

async fn one<M: FromQueryResult>(
    db: &impl ConnectionTrait,
    q: &SelectStatement,
) -> Result<Option<M>, DbErr> {
    M::find_by_statement(db.get_database_backend().build(q))
        .one(db)
        .await
}

async fn all<M: FromQueryResult>(
    db: &impl ConnectionTrait,
    q: &SelectStatement,
) -> Result<Vec<M>, DbErr> {
    M::find_by_statement(db.get_database_backend().build(q))
        .all(db)
        .await
}

/// Whether provisioning is on, and the live SCIM token's hint and age.
#[derive(Debug, FromQueryResult)]
pub struct Provisioning {
    pub provisioning_enabled: bool,
    pub hint: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

pub async fn provisioning(
    db: &impl ConnectionTrait,
    org: Uuid,
) -> Result<Option<Provisioning>, DbErr> {
    let q = Query::select()
        .column(("o", "provisioning_enabled"))
        .columns([("t", "hint"), ("t", "created_at")])
        .from_as("orgs", "o")
        .join_as(
            JoinType::LeftJoin,
            "scim_tokens",
            "t",
            Condition::all()
                .add(Expr::col(("t", "org_id")).equals(("o", "id")))
                .add(Expr::col(("t", "revoked_at")).is_null()),
        )
        .and_where(Expr::col(("o", "id")).eq(org))
        .order_by(("t", "created_at"), Order::Desc)
        .limit(1)
        .to_owned();
    one(db, &q).await
}

/// An integration as listed: never its credential, only a hint.
#[derive(Clone, Debug, Serialize, FromQueryResult)]
pub struct Integration {
    pub id: Uuid,
    pub name: String,
    /// The credential's last four characters as stored; `…` and them once
    /// `admin::service::integrations` has listed it.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The org's integrations, newest first, revoked ones included.
pub async fn integrations(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<Integration>, DbErr> {
    let q = Query::select()
        .columns(["id", "name", "hint", "created_at", "revoked_at"])
        .from("integration_credentials")
        .and_where(Expr::col("org_id").eq(org))
        .order_by("created_at", Order::Desc)
        .order_by("id", Order::Desc)
        .to_owned();
    all(db, &q).await
}

/// The org's settings, with the guard's defaults where it never saved them.
#[derive(Debug, FromQueryResult)]
pub struct Settings {
    pub send_invites: bool,
    pub lock_synced_fields: bool,
    pub erase_deactivated_after_days: Option<i32>,
    /// A JSON array of key names.
    pub manager_match: Value,
    pub enabled: bool,
    pub threshold_percent: i64,
    pub min_count: i64,
    pub window_minutes: i64,
}

pub async fn settings(db: &impl ConnectionTrait, org: Uuid) -> Result<Option<Settings>, DbErr> {
    let q = Query::select()
        .columns([
            ("o", "send_invites"),
            ("o", "lock_synced_fields"),
            ("o", "erase_deactivated_after_days"),
        ])
        .expr_as(Expr::cust("to_jsonb(o.manager_match)"), "manager_match")
        .expr_as(Expr::cust("COALESCE(g.enabled, true)"), "enabled")
        .expr_as(
            Expr::cust("COALESCE(g.threshold_percent, 10)::bigint"),
            "threshold_percent",
        )
        .expr_as(Expr::cust("COALESCE(g.min_count, 10)::bigint"), "min_count")
        .expr_as(
            Expr::cust("COALESCE(g.window_minutes, 60)::bigint"),
            "window_minutes",
        )
        .from_as("orgs", "o")
        .join_as(
            JoinType::LeftJoin,
            "deprovision_guards",
            "g",
            Expr::col(("g", "org_id")).equals(("o", "id")),
        )
        .and_where(Expr::col(("o", "id")).eq(org))
        .to_owned();
    one(db, &q).await
}

/// The operator's retention override for the org's activity, in days (`None` inside:
/// the default; outer `None`: no such org).
pub async fn retention_days(
    db: &impl ConnectionTrait,
    org: Uuid,
) -> Result<Option<Option<i32>>, DbErr> {
    let q = Query::select()
        .column("activity_retention_days")
        .from("orgs")
        .and_where(Expr::col("id").eq(org))
        .to_owned();
    let row = db.query_one(&q).await?;
    row.map(|r| r.try_get("", "activity_retention_days"))
        .transpose()
}

/// One entry of the provisioning log.
#[derive(Clone, Debug, Serialize, FromQueryResult)]
pub struct Activity {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `scim` (Okta), `admin`, `operator`, `invitee`, `employee`, `integration`, `retention`
    /// (the org's policy for deactivated people).
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: Value,
    /// The request that caused it (`X-Request-Id`).
    pub correlation_id: String,
}

/// The org's audit entries before `before` (an id), newest first.
pub async fn activity(
    db: &impl ConnectionTrait,
    org: Uuid,
    before: i64,
    limit: u64,
) -> Result<Vec<Activity>, DbErr> {
    let q = Query::select()
        .column("id")
        .expr_as(Expr::col("created_at"), "at")
        .columns([
            "actor",
            "action",
            "resource_type",
            "resource_id",
            "detail",
            "correlation_id",
        ])
        .from("audit_log")
        .and_where(Expr::col("org_id").eq(org))
        .and_where(Expr::col("id").lt(before))
        .order_by("id", Order::Desc)
        .limit(limit)
        .to_owned();
    all(db, &q).await
}

/// The org's employee sign-in as stored (whether a secret is, never the secret).
#[derive(Debug, FromQueryResult)]
pub struct Sso {
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub has_secret: bool,
    pub oidc_claim: String,
    pub oidc_updated_at: Option<DateTime<Utc>>,
}

pub async fn sso(db: &impl ConnectionTrait, org: Uuid) -> Result<Option<Sso>, DbErr> {
    let q = Query::select()
        .columns(["oidc_issuer", "oidc_client_id"])
        .expr_as(Expr::col("oidc_client_secret").is_not_null(), "has_secret")
        .columns(["oidc_claim", "oidc_updated_at"])
        .from("orgs")
        .and_where(Expr::col("id").eq(org))
        .to_owned();
    one(db, &q).await
}

/// Since when the guard is tripped, and until when it refuses after a rejection.
#[derive(Debug, FromQueryResult)]
pub struct GuardState {
    pub tripped_at: Option<DateTime<Utc>>,
    pub refused_until: Option<DateTime<Utc>>,
}

/// The guard's state (`None`: it never tripped).
pub async fn guard_state(
    db: &impl ConnectionTrait,
    org: Uuid,
) -> Result<Option<GuardState>, DbErr> {
    let q = Query::select()
        .column("tripped_at")
        .expr_as(
            Expr::cust("CASE WHEN rejected_until > now() THEN rejected_until END"),
            "refused_until",
        )
        .from("deprovision_guards")
        .and_where(Expr::col("org_id").eq(org))
        .to_owned();
    one(db, &q).await
}

/// One person whose deactivation or deletion the guard holds (or refused after a rejection,
/// or was approved and awaits the identity provider's retry).
#[derive(Clone, Debug, Serialize, FromQueryResult)]
pub struct HeldChange {
    pub user_id: Uuid,
    pub user_name: Option<String>,
    /// `deactivate` or `delete`.
    pub action: String,
    pub held_at: DateTime<Utc>,
    pub last_attempt_at: DateTime<Utc>,
    pub attempts: i32,
    /// `held`, `approved` (passes on the next retry) or `rejected`.
    pub state: String,
}

/// What the guard holds, newest first (at most 500).
pub async fn held_changes(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<HeldChange>, DbErr> {
    let q = Query::select()
        .column(("h", "user_id"))
        .column(("u", "user_name"))
        .columns([
            ("h", "action"),
            ("h", "held_at"),
            ("h", "last_attempt_at"),
            ("h", "attempts"),
        ])
        .expr_as(Expr::cust("COALESCE(h.decision, 'held')"), "state")
        .from_as("deprovision_holds", "h")
        .join_as(
            JoinType::LeftJoin,
            "users",
            "u",
            Condition::all()
                .add(Expr::col(("u", "org_id")).equals(("h", "org_id")))
                .add(Expr::col(("u", "id")).equals(("h", "user_id"))),
        )
        .and_where(Expr::col(("h", "org_id")).eq(org))
        .order_by(("h", "held_at"), Order::Desc)
        .limit(500)
        .to_owned();
    all(db, &q).await
}

/// One provisioning-log entry as the admin API shows it.
#[derive(Clone, Debug, Serialize, FromQueryResult)]
pub struct LogEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub status: i16,
    pub detail: Option<String>,
    pub duration_ms: i32,
    pub correlation_id: String,
}

/// Which provisioning-log entries: `failed` (status 400 and up) or succeeded only, one
/// person's, before `cursor` (an entry id); newest first, at most `limit`.
pub async fn provisioning_log(
    db: &impl ConnectionTrait,
    org: Uuid,
    failed: Option<bool>,
    person: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: u64,
) -> Result<Vec<LogEntry>, DbErr> {
    let mut q = Query::select()
        .columns([
            "id",
            "at",
            "method",
            "path",
            "resource_type",
            "resource_id",
            "status",
            "detail",
            "duration_ms",
            "correlation_id",
        ])
        .from("provisioning_log")
        .and_where(Expr::col("org_id").eq(org))
        .to_owned();
    if let Some(cursor) = cursor {
        q.and_where(Expr::col("id").lt(cursor));
    }
    if let Some(person) = person {
        q.and_where(Expr::col("resource_id").eq(person));
    }
    if let Some(failed) = failed {
        q.and_where(if failed {
            Expr::col("status").gte(400)
        } else {
            Expr::col("status").lt(400)
        });
    }
    q.order_by("id", Order::Desc).limit(limit);
    all(db, &q).await
}
