//! A command accepted while no worker runs is applied once a worker starts: the HTTP call
//! answered 503 with Retry-After, the user then exists exactly once, and Okta's retry
//! meets it.

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
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);

    app.start_worker().await;
    let n = app
        .wait_count("SELECT count(*) FROM users", 1, Duration::from_secs(20))
        .await;
    assert_eq!(n, 1, "the queued create was applied");

    // Okta retries: its filter finds the user, and a blind re-POST is a 409.
    let found = acme.scim.find_by_user_name(&user_name).await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(
        acme.scim
            .post_user(&create_user_body(&user_name, "Q", "D"))
            .await
            .status(),
        409
    );
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
