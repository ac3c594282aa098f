//! Commands that end without being applied — past their deadline, or refused for good by
//! the database — and the answers of commands applied before (their stored replies).

use super::{Applied, audit::actor, to_json};
use common::{
    db::sql::cte,
    messages::{Envelope, Reply},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr,
    sea_query::{
        BinOper, Expr, ExprTrait, OnConflict, Query, SelectStatement, WithClause, WithQuery,
    },
};
use serde_json::Value as Json;
use uuid::Uuid;

/// The answer to a command whose id was not claimed: `404` if its org is gone, else the
/// reply stored for the id.
pub(super) async fn unclaimed_reply(
    db: &DatabaseConnection,
    env: &Envelope,
) -> Result<Reply, DbErr> {
    if let Some(org_id) = env.org_id
        && !org_exists(db, org_id).await?
    {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    stored_reply(db, env.id, env.org_id).await
}

/// The reply of a command that reached its deadline unapplied.
pub fn expired_reply() -> Reply {
    Reply::error(
        503,
        None,
        "the change was not applied: it was still waiting when its deadline passed, and it \
         never will be; send it again",
    )
}

/// Records a command that reached its deadline unapplied: its id with the `503` reply (so a
/// redelivery, and the ingress's fence, find it) and an activity entry.
pub(super) async fn expire(db: &DatabaseConnection, env: &Envelope) -> Result<Applied, DbErr> {
    let reply = expired_reply();
    if !record_unapplied(db, env, &reply, "command.expired").await? {
        // Applied or expired by an earlier delivery: its stored reply stands.
        let reply = stored_reply(db, env.id, env.org_id).await?;
        return Ok(Applied {
            reply,
            expired: false,
        });
    }
    Ok(Applied {
        reply,
        expired: true,
    })
}

/// Makes `reply` the final answer of a command that was not applied — expired, or refused
/// for good by the database and answered `500` — by storing it under the command's id, with
/// an activity entry `action`, in one statement: no redelivery or replay of the command can
/// apply it afterwards. False if the id was already taken (its stored reply stands).
pub async fn record_unapplied(
    db: &DatabaseConnection,
    env: &Envelope,
    reply: &Reply,
    action: &str,
) -> Result<bool, DbErr> {
    let recorded = db.query_one(&claim_unapplied(env, reply, action)?).await?;
    Ok(recorded.is_some())
}

/// Claims the command's id with `reply` and, if the id was free and the org exists, adds
/// the activity entry `action`: returns `command_id` if it claimed the id.
fn claim_unapplied(env: &Envelope, reply: &Reply, action: &str) -> Result<WithQuery, DbErr> {
    let claim = Query::insert()
        .into_table("processed_commands")
        .columns(["command_id", "org_id", "command_type", "reply"])
        .values_panic([
            env.id.into(),
            env.org_id.into(),
            env.kind.as_str().into(),
            to_json(reply).into(),
        ])
        .on_conflict(OnConflict::column("command_id").do_nothing().to_owned())
        .returning_col("command_id")
        .to_owned();
    let (resource_type, resource_id) = expired_resource(env);
    let detail = serde_json::json!({"type": env.kind, "apply_by": env.apply_by});
    let org_exists = Query::select()
        .expr(Expr::cust("1"))
        .from("orgs")
        .and_where(Expr::col("id").eq(env.org_id))
        .to_owned();
    let entry = Query::select()
        .exprs([
            Expr::val(env.org_id),
            Expr::val(env.id),
            Expr::val(env.correlation_id.as_str()),
            Expr::val(actor(env)),
            Expr::val(action),
            Expr::val(resource_type),
            Expr::val(resource_id),
            Expr::val(detail),
        ])
        .from("claimed")
        .and_where(Expr::exists(org_exists))
        .to_owned();
    let audit = Query::insert()
        .into_table("audit_log")
        .columns([
            "org_id",
            "command_id",
            "correlation_id",
            "actor",
            "action",
            "resource_type",
            "resource_id",
            "detail",
        ])
        .select_from(entry)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    Ok(WithClause::new()
        .cte(cte("claimed", claim))
        .cte(cte("audit", audit))
        .to_owned()
        .query(
            Query::select()
                .column("command_id")
                .from("claimed")
                .to_owned(),
        ))
}

/// The resource an unapplied command was about, for its activity entry.
fn expired_resource(env: &Envelope) -> (&'static str, Option<String>) {
    let id = |key: &str| {
        env.payload
            .get(key)
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    match env.kind.split('.').next() {
        Some("user" | "person") => ("User", id("user_id")),
        Some("group") => ("Group", id("group_id")),
        _ => ("Org", env.org_id.map(|o| o.to_string())),
    }
}

/// Whether the org exists (a command's org may have been removed while it was queued).
async fn org_exists(db: &DatabaseConnection, org_id: Uuid) -> Result<bool, DbErr> {
    let org = Query::select()
        .expr_as(Expr::cust("1"), "one")
        .from("orgs")
        .and_where(Expr::col("id").eq(org_id))
        .to_owned();
    Ok(db.query_one(&org).await?.is_some())
}

/// The reply stored for a command id — only to the same org: now that other services
/// choose command ids, one org must not read another's answer by reusing its id.
async fn stored_reply(
    db: &DatabaseConnection,
    command_id: Uuid,
    org_id: Option<Uuid>,
) -> Result<Reply, DbErr> {
    let row = db.query_one(&reply_of(command_id, org_id)).await?;
    if let Some(r) = &row
        && !r.try_get::<bool>("", "same_org")?
    {
        return Ok(Reply::error(
            409,
            None,
            "this command id was already used by another command",
        ));
    }
    let stored: Option<Json> = match row {
        Some(r) => r.try_get("", "reply")?,
        None => None,
    };
    Ok(stored
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(|| {
            Reply::error(500, None, "the stored result of this command is unreadable")
        }))
}

/// The reply stored for the id, and whether it was stored for the same org (both none
/// counts as the same): `reply`, `same_org`.
fn reply_of(command_id: Uuid, org_id: Option<Uuid>) -> SelectStatement {
    let same_org =
        Expr::col("org_id").binary(BinOper::Custom("IS NOT DISTINCT FROM"), Expr::val(org_id));
    Query::select()
        .column("reply")
        .expr_as(same_org, "same_org")
        .from("processed_commands")
        .and_where(Expr::col("command_id").eq(command_id))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::db::sql::assert_sql;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn an_unapplied_command_claims_its_id_and_logs_it_in_one_statement() {
        let env = common::messages::Command::SignOut(common::messages::SignOut {
            user_id: Uuid::nil(),
        })
        .into_envelope(Some(Uuid::nil()), "c");
        let q = claim_unapplied(&env, &expired_reply(), "command.expired").expect("builds");
        assert_sql(
            &q,
            r#"WITH "claimed" AS (INSERT INTO "processed_commands" ("command_id", "org_id", "command_type", "reply") VALUES ($1, $2, $3, $4) ON CONFLICT ("command_id") DO NOTHING RETURNING "command_id") , "audit" AS (INSERT INTO "audit_log" ("org_id", "command_id", "correlation_id", "actor", "action", "resource_type", "resource_id", "detail") SELECT $5, $6, $7, $8, $9, $10, $11, $12 FROM "claimed" WHERE EXISTS(SELECT 1 FROM "orgs" WHERE "id" = $13)) SELECT "command_id" FROM "claimed""#,
            13,
        );
        // The entry's values go to their columns: the org, the command, then the action.
        let (_, values) = q.build(PostgresQueryBuilder);
        let org = sea_orm::Value::Uuid(env.org_id);
        assert_eq!(values.0[4], org);
        assert_eq!(values.0[5], sea_orm::Value::Uuid(Some(env.id)));
        assert_eq!(values.0[8], sea_orm::Value::from("command.expired"));
        assert_eq!(values.0[12], org);
    }

    #[test]
    fn a_stored_reply_is_read_with_whether_its_org_is_the_same() {
        assert_sql(
            &reply_of(Uuid::nil(), None),
            r#"SELECT "reply", "org_id" IS NOT DISTINCT FROM $1 AS "same_org" FROM "processed_commands" WHERE "command_id" = $2"#,
            2,
        );
    }
}
