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
fn values_are_locked_once_each_in_key_order() {
    assert_sql(
        &lock_values(ORG, &["a".into()], &["a".into(), "b".into()]),
        r#"SELECT to_jsonb("o"."manager_match") AS "keys", (SELECT COUNT((CASE WHEN ("s"."x") THEN pg_advisory_xact_lock("s"."h") ELSE pg_advisory_xact_lock_shared("s"."h") END)) FROM (SELECT "a"."h", bool_or("a"."x") AS "x" FROM (SELECT hashtextextended($1::text || ':' || "v"."value", 7262810515) AS "h", $2 AS "x" FROM jsonb_array_elements_text(CAST($3 AS jsonb)) AS "v" UNION ALL (SELECT hashtextextended($4::text || ':' || "v"."value", 7262810515) AS "h", $5 AS "x" FROM jsonb_array_elements_text(CAST($6 AS jsonb)) AS "v")) AS "a" GROUP BY "a"."h" ORDER BY "a"."h" ASC) AS "s") AS "locked" FROM "orgs" AS "o" WHERE "o"."id" = $7"#,
        7,
    );
    assert_sql(
        &lock_chart(ORG),
        "SELECT pg_advisory_xact_lock(hashtextextended('roster.org_chart:' || $1::text, 0))",
        1,
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

/// The waiting condition as rendered, its values numbered from `$<first>`.
fn waiting_sql(first: usize) -> String {
    let [org, user, all, exact, folded] = [0, 1, 2, 3, 4].map(|i| first + i);
    format!(
        r#""r"."org_id" = ${org} AND "r"."id" <> ${user} AND "r"."manager_id" IS NULL AND "r"."manager_ref" IS NOT NULL AND (LOWER("r"."manager_ref") = ANY(ARRAY(SELECT jsonb_array_elements_text(${all}::jsonb)))) AND (("r"."manager_ref" = ANY(ARRAY(SELECT jsonb_array_elements_text(${exact}::jsonb)))) OR (LOWER("r"."manager_ref") = ANY(ARRAY(SELECT jsonb_array_elements_text(${folded}::jsonb)))))"#
    )
}

#[test]
fn reports_waiting_are_found_and_linked_in_one_statement() {
    let values = (vec!["a".to_owned()], vec!["A".to_owned()], vec![]);
    assert_sql(
        &any_waiting(waiting(ORG, USER, &values)),
        &format!(
            r#"SELECT EXISTS(SELECT 1 FROM "users" AS "r" WHERE {}) AS "found""#,
            waiting_sql(1)
        ),
        5,
    );
    assert_sql(
        &link_waiting(USER, waiting(ORG, USER, &values)),
        &format!(
            r#"WITH RECURSIVE "up" ("id", "manager_id") AS (SELECT "id", "manager_id" FROM "users" WHERE "id" = $1 UNION (SELECT "u"."id", "u"."manager_id" FROM "users" AS "u" INNER JOIN "up" ON "u"."id" = "up"."manager_id")) , "cand" AS (SELECT "r"."id", "r"."user_name", "r"."manager_ref", "r"."id" IN (SELECT "id" FROM "up") AS "cycle" FROM "users" AS "r" WHERE {}) , "linked" AS (UPDATE "users" AS "u" SET "manager_id" = $7, "version" = "u"."version" + $8, "updated_at" = now() FROM "cand" WHERE "u"."id" = "cand"."id" AND (NOT "cand"."cycle") AND "u"."manager_id" IS NULL AND "u"."manager_ref" = "cand"."manager_ref" RETURNING "u"."id", "u"."version", "u"."user_name") SELECT $9 AS "linked", "id", "version", "user_name", CAST(NULL AS text) AS "manager_ref" FROM "linked" UNION ALL (SELECT $10, "id", NULL, "user_name", "manager_ref" FROM "cand" WHERE "cycle")"#,
            waiting_sql(2)
        ),
        10,
    );
}
