//! The operator's org lifecycle commands: removing an org with every row it owns, and
//! setting how long its activity entries are kept (docs/data-lifecycle.md).

use super::Tx;
use super::{Audit, audit};
use common::messages::{DeleteOrg, Envelope, Reply, SetOrgRetention};
use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{DeleteStatement, Expr, ExprTrait, LockType, Query},
};
use serde_json::{Value, json};
use uuid::Uuid;

/// The most days an org's activity may be kept.
pub const MAX_ACTIVITY_DAYS: u32 = 36_500;

/// Removes the org in one transaction: its outbox events (published or not: its
/// integrators go with it), its command ids and stored replies, its activity, and the org
/// row, whose cascade takes its tokens, admin key, integration credentials, people,
/// invites, groups, mappings and pending erasures. Its credentials stop working at commit.
///
/// The org row is locked first: commands of the org in flight hold a key-share lock on it
/// (`apply`), so this waits for them, and sees their rows; commands after it find no org
/// and are refused without a trace. Nothing Roster keeps about this command names the org
/// (its envelope has no `org_id`); the worker's log line does.
pub(super) async fn delete_org(
    tx: &Tx<'_>,
    _env: &Envelope,
    cmd: &DeleteOrg,
) -> Result<Reply, DbErr> {
    let org_id = cmd.org_id;
    let org = Query::select()
        .column("id")
        .from("orgs")
        .and_where(Expr::col("id").eq(org_id))
        .lock(LockType::Update)
        .to_owned();
    if tx.query_one(&org).await?.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    for delete in org_removal(org_id) {
        tx.execute(&delete).await?;
    }
    tracing::info!(org_id = %org_id, "organisation removed with all its rows");
    Ok(Reply::ok(204, Value::Null))
}

/// The deletes that remove the org: first its rows that have no foreign key to it (the
/// cascade would leave them), then the org row.
fn org_removal(org_id: Uuid) -> Vec<DeleteStatement> {
    let of_org = |table: &'static str| {
        Query::delete()
            .from_table(table)
            .and_where(Expr::col("org_id").eq(org_id))
            .to_owned()
    };
    // `org.create` carries no org id in its envelope; its stored reply names the org.
    let org_created = Query::delete()
        .from_table("processed_commands")
        .and_where(Expr::col("org_id").is_null())
        .and_where(Expr::col("command_type").eq("org.create"))
        .and_where(Expr::cust("reply #>> '{body,id}'").eq(Expr::val(org_id).cast_as("text")))
        .to_owned();
    let org = Query::delete()
        .from_table("orgs")
        .and_where(Expr::col("id").eq(org_id))
        .to_owned();
    vec![
        of_org("outbox"),
        of_org("processed_commands"),
        org_created,
        of_org("audit_log"),
        of_org("provisioning_log"),
        of_org("deprovisions"),
        of_org("deprovision_holds"),
        org,
    ]
}

/// Sets (or, with `null`, clears) the org's activity retention override.
pub(super) async fn set_retention(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SetOrgRetention,
) -> Result<Reply, DbErr> {
    if cmd
        .activity_days
        .is_some_and(|d| d == 0 || d > MAX_ACTIVITY_DAYS)
    {
        return Ok(Reply::error(
            400,
            None,
            format!("activity_days must be 1 to {MAX_ACTIVITY_DAYS}, or null for the default"),
        ));
    }
    let days = cmd.activity_days.and_then(|d| i32::try_from(d).ok());
    let update = Query::update()
        .table("orgs")
        .value("activity_retention_days", days)
        .and_where(Expr::col("id").eq(org_id))
        .returning_col("id")
        .to_owned();
    let updated = tx.query_one(&update).await?;
    if updated.is_none() {
        return Ok(Reply::error(404, None, "organisation not found"));
    }
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "retention.updated",
            resource_type: "Org",
            resource_id: None,
            detail: json!({"activity_days": cmd.activity_days}),
        },
    );
    Ok(Reply::ok(200, json!({"activity_days": cmd.activity_days})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn an_org_goes_with_its_rows_and_the_reply_that_created_it() {
        let sql: Vec<String> = org_removal(Uuid::nil())
            .iter()
            .map(|d| {
                let (sql, values) = d.build(PostgresQueryBuilder);
                assert_eq!(values.0.len(), sql.matches('$').count(), "{sql}");
                sql
            })
            .collect();
        assert_eq!(
            sql,
            [
                r#"DELETE FROM "outbox" WHERE "org_id" = $1"#,
                r#"DELETE FROM "processed_commands" WHERE "org_id" = $1"#,
                r#"DELETE FROM "processed_commands" WHERE "org_id" IS NULL AND "command_type" = $1 AND (reply #>> '{body,id}') = CAST($2 AS text)"#,
                r#"DELETE FROM "audit_log" WHERE "org_id" = $1"#,
                r#"DELETE FROM "provisioning_log" WHERE "org_id" = $1"#,
                r#"DELETE FROM "deprovisions" WHERE "org_id" = $1"#,
                r#"DELETE FROM "deprovision_holds" WHERE "org_id" = $1"#,
                r#"DELETE FROM "orgs" WHERE "id" = $1"#,
            ]
        );
    }
}
