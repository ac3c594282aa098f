//! The directory's reads: people with their manager, a person's reports, the org chart's
//! people, and the people whose manager value names no one yet; and a person as the admin
//! API, the page and the signed-in directory show them.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Expr, ExprTrait, JoinType, Order, Query, SelectStatement},
};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// A person's name in SQL, for the users row aliased `t`: first and last name when
/// known, else the display name, else the user name.
pub fn name_sql(t: &str) -> String {
    format!(
        "COALESCE(NULLIF(btrim(concat_ws(' ', {t}.profile->>'first_name', {t}.profile->>'last_name')), ''), \
         NULLIF(btrim({t}.display_name), ''), {t}.user_name)"
    )
}

/// A person as the directory reads them, with their manager (`m`).
#[derive(Debug, FromQueryResult)]
pub struct PersonRow {
    pub id: Uuid,
    pub user_name: String,
    pub active: bool,
    pub profile: Value,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub manager_ref: Option<String>,
    pub manager_id: Option<Uuid>,
    pub manager_active: Option<bool>,
    pub manager_name: Option<String>,
}

/// `users u` joined (`join`) to their manager `users m`, selecting `PersonRow`'s columns.
fn people_query(join: JoinType) -> SelectStatement {
    Query::select()
        .columns([
            ("u", "id"),
            ("u", "user_name"),
            ("u", "active"),
            ("u", "profile"),
            ("u", "version"),
            ("u", "updated_at"),
            ("u", "manager_ref"),
        ])
        .expr_as(Expr::col(("m", "id")), "manager_id")
        .expr_as(Expr::col(("m", "active")), "manager_active")
        .expr_as(Expr::cust(name_sql("m")), "manager_name")
        .from_as("users", "u")
        .join_as(
            join,
            "users",
            "m",
            Expr::col(("m", "id")).equals(("u", "manager_id")),
        )
        .to_owned()
}

async fn people_of(
    db: &impl ConnectionTrait,
    q: &SelectStatement,
) -> Result<Vec<PersonRow>, DbErr> {
    PersonRow::find_by_statement(db.get_database_backend().build(q))
        .all(db)
        .await
}

/// Active people of the org (all with `include_inactive`), by last, first and user name.
pub async fn people(
    db: &impl ConnectionTrait,
    org: Uuid,
    include_inactive: bool,
    limit: u64,
    offset: u64,
) -> Result<Vec<PersonRow>, DbErr> {
    let mut q = people_query(JoinType::LeftJoin);
    q.and_where(Expr::col(("u", "org_id")).eq(org));
    if !include_inactive {
        q.and_where(Expr::col(("u", "active")));
    }
    q.order_by_expr(
        Expr::cust("lower(COALESCE(u.profile->>'last_name', ''))"),
        Order::Asc,
    )
    .order_by_expr(
        Expr::cust("lower(COALESCE(u.profile->>'first_name', ''))"),
        Order::Asc,
    )
    .order_by_expr(Expr::cust("lower(u.user_name)"), Order::Asc)
    .order_by(("u", "id"), Order::Asc)
    .limit(limit)
    // A bound above `i64::MAX` is not a PostgreSQL bigint: no offset, as before.
    .offset(if i64::try_from(offset).is_ok() {
        offset
    } else {
        0
    });
    people_of(db, &q).await
}

/// One person of the org (inactive ones included).
pub async fn person(
    db: &impl ConnectionTrait,
    org: Uuid,
    id: Uuid,
) -> Result<Option<PersonRow>, DbErr> {
    let mut q = people_query(JoinType::LeftJoin);
    q.and_where(Expr::col(("u", "org_id")).eq(org))
        .and_where(Expr::col(("u", "id")).eq(id));
    Ok(people_of(db, &q).await?.into_iter().next())
}

/// A person's direct reports (inactive ones too), by name.
pub async fn reports(
    db: &impl ConnectionTrait,
    org: Uuid,
    id: Uuid,
) -> Result<Vec<PersonRow>, DbErr> {
    let mut q = people_query(JoinType::InnerJoin);
    q.and_where(Expr::col(("u", "manager_id")).eq(id))
        .and_where(Expr::col(("u", "org_id")).eq(org))
        .order_by_expr(Expr::cust(format!("lower({})", name_sql("u"))), Order::Asc)
        .order_by(("u", "id"), Order::Asc);
    people_of(db, &q).await
}

/// One person as the org chart reads them.
#[derive(Debug, FromQueryResult)]
pub struct ChartRow {
    pub id: Uuid,
    pub manager_id: Option<Uuid>,
    pub name: String,
    pub job_title: Option<String>,
    pub active: bool,
}

/// Every person of the org, for the chart: one plain index scan, no recursion.
pub async fn chart(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<ChartRow>, DbErr> {
    let q = Query::select()
        .columns([("u", "id"), ("u", "manager_id")])
        .expr_as(Expr::cust(name_sql("u")), "name")
        .expr_as(Expr::cust("u.profile->>'job_title'"), "job_title")
        .column(("u", "active"))
        .from_as("users", "u")
        .and_where(Expr::col(("u", "org_id")).eq(org))
        .to_owned();
    ChartRow::find_by_statement(db.get_database_backend().build(&q))
        .all(db)
        .await
}

/// Active people whose manager value names no one yet: (id, name, raw value), by value.
pub async fn waiting(
    db: &impl ConnectionTrait,
    org: Uuid,
    limit: u64,
) -> Result<Vec<(Uuid, String, String)>, DbErr> {
    let q = Query::select()
        .column(("u", "id"))
        .expr_as(Expr::cust(name_sql("u")), "name")
        .column(("u", "manager_ref"))
        .from_as("users", "u")
        .and_where(Expr::col(("u", "org_id")).eq(org))
        .and_where(Expr::col(("u", "manager_id")).is_null())
        .and_where(Expr::col(("u", "manager_ref")).is_not_null())
        .and_where(Expr::col(("u", "active")))
        .order_by_expr(Expr::cust("lower(u.manager_ref)"), Order::Asc)
        .order_by(("u", "id"), Order::Asc)
        .limit(Ord::min(limit, i64::MAX.unsigned_abs()))
        .to_owned();
    let rows = db.query_all(&q).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "id")?,
                r.try_get("", "name")?,
                r.try_get("", "manager_ref")?,
            ))
        })
        .collect()
}

/// A person in the directory.
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub id: Uuid,
    pub user_name: String,
    pub active: bool,
    /// Directory fields (`first_name`, `job_title`, `custom.…`).
    pub fields: Map<String, Value>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Who they report to, or `null`; `active: false` is a vacancy.
    pub manager: Option<Manager>,
    /// The raw manager value while it names no one (yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_ref: Option<String>,
}

/// A person's manager as the directory shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Manager {
    pub id: Uuid,
    pub name: String,
    /// `false`: the manager was deactivated and the position is vacant.
    pub active: bool,
}

impl From<PersonRow> for Person {
    fn from(r: PersonRow) -> Self {
        let manager = match (r.manager_id, r.manager_name, r.manager_active) {
            (Some(id), Some(name), Some(active)) => Some(Manager { id, name, active }),
            _ => None,
        };
        Self {
            id: r.id,
            user_name: r.user_name,
            active: r.active,
            fields: r.profile.as_object().cloned().unwrap_or_default(),
            version: r.version,
            updated_at: r.updated_at,
            manager_ref: r.manager_ref.filter(|_| manager.is_none()),
            manager,
        }
    }
}
