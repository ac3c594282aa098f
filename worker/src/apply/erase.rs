//! Deleting a person so that nothing personal stays (docs/data-lifecycle.md): the rows the
//! person owns (their user row, and by cascade their invite and group memberships) go in
//! the delete's own transaction (`users::delete`), with an `erasures` row naming them
//! (`needles_of` the row the delete locked, `record`); the background pass
//! (`crate::gc`) scrubs the rest — their published events, stored replies and activity
//! details — once their last events are out. `person.delete` is here too.

use super::{ApplyContext, Tx, users};
use common::{
    db::{
        entities::user,
        reads::users_with_their_org,
        sql::{ago, days},
    },
    messages::{DeletePerson, DeleteUser, Envelope, Reply},
};
use sea_orm::{
    ConnectionTrait, DbErr, Value,
    sea_query::{Expr, ExprTrait, InsertStatement, LockType, OnConflict, Query, SelectStatement},
};
use uuid::Uuid;

/// The shortest identifying string worth searching other rows for: shorter ones (an
/// initial, a two-letter name) would match other people's rows.
pub const MIN_NEEDLE: usize = 4;

/// `person.delete`: the directory API's delete, or the org's policy for deactivated people
/// (only if the person is still deactivated and past the org's window: a reactivation
/// since the pass looked wins).
pub(super) async fn delete_person(
    tx: &Tx<'_>,
    ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &DeletePerson,
) -> Result<Reply, DbErr> {
    if cmd.by_policy {
        let due = tx.query_one(&lock_if_due(org_id, cmd.user_id)).await?;
        if due.is_none() {
            return Ok(Reply::error(
                409,
                None,
                "the person is no longer due for erasure (reactivated, or the policy changed)",
            ));
        }
    }
    let delete = DeleteUser {
        user_id: cmd.user_id,
        if_match: None,
    };
    users::delete(tx, ctx, env, org_id, &delete).await
}

/// The person, locked, if they are deactivated and past their org's window for erasing
/// deactivated people: `one`.
fn lock_if_due(org_id: Uuid, user_id: Uuid) -> SelectStatement {
    let window = days(Expr::col(("o", "erase_deactivated_after_days")));
    users_with_their_org()
        .expr_as(Expr::cust("1"), "one")
        .and_where(Expr::col(("u", "org_id")).eq(org_id))
        .and_where(Expr::col(("u", "id")).eq(user_id))
        .and_where(Expr::col(("u", "active")).not())
        .and_where(Expr::col(("o", "erase_deactivated_after_days")).is_not_null())
        .and_where(Expr::col(("u", "deactivated_at")).lte(ago(window)))
        .lock_with_tables(LockType::Update, ["u"])
        .to_owned()
}

/// What may identify the person: `user_name`, `email`, `display_name`, `external_id` and
/// the string values of their SCIM `emails`, as [`needles`] keeps them.
pub(super) fn needles_of(u: &user::Model) -> Vec<String> {
    let emails = u
        .resource
        .get("emails")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("value").and_then(serde_json::Value::as_str));
    let found = [
        Some(u.user_name.as_str()),
        u.email.as_deref(),
        u.display_name.as_deref(),
        u.external_id.as_deref(),
    ];
    needles(found.into_iter().flatten().chain(emails).map(str::to_owned))
}

/// Distinct, trimmed, long enough to identify someone.
pub fn needles(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let v = v.trim().to_owned();
        if v.chars().count() >= MIN_NEEDLE && !out.iter().any(|o| o.eq_ignore_ascii_case(&v)) {
            out.push(v);
        }
    }
    out
}

/// Records the erasure for the background pass.
pub(super) async fn record(
    tx: &Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    needles: Vec<String>,
) -> Result<(), DbErr> {
    let array = Value::Array(
        sea_orm::sea_query::ArrayType::String,
        Some(Box::new(
            needles
                .into_iter()
                .map(|n| Value::String(Some(n)))
                .collect(),
        )),
    );
    tx.execute(&erasure(org_id, user_id, array)).await?;
    Ok(())
}

/// The erasure's row, unless the person already has one.
fn erasure(org_id: Uuid, user_id: Uuid, needles: Value) -> InsertStatement {
    Query::insert()
        .into_table("erasures")
        .columns(["user_id", "org_id", "needles"])
        .values_panic([user_id.into(), org_id.into(), needles.into()])
        .on_conflict(OnConflict::column("user_id").do_nothing().to_owned())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::db::sql::assert_sql;

    #[test]
    fn the_policy_erases_only_someone_still_due() {
        assert_sql(
            &lock_if_due(Uuid::nil(), Uuid::nil()),
            r#"SELECT 1 AS "one" FROM "users" AS "u" INNER JOIN "orgs" AS "o" ON "o"."id" = "u"."org_id" WHERE "u"."org_id" = $1 AND "u"."id" = $2 AND (NOT "u"."active") AND "o"."erase_deactivated_after_days" IS NOT NULL AND "u"."deactivated_at" <= (now() - make_interval(days => "o"."erase_deactivated_after_days")) FOR UPDATE OF "u""#,
            2,
        );
    }

    #[test]
    fn needles_are_the_identifying_columns_and_the_emails_string_values() {
        let now = chrono::Utc::now();
        let mut u = user::Model {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            user_name: "alex.marsh@x.io".into(),
            external_id: Some("00u123".into()),
            active: true,
            display_name: Some("Alexandra Marsh".into()),
            given_name: Some("Alexandra".into()),
            family_name: Some("Marsh".into()),
            email: Some("ALEX.MARSH@X.IO".into()),
            resource: serde_json::json!({"emails": [
                {"value": "alex@home.example", "type": "home"},
                {"value": 42},
                {"type": "work"},
            ]}),
            profile: serde_json::json!({}),
            version: 1,
            created_at: now,
            updated_at: now,
            manager_ref: None,
            manager_id: None,
        };
        assert_eq!(
            needles_of(&u),
            [
                "alex.marsh@x.io",
                "Alexandra Marsh",
                "00u123",
                "alex@home.example"
            ]
        );
        u.resource = serde_json::json!({"emails": "alex@home.example"});
        u.external_id = None;
        assert_eq!(needles_of(&u), ["alex.marsh@x.io", "Alexandra Marsh"]);
    }

    #[test]
    fn a_person_is_recorded_for_erasure_once() {
        let needles = Value::Array(sea_orm::sea_query::ArrayType::String, None);
        assert_sql(
            &erasure(Uuid::nil(), Uuid::nil(), needles),
            r#"INSERT INTO "erasures" ("user_id", "org_id", "needles") VALUES ($1, $2, $3) ON CONFLICT ("user_id") DO NOTHING"#,
            3,
        );
    }

    #[test]
    fn needles_are_distinct_and_long_enough() {
        let got = needles(
            [
                "jo@x.io",
                "JO@X.IO",
                "Al",
                "  Alexandra Marsh ",
                "00u123",
                "",
            ]
            .map(str::to_owned),
        );
        assert_eq!(got, ["jo@x.io", "Alexandra Marsh", "00u123"]);
    }
}
