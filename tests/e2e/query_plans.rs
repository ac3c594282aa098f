//! The plans of the worker's hand-written hot statements, where a plan that depends on
//! the tables' statistics would make a fresh database (an org's first import) slow.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};
use tests::harness::TestApp;

/// Storing a batch's replies looks the commands up by key even before PostgreSQL has
/// analysed `processed_commands`. Without `p.command_id = ANY($2)` it hash-joined them
/// against a sequential scan of every stored reply (docs/performance.md, "A sequential
/// scan a batch").
#[tokio::test]
async fn storing_replies_looks_the_commands_up_by_key_in_a_table_never_analysed() {
    let app = TestApp::spawn().await;
    app.db
        .execute_unprepared(
            "INSERT INTO processed_commands (command_id, org_id, command_type) \
             SELECT gen_random_uuid(), NULL, 'user.create' FROM generate_series(1, 15000)",
        )
        .await
        .expect("stored replies");
    // The test needs a table PostgreSQL has not analysed yet (`reltuples` is -1 until then).
    app.assert_none(
        "SELECT count(*) FROM pg_class \
         WHERE relname = 'processed_commands' AND reltuples >= 0",
    )
    .await;
    let ids: Vec<uuid::Uuid> = app
        .db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT command_id FROM processed_commands LIMIT 30",
        ))
        .await
        .expect("ids")
        .iter()
        .map(|r| r.try_get("", "command_id").expect("command_id"))
        .collect();
    let rows: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "reply": {"status": 201}, "apply_by": null}))
        .collect();
    let plan = plan_text(
        app.db
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                format!("EXPLAIN {}", worker::apply::hot_sql::STORE_REPLIES),
                [
                    Value::from(serde_json::Value::Array(rows)),
                    common::db::uuid_array(&ids),
                ],
            ))
            .await
            .expect("EXPLAIN"),
    );
    assert!(
        !plan.contains("Seq Scan on processed_commands"),
        "storing replies scans every stored reply:\n{plan}"
    );
    assert!(
        plan.contains("processed_commands_pkey"),
        "storing replies does not use the key:\n{plan}"
    );
    app.stop().await;
}

/// The outbox relay finds the events still to publish without visiting the ones it has
/// published. Marking an event published leaves its old row version in
/// `outbox_unpublished` until vacuum; a bitmap scan visited every one of them on every
/// drain. Under the relay's lock statement the scan is a plain index scan, which marks
/// those entries dead as it passes them, so the next drain skips them
/// (docs/performance.md, "The relay's scan").
#[tokio::test]
async fn the_relay_does_not_visit_the_events_it_has_published() {
    use sea_orm::sea_query::PostgresQueryBuilder;
    let app = TestApp::spawn().await;
    let (sql, values) = worker::outbox::sql::unpublished(200).build(PostgresQueryBuilder);
    let explain = |options: &'static str| {
        let (db, sql, values) = (&app.db, &sql, &values);
        async move {
            let tx = as_the_relay(db).await;
            let plan = plan_text(
                tx.query_all_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    format!("EXPLAIN ({options}) {sql}"),
                    values.clone(),
                ))
                .await
                .expect("EXPLAIN"),
            );
            tx.commit().await.expect("commit");
            plan
        }
    };
    // The plan a relay caches on a worker's connection (a generic plan, after five runs) is
    // made while the outbox is still small, even empty, and serves it as it grows until
    // autovacuum next analyses the table.
    let generic = {
        let tx = as_the_relay(&app.db).await;
        for step in [
            "SET LOCAL plan_cache_mode = force_generic_plan".to_owned(),
            format!("PREPARE relay_scan AS {sql}"),
        ] {
            tx.execute_unprepared(&step).await.expect(&step);
        }
        let plan = plan_text(
            tx.query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "EXPLAIN EXECUTE relay_scan(200)",
            ))
            .await
            .expect("EXPLAIN EXECUTE"),
        );
        tx.execute_unprepared("DEALLOCATE relay_scan")
            .await
            .expect("DEALLOCATE");
        tx.commit().await.expect("commit");
        plan
    };
    assert!(
        generic.contains("Index Scan using outbox_unpublished") && !generic.contains("Seq Scan"),
        "the relay's plan for a small outbox is not a scan of outbox_unpublished:\n{generic}"
    );
    // Written and marked published in one transaction, so the running worker's relay never
    // sees them unpublished: 10,000 dead row versions with entries in `outbox_unpublished`.
    app.db
        .execute_unprepared(
            "INSERT INTO outbox (event_id, org_id, routing_key, envelope, published_at) \
             SELECT gen_random_uuid(), gen_random_uuid(), 'user.created', \
                    jsonb_build_object('payload', repeat('x', 500)), NULL \
             FROM generate_series(1, 10000); \
             UPDATE outbox SET published_at = now()",
        )
        .await
        .expect("events written and published");
    let first = explain("ANALYZE, BUFFERS, COSTS OFF, TIMING OFF").await;
    assert!(
        first.contains("Index Scan using outbox_unpublished") && !first.contains("Bitmap"),
        "the relay's scan is not a plain scan of outbox_unpublished:\n{first}"
    );
    // The 10,000 published rows fill about 800 pages of the table; a scan that visits them
    // reads every one, every time. Passing their marked entries costs the index's leaf pages
    // (about 30). An entry is marked only once no transaction can still see its row, so a
    // transaction of the worker's that was under way may delay it by a drain or two.
    let mut last = String::new();
    for _ in 0..5 {
        last = explain("ANALYZE, BUFFERS, COSTS OFF, TIMING OFF").await;
        if buffers(&last) < 100 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let pages = buffers(&last);
    assert!(
        pages < 100,
        "drains kept reading {pages} pages for no event to publish:\n{last}"
    );
    app.stop().await;
}

/// The people a batch's creates are the manager of are looked up by their keys in the
/// `users_waiting_manager` index however many people wait: an import in reverse order
/// (reports first) has thousands waiting. Joined to the creates' keys without the `ANY`
/// tests, PostgreSQL read every person of the org (a sequential scan, 12 ms at 20,000).
#[tokio::test]
async fn the_reports_waiting_for_new_people_are_found_by_their_keys() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO users (id, org_id, user_name, resource, created_at, updated_at, \
                                manager_ref) \
             SELECT gen_random_uuid(), '{org}', 'p' || i, '{{}}', now(), now(), \
                    CASE WHEN i % 2 = 0 THEN 'm' || i END \
             FROM generate_series(1, 20000) i; \
             ANALYZE users",
            org = t.org_id
        ))
        .await
        .expect("20,000 people, half of them waiting");
    let keys = serde_json::json!([{
        "n": 0, "org_id": t.org_id, "manager": uuid::Uuid::now_v7(),
        "v": "nobody", "lv": "nobody", "exact": false,
    }]);
    let tx = {
        use sea_orm::TransactionTrait;
        app.db.begin().await.expect("begin")
    };
    // The plan a connection caches after its first executions.
    tx.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .expect("generic plans");
    let plan = plan_text(
        tx.query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            format!(
                "EXPLAIN (ANALYZE, BUFFERS) {}",
                worker::apply::hot_sql::LINK_ARRIVALS
            ),
            [Value::from(keys)],
        ))
        .await
        .expect("EXPLAIN"),
    );
    tx.rollback().await.expect("rollback");
    assert!(
        !plan.contains("Seq Scan on users"),
        "reads every person:\n{plan}"
    );
    assert!(
        plan.contains("users_waiting_manager") && plan.contains("lower(manager_ref) = ANY"),
        "does not look the keys up in the index:\n{plan}"
    );
    assert!(
        buffers(&plan) < 100,
        "reads {} pages:\n{plan}",
        buffers(&plan)
    );
    app.stop().await;
}

/// A transaction opened as the relay opens its own: with its lock statement.
async fn as_the_relay(db: &sea_orm::DatabaseConnection) -> sea_orm::DatabaseTransaction {
    use sea_orm::TransactionTrait;
    let tx = db.begin().await.expect("begin");
    tx.query_one(&worker::outbox::sql::try_lock())
        .await
        .expect("the relay's lock statement");
    tx
}

/// An `EXPLAIN`'s rows as one text.
fn plan_text(rows: Vec<sea_orm::QueryResult>) -> String {
    rows.iter()
        .map(|r| r.try_get::<String>("", "QUERY PLAN").expect("a plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The pages a plan's top node read (`Buffers: shared hit=…, read=…`).
fn buffers(plan: &str) -> u64 {
    let line = plan
        .lines()
        .find(|l| l.trim_start().starts_with("Buffers:"))
        .unwrap_or_else(|| panic!("no Buffers line in:\n{plan}"));
    line.split([' ', ','])
        .filter_map(|part| part.split_once('='))
        .filter(|(k, _)| *k == "hit" || *k == "read")
        .map(|(_, v)| v.parse::<u64>().expect("a page count"))
        .sum()
}
