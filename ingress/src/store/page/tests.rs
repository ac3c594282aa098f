//! The list page's SQL, pinned.

use super::*;
use common::db::query::{users_sort_key, users_where};
use sea_orm::{Value, sea_query::PostgresQueryBuilder};

/// The org's users matching `filter`, as `fetch_page` translates it.
fn users_matching(filter: &str) -> Condition {
    let w = users_where(&filter::parse(filter).expect("parses")).expect("translates");
    matching(Uuid::nil(), Some(w))
}

/// (sea-query puts the filter's fragment in parentheses of its own.)
#[test]
fn the_filter_takes_its_parameters_after_the_orgs() {
    let m = users_matching(r#"userName eq "A" and title co "b""#);
    let (sql, values) = count("users", m.clone()).build(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"SELECT COUNT(*) AS "n" FROM "users" WHERE "org_id" = $1 AND (((lower(user_name) = $2) AND (lower((resource->>'title')) LIKE $3 ESCAPE '\')))"#
    );
    assert_eq!(
        values.0,
        vec![
            Value::from(Uuid::nil()),
            Value::from("a".to_owned()),
            Value::from("%b%".to_owned())
        ]
    );
    // Two-digit placeholders too: the filter's `$10` is its tenth value.
    let many: Vec<_> = (0..10).map(|i| format!(r#"userName eq "{i}""#)).collect();
    let m = users_matching(&many.join(" or "));
    let (sql, values) = count("users", m).build(PostgresQueryBuilder);
    assert!(sql.contains("(lower(user_name) = $11)"), "{sql}");
    assert_eq!(values.0[10], Value::from("9".to_owned()));
    let (sql, _) = count("groups", matching(Uuid::nil(), None)).build(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"SELECT COUNT(*) AS "n" FROM "groups" WHERE "org_id" = $1"#
    );
}

#[test]
fn a_page_is_chosen_by_ids_in_the_sort_order() {
    let key = users_sort_key(Some("userName")).expect("sorts");
    let m = users_matching(r#"userName sw "a""#);
    let (sql, values) =
        window("users", m, key.as_deref(), Order::Desc, 100, 200).build(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"SELECT * FROM "users" WHERE "id" IN (SELECT "id" FROM "users" WHERE "org_id" = $1 AND ((lower(user_name) LIKE $2 ESCAPE '\')) ORDER BY lower(user_name) DESC NULLS LAST, "id" DESC LIMIT $3 OFFSET $4) ORDER BY lower(user_name) DESC NULLS LAST, "id" DESC"#
    );
    assert_eq!(values.0[2..], [Value::from(100u64), Value::from(200u64)]);
}

#[test]
fn a_continued_page_seeks_past_the_last_id() {
    let m = users_matching("active eq true");
    let (sql, values) =
        seek("users", m.clone(), Order::Desc, Uuid::nil(), 100).build(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"SELECT * FROM "users" WHERE "org_id" = $1 AND ((active = $2)) AND "id" < $3 ORDER BY "id" DESC LIMIT $4"#
    );
    assert_eq!(values.0.len(), 4);
    let (sql, _) = seek("users", m, Order::Asc, Uuid::nil(), 100).build(PostgresQueryBuilder);
    assert!(
        sql.contains(r#"AND "id" > $3 ORDER BY "id" ASC LIMIT $4"#),
        "{sql}"
    );
}

#[test]
fn a_huge_count_is_bound_as_the_largest_bigint() {
    let req = PageRequest {
        filter: None,
        sort_by: None,
        descending: false,
        start_index: 1,
        count: u64::MAX,
    };
    assert_eq!(req.limit(), i64::MAX as u64);
}

fn key(start_index: u64) -> PageKey {
    PageKey {
        table: "users",
        org_id: Uuid::nil(),
        filter: None,
        descending: false,
        start_index,
    }
}

#[test]
fn a_continuation_is_taken_once_and_the_oldest_goes_first() {
    let c = Continuations::new(2, Duration::from_secs(60));
    let (a, b, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    c.put(key(101), a);
    assert_eq!(c.take(&key(101)), Some(a));
    assert_eq!(c.take(&key(101)), None, "taken");
    c.put(key(101), a);
    c.put(key(201), b);
    c.cache.run_pending_tasks();
    c.put(key(301), d);
    c.cache.run_pending_tasks();
    assert_eq!(c.take(&key(101)), None, "evicted, the oldest");
    assert_eq!((c.take(&key(201)), c.take(&key(301))), (Some(b), Some(d)));
    let other_filter = PageKey {
        filter: Some("active eq true".into()),
        ..key(201)
    };
    c.put(key(201), b);
    assert_eq!(c.take(&other_filter), None, "another list");
}

#[test]
fn an_expired_continuation_is_not_used() {
    let c = Continuations::new(4, Duration::from_millis(1));
    c.put(key(101), Uuid::new_v4());
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.take(&key(101)), None);
}
