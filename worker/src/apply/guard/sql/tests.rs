use super::*;
use common::db::sql::assert_sql;

const ORG: Uuid = Uuid::nil();
const USER: Uuid = Uuid::max();

#[test]
fn the_guard_row_is_locked_and_created_once() {
    assert_sql(
        &locked_guard(ORG),
        r#"SELECT "enabled", "threshold_percent", "min_count", "window_minutes", "tripped_at", "rejected_until" FROM "deprovision_guards" WHERE "org_id" = $1 FOR UPDATE"#,
        1,
    );
    assert_sql(
        &create_guard(ORG),
        r#"INSERT INTO "deprovision_guards" ("org_id") SELECT "id" FROM "orgs" WHERE "id" = $1 ON CONFLICT  DO NOTHING"#,
        1,
    );
}

#[test]
fn the_counts_are_one_row_of_subqueries() {
    assert_sql(
        &counts(ORG, USER, 60),
        r#"SELECT now() AS "now", (SELECT "decision" FROM "deprovision_holds" WHERE "org_id" = $1 AND "user_id" = $2) AS "decision", (SELECT COUNT(*) FROM "deprovision_holds" WHERE "org_id" = $3 AND "user_id" = $4) AS "held", (SELECT COUNT(*) FROM "deprovisions" WHERE "org_id" = $5 AND "at" > (now() - make_interval(mins => $6))) AS "recent", (SELECT COUNT(*) FROM "users" WHERE "org_id" = $7 AND "active") AS "active""#,
        7,
    );
}

#[test]
fn a_pass_forgets_the_hold_and_old_rows_and_counts_only_if_told() {
    assert_sql(
        &pass(ORG, USER, false, 60),
        r#"WITH "h" AS (DELETE FROM "deprovision_holds" WHERE "org_id" = $1 AND "user_id" = $2) , "o" AS (DELETE FROM "deprovisions" WHERE "org_id" = $3 AND "at" <= (now() - make_interval(mins => $4))) INSERT INTO "deprovisions" ("org_id", "user_id") SELECT $5, $6 WHERE $7"#,
        7,
    );
    assert_sql(
        &rearm(ORG),
        r#"WITH "g" AS (UPDATE "deprovision_guards" SET "rejected_until" = NULL WHERE "org_id" = $1) DELETE FROM "deprovision_holds" WHERE "org_id" = $2 AND "decision" = $3"#,
        3,
    );
}

#[test]
fn a_hold_tried_again_counts_the_attempt_and_keeps_its_decision_unless_given() {
    assert_sql(
        &record_hold(ORG, USER, "delete", None),
        r#"INSERT INTO "deprovision_holds" ("org_id", "user_id", "action", "decision") VALUES ($1, $2, $3, $4) ON CONFLICT ("org_id", "user_id") DO UPDATE SET "action" = "excluded"."action", "last_attempt_at" = now(), "attempts" = "deprovision_holds"."attempts" + $5, "decision" = COALESCE("excluded"."decision", "deprovision_holds"."decision")"#,
        5,
    );
}

#[test]
fn a_decision_clears_the_trip_and_returns_the_undecided_holds() {
    assert_sql(
        &approve(ORG),
        r#"WITH "g" AS (UPDATE "deprovision_guards" SET "tripped_at" = NULL WHERE "org_id" = $1) , "d" AS (DELETE FROM "deprovisions" WHERE "org_id" = $2) UPDATE "deprovision_holds" SET "decision" = $3 WHERE "org_id" = $4 AND "decision" IS NULL RETURNING "user_id""#,
        4,
    );
    assert_sql(
        &reject(ORG),
        r#"WITH "g" AS (UPDATE "deprovision_guards" SET "tripped_at" = NULL, "rejected_until" = "tripped_at" + (make_interval(mins => "window_minutes")) WHERE "org_id" = $1) UPDATE "deprovision_holds" SET "decision" = $2 WHERE "org_id" = $3 AND "decision" IS NULL RETURNING "user_id""#,
        3,
    );
}

#[test]
fn off_clears_everything_and_settings_not_given_stay() {
    assert_sql(
        &switch_off(ORG),
        r#"WITH "g" AS (UPDATE "deprovision_guards" SET "tripped_at" = NULL, "rejected_until" = NULL WHERE "org_id" = $1) , "d" AS (DELETE FROM "deprovisions" WHERE "org_id" = $2) DELETE FROM "deprovision_holds" WHERE "org_id" = $3"#,
        3,
    );
    assert_sql(
        &update_settings(ORG, Some(false), None, Some(3), None),
        r#"UPDATE "deprovision_guards" SET "enabled" = COALESCE($1, "enabled"), "threshold_percent" = COALESCE($2, "threshold_percent"), "min_count" = COALESCE($3, "min_count"), "window_minutes" = COALESCE($4, "window_minutes") WHERE "org_id" = $5"#,
        5,
    );
}
