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
    let plan = app
        .db
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            format!("EXPLAIN {}", worker::apply::hot_sql::STORE_REPLIES),
            [
                Value::from(serde_json::Value::Array(rows)),
                common::db::uuid_array(&ids),
            ],
        ))
        .await
        .expect("EXPLAIN")
        .iter()
        .map(|r| r.try_get::<String>("", "QUERY PLAN").expect("a plan line"))
        .collect::<Vec<_>>()
        .join("\n");
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
