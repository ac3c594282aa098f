//! A command queued while no worker runs and answered 503 with Retry-After at its deadline
//! is never applied (docs/reliability.md, "Every answer is the truth"): the worker that
//! starts later finds it expired, and Okta's retry creates the user, once, with one invite.

use serde_json::Value;
use std::time::Duration;
use tests::{
    harness::{Options, TestApp},
    okta::create_user_body,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_in_the_queue_for_a_worker() {
    // The org needs a worker to exist; create it, then stop that worker.
    let mut app = TestApp::spawn_with(Options {
        worker: false,
        command_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    // Nothing applies admin commands either, so the org is created by a short-lived worker.
    app.start_worker().await;
    let acme = app.tenant("Acme").await;
    app.stop_worker().await;

    let user_name = app.email("queued");
    let res = acme
        .scim
        .post_user(&create_user_body(&user_name, "Q", "D"))
        .await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/scim+json")
    );
    let err: Value = res.json().await.expect("SCIM error JSON");
    assert_eq!(err["status"], "503");
    app.assert_none("SELECT count(*) FROM users").await;

    app.start_worker().await;
    app.wait_count(
        "SELECT count(*) FROM audit_log WHERE action = 'command.expired'",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        0,
        "a create answered 503 was applied"
    );

    // Okta retries: its filter finds nobody, and it creates the user.
    let found = acme.scim.find_by_user_name(&user_name).await;
    assert_eq!(found["totalResults"], 0);
    acme.scim.create_user_201(&user_name, "Q", "D").await;
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    assert_eq!(
        app.maildev
            .wait_for(&user_name, 1, Duration::from_secs(20))
            .await
            .len(),
        1
    );
    app.stop().await;
}
