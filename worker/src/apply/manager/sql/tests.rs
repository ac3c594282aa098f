use super::*;
use common::db::sql::assert_sql;

/// `expr` as `SELECT <expr>`.
fn select(expr: Expr) -> SelectStatement {
    Query::select().expr(expr).to_owned()
}

const ORG: Uuid = Uuid::nil();
const USER: Uuid = Uuid::max();

#[test]
fn candidates_follow_the_key_order() {
    assert_sql(
        &select(candidate(
            ORG,
            &[MatchKey::Email, MatchKey::Id, MatchKey::ExternalId],
            "boss@x",
        )),
        r#"SELECT COALESCE((SELECT "id" FROM "users" WHERE "org_id" = $1 AND LOWER("email") = LOWER($2) ORDER BY "id" ASC LIMIT $3), (SELECT "id" FROM "users" WHERE "org_id" = $4 AND "external_id" = $5 ORDER BY "id" ASC LIMIT $6))"#,
        6,
    );
    let id = Uuid::now_v7().to_string();
    assert_sql(
        &select(candidate(ORG, &[MatchKey::Id], &id)),
        r#"SELECT (SELECT "id" FROM "users" WHERE "org_id" = $1 AND "id" = $2 ORDER BY "id" ASC LIMIT $3)"#,
        3,
    );
    assert_sql(
        &select(candidate(ORG, &[MatchKey::Id], "boss")),
        "SELECT CAST(NULL AS uuid)",
        0,
    );
}

#[test]
fn an_own_link_is_made_only_without_a_cycle_in_the_same_statement() {
    let candidate = candidate(ORG, &[MatchKey::UserName, MatchKey::EmployeeNumber], "boss");
    assert_sql(
        &link_own(ORG, USER, "boss", candidate),
        r#"WITH RECURSIVE "cand" AS (SELECT COALESCE((SELECT "id" FROM "users" WHERE "org_id" = $1 AND LOWER("user_name") = LOWER($2) ORDER BY "id" ASC LIMIT $3), (SELECT "id" FROM "users" WHERE "org_id" = $4 AND (profile->>'employee_number') = $5 ORDER BY "id" ASC LIMIT $6)) AS "id") , "up" ("id", "manager_id") AS (SELECT "u"."id", "u"."manager_id" FROM "users" AS "u" INNER JOIN "cand" ON "u"."id" = "cand"."id" UNION (SELECT "u"."id", "u"."manager_id" FROM "users" AS "u" INNER JOIN "up" ON "u"."id" = "up"."manager_id")) , "decision" AS (SELECT "cand"."id", EXISTS(SELECT 1 FROM "up" WHERE "up"."id" = $7) AS "cycle" FROM "cand") , "linked" AS (UPDATE "users" SET "manager_id" = "d"."id", "manager_ref" = $8 FROM "decision" AS "d" WHERE "users"."org_id" = $9 AND "users"."id" = $10 AND (NOT "d"."cycle") RETURNING "users"."id") SELECT "d"."id" AS "manager_id", "d"."cycle", "m"."user_name" AS "manager_user_name" FROM "decision" AS "d" LEFT JOIN "users" AS "m" ON "m"."id" = "d"."id""#,
        10,
    );
}
