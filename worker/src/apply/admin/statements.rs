//! The statements of admin commands with more to them than a lookup, built with sea-query
//! (which numbers their placeholders).

use common::{
    db::sql::{cte, text_array},
    messages::{CreateOrg, UpdateSettings},
};
use sea_orm::{
    DbErr,
    sea_query::{
        BinOper, Expr, ExprTrait, Func, OnConflict, Query, UpdateStatement, WithClause, WithQuery,
    },
};
use serde_json::json;
use uuid::Uuid;

/// The org's row with its deprovision guard's, in one statement; unless its id or admin
/// key is taken (then no row and no guard): `id`.
pub(super) fn insert_org(cmd: &CreateOrg, name: &str) -> Result<WithQuery, DbErr> {
    let org = Query::insert()
        .into_table("orgs")
        .columns(["id", "name", "admin_key_hash"])
        .values_panic([
            cmd.org_id.into(),
            name.into(),
            cmd.admin_key_hash.as_str().into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_col("id")
        .to_owned();
    let guard = Query::insert()
        .into_table("deprovision_guards")
        .columns(["org_id"])
        .select_from(Query::select().column("id").from("o").to_owned())
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    Ok(WithClause::new()
        .cte(cte("o", org))
        .cte(cte("g", guard))
        .to_owned()
        .query(Query::select().column("id").from("o").to_owned()))
}

/// The settings the command names, each left as it is when it names none; returns them all
/// (`manager_match` as a JSON list).
pub(super) fn settings_update(
    org_id: Uuid,
    cmd: &UpdateSettings,
    erase_after: Option<i32>,
) -> UpdateStatement {
    let given_or_kept =
        |given: Option<bool>, col: &'static str| Func::coalesce([Expr::val(given), Expr::col(col)]);
    let erase = Expr::case(
        Expr::val(cmd.deactivated_people.is_some()),
        Expr::val(erase_after),
    )
    .finally(Expr::col("erase_deactivated_after_days"));
    let keys = || Expr::val(cmd.manager_match.as_ref().map(|k| json!(k))).cast_as("jsonb");
    let manager_match =
        Expr::case(keys().is_null(), Expr::col("manager_match")).finally(text_array(keys()));
    let manager_match_json = Func::cust("to_jsonb")
        .arg(Expr::col("manager_match"))
        .binary(BinOper::As, Expr::col("manager_match"));
    Query::update()
        .table("orgs")
        .value(
            "send_invites",
            given_or_kept(cmd.send_invites, "send_invites"),
        )
        .value(
            "lock_synced_fields",
            given_or_kept(cmd.lock_synced_fields, "lock_synced_fields"),
        )
        .value("erase_deactivated_after_days", erase)
        .value("manager_match", manager_match)
        .and_where(Expr::col("id").eq(org_id))
        .returning(Query::returning().exprs([
            Expr::col("send_invites"),
            Expr::col("lock_synced_fields"),
            Expr::col("erase_deactivated_after_days"),
            manager_match_json,
        ]))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::db::sql::assert_sql;

    #[test]
    fn an_org_comes_with_its_guard_in_one_statement() {
        let cmd = CreateOrg {
            org_id: Uuid::nil(),
            name: "Acme".into(),
            admin_key_hash: common::secret::TokenHash::of("key"),
        };
        assert_sql(
            &insert_org(&cmd, "Acme").expect("builds"),
            r#"WITH "o" AS (INSERT INTO "orgs" ("id", "name", "admin_key_hash") VALUES ($1, $2, $3) ON CONFLICT  DO NOTHING RETURNING "id") , "g" AS (INSERT INTO "deprovision_guards" ("org_id") SELECT "id" FROM "o") SELECT "id" FROM "o""#,
            3,
        );
    }

    #[test]
    fn settings_not_named_are_kept() {
        let cmd: UpdateSettings = serde_json::from_value(json!({})).expect("no settings");
        assert_sql(
            &settings_update(Uuid::nil(), &cmd, None),
            r#"UPDATE "orgs" SET "send_invites" = COALESCE($1, "send_invites"), "lock_synced_fields" = COALESCE($2, "lock_synced_fields"), "erase_deactivated_after_days" = (CASE WHEN ($3) THEN $4 ELSE "erase_deactivated_after_days" END), "manager_match" = (CASE WHEN (CAST($5 AS jsonb) IS NULL) THEN "manager_match" ELSE ARRAY(SELECT k FROM jsonb_array_elements_text(CAST($6 AS jsonb)) WITH ORDINALITY AS t (k, n) ORDER BY n) END) WHERE "id" = $7 RETURNING "send_invites", "lock_synced_fields", "erase_deactivated_after_days", to_jsonb("manager_match") AS "manager_match""#,
            7,
        );
    }
}
