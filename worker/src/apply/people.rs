//! An employee's edit of their directory fields. With "lock synced fields" on, fields Okta
//! overwrites are refused (`409`, naming them). Fields Okta maps are written into the
//! stored SCIM resource too, so `GET` over SCIM returns what the directory shows.

use super::Tx;
use super::{ApplyContext, Audit, Side, audit_with, manager, not_found, scim_error, users};
use common::{
    db::{
        entities::user,
        reads::{org_mapping, users_with_their_org},
        sql::now,
    },
    mapping::{self, CUSTOM_PREFIX, Policy, STANDARD_FIELDS},
    messages::{Envelope, Reply, UpdatePerson, events},
    scim::model::UserInput,
};
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Asterisk, Expr, ExprTrait, LockType, Query, SelectStatement, UpdateStatement},
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn known_field(field: &str) -> bool {
    STANDARD_FIELDS.iter().any(|(f, ..)| *f == field)
        || field.strip_prefix(CUSTOM_PREFIX).is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

pub(super) async fn update(
    tx: &Tx<'_>,
    _ctx: &ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &UpdatePerson,
) -> Result<Reply, DbErr> {
    let unknown: Vec<&str> = cmd
        .fields
        .keys()
        .filter(|f| !known_field(f))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Ok(Reply::error(
            400,
            None,
            format!("unknown fields: {}", unknown.join(", ")),
        ));
    }
    if let Some((f, _)) = cmd
        .fields
        .iter()
        .find(|(_, v)| !(v.is_string() || v.is_null()))
    {
        return Ok(Reply::error(
            400,
            None,
            format!("{f} must be a string or null"),
        ));
    }
    let Some(row) = tx.query_one(&locked_person(org_id, cmd.user_id)).await? else {
        return Ok(not_found("User", cmd.user_id));
    };
    let old = user::Model::from_query_result(&row, "")?;
    let locked_on: bool = row.try_get("", "lock_synced_fields")?;
    let org_map = org_mapping(tx, org_id).await?;
    let policy = |field: &str| org_map.iter().find(|m| m.field == field);
    if locked_on {
        let locked: Vec<String> = cmd
            .fields
            .keys()
            .filter(|f| policy(f).is_some_and(|m| m.policy == Policy::Overwrite))
            .map(|f| format!("{} ({f})", mapping::label(f)))
            .collect();
        if !locked.is_empty() {
            return Ok(Reply::error(
                409,
                None,
                format!(
                    "these fields are synced from Okta and locked by your administrator: {}",
                    locked.join(", ")
                ),
            ));
        }
    }
    let mut profile = old.profile.as_object().cloned().unwrap_or_default();
    let mut resource = old.resource.as_object().cloned().unwrap_or_default();
    for (field, value) in &cmd.fields {
        let text = value.as_str().map(str::trim).filter(|v| !v.is_empty());
        match text {
            Some(v) => profile.insert(field.clone(), json!(v)),
            None => profile.remove(field),
        };
        if let Some(m) = policy(field).filter(|m| m.policy != Policy::Ignore)
            && let Err(e) = mapping::write(&mut resource, &m.scim_attribute, text)
        {
            return Ok(scim_error(e));
        }
    }
    let input = match UserInput::from_json(Value::Object(resource)) {
        Ok(i) => i,
        Err(e) => return Ok(scim_error(e)),
    };
    let before = old.profile.as_object().cloned().unwrap_or_default();
    let changed: Map<String, Value> = cmd
        .fields
        .keys()
        .filter(|f| before.get(*f) != profile.get(*f))
        .map(|f| (f.clone(), profile.get(f).cloned().unwrap_or(Value::Null)))
        .collect();
    if changed.is_empty() {
        return Ok(Reply::ok(
            200,
            json!({"id": old.id, "fields": profile, "version": old.version}),
        ));
    }
    let row = tx
        .query_one(&write_person(org_id, cmd.user_id, &input, &profile))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the locked user vanished".into()))?;
    let mut u = user::Model::from_query_result(&row, "")?;
    let mut changes = Map::from_iter([("fields".to_owned(), Value::Object(changed.clone()))]);
    if manager::resolve(tx, env, org_id, Some(&old), &mut u).await? {
        changes.insert("manager_id".into(), json!(u.manager_id));
    }
    let event = users::user_event(env, org_id, &u, events::USER_UPDATED, changes);
    audit_with(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "person.updated",
            resource_type: "User",
            resource_id: Some(u.id.to_string()),
            detail: json!({"fields": changed.keys().collect::<Vec<_>>(), "version": u.version}),
        },
        Side::event(&event),
    );
    Ok(Reply::ok(
        200,
        json!({"id": u.id, "fields": profile, "version": u.version}),
    ))
}

/// The person with their org's `lock_synced_fields`, locked (`FOR UPDATE OF u`: the org
/// row is only read).
fn locked_person(org_id: Uuid, user_id: Uuid) -> SelectStatement {
    users_with_their_org()
        .column(("u", Asterisk))
        .column(("o", "lock_synced_fields"))
        .and_where(Expr::col(("u", "org_id")).eq(org_id))
        .and_where(Expr::col(("u", "id")).eq(user_id))
        .lock_with_tables(LockType::Update, ["u"])
        .to_owned()
}

/// The edited person written, with a new version, `RETURNING *`.
fn write_person(
    org_id: Uuid,
    user_id: Uuid,
    input: &UserInput,
    profile: &Map<String, Value>,
) -> UpdateStatement {
    Query::update()
        .table("users")
        .value("resource", Value::Object(input.resource.clone()))
        .value("profile", Value::Object(profile.clone()))
        .value("display_name", input.display_name.clone())
        .value("given_name", input.given_name.clone())
        .value("family_name", input.family_name.clone())
        .value("email", input.email.clone())
        .value("version", Expr::col("version").add(1))
        .value("updated_at", now())
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Expr::col("id").eq(user_id))
        .returning_all()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn the_person_is_locked_but_not_their_org() {
        let (sql, values) = locked_person(Uuid::nil(), Uuid::nil()).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "u".*, "o"."lock_synced_fields" FROM "users" AS "u" INNER JOIN "orgs" AS "o" ON "o"."id" = "u"."org_id" WHERE "u"."org_id" = $1 AND "u"."id" = $2 FOR UPDATE OF "u""#
        );
        assert_eq!(values.0.len(), 2);
    }
}
