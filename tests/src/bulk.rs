//! Large fixtures written straight into PostgreSQL in one statement each (users, group
//! memberships), for the tests and benchmarks that need a group of 100,000 members without
//! 100,000 SCIM requests. Only the columns the group paths read are filled.

use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

fn uuid_array(ids: &[Uuid]) -> Value {
    Value::Array(
        sea_orm::sea_query::ArrayType::Uuid,
        Some(Box::new(
            ids.iter().map(|i| Value::Uuid(Some(*i))).collect(),
        )),
    )
}

/// Inserts `n` users of `org_id` named `<prefix>-<i>`; returns their ids in order.
pub async fn insert_users(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    prefix: &str,
    n: usize,
) -> Result<Vec<Uuid>, DbErr> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    db.execute_raw(common::db::stmt(
        "INSERT INTO users (id, org_id, user_name, display_name, resource, created_at, updated_at) \
         SELECT u.id, $1, $2 || '-' || u.i, $2 || ' ' || u.i, \
                jsonb_build_object('userName', $2 || '-' || u.i), now(), now() \
         FROM UNNEST($3::uuid[]) WITH ORDINALITY AS u (id, i)",
        [org_id.into(), prefix.into(), uuid_array(&ids)],
    ))
    .await?;
    Ok(ids)
}

/// Makes `users` members of `group_id` (without an event: a fixture, not a change).
pub async fn insert_members(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    group_id: Uuid,
    users: &[Uuid],
) -> Result<(), DbErr> {
    db.execute_raw(common::db::stmt(
        "INSERT INTO group_members (group_id, user_id, org_id) \
         SELECT $1, u, $2 FROM UNNEST($3::uuid[]) AS u",
        [group_id.into(), org_id.into(), uuid_array(users)],
    ))
    .await?;
    db.execute_unprepared("ANALYZE group_members, users")
        .await?;
    Ok(())
}
