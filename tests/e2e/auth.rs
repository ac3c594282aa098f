//! Bad credentials and bad input get SCIM errors and change nothing.

use reqwest::Method;
use serde_json::Value;
use tests::{harness::TestApp, okta::create_user_body};

async fn assert_scim_error(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert!(
        ct.as_deref()
            .is_some_and(|c| c.starts_with("application/scim+json")),
        "content type {ct:?}"
    );
    let body: Value = res.json().await.expect("SCIM error JSON");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], status.to_string());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_missing_and_revoked_tokens_are_401() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let body = create_user_body(&app.email("a"), "A", "B");

    let wrong = app.scim("rst_scim_not-a-real-token");
    assert_scim_error(wrong.post_user(&body).await, 401).await;
    let res = wrong
        .request(Method::GET, "/Users")
        .send()
        .await
        .expect("GET");
    assert!(res.headers().contains_key("www-authenticate"));
    assert_scim_error(res, 401).await;

    let res = app
        .http
        .get(format!("{}/scim/v2/Users", app.base))
        .send()
        .await
        .expect("GET");
    assert_scim_error(res, 401).await;

    // Disabling provisioning revokes the token at once.
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/provisioning",
            &acme.admin_key,
            Some(serde_json::json!({"enabled": false})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_scim_error(acme.scim.post_user(&body).await, 401).await;
    assert_scim_error(
        acme.scim
            .request(Method::GET, "/Users")
            .send()
            .await
            .expect("GET"),
        401,
    )
    .await;

    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_bad_bodies_are_scim_errors_that_store_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;

    assert_scim_error(okta.get_user(&uuid::Uuid::new_v4().to_string()).await, 404).await;
    assert_scim_error(okta.get_user("not-a-uuid").await, 404).await;
    assert_scim_error(
        okta.request(Method::GET, "/Nope")
            .send()
            .await
            .expect("GET"),
        404,
    )
    .await;
    assert_scim_error(
        okta.request(Method::DELETE, "/Users")
            .send()
            .await
            .expect("DELETE"),
        405,
    )
    .await;

    let malformed = okta
        .post_raw("/Users", "application/scim+json", "{\"userName\": ")
        .await;
    let err = assert_scim_error(malformed, 400).await;
    assert_eq!(err["scimType"], "invalidSyntax");

    let no_user_name = okta
        .post_user(&serde_json::json!({"name": {"givenName": "x"}}))
        .await;
    let err = assert_scim_error(no_user_name, 400).await;
    assert_eq!(err["scimType"], "invalidValue");

    let wrong_type = okta.post_raw("/Users", "text/plain", "hello").await;
    assert_scim_error(wrong_type, 415).await;

    let big = format!("{{\"userName\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // The server answers 413 without reading the body and drops the connection, so this
    // request gets a client of its own rather than poisoning the shared pool.
    let mut lone = okta.clone();
    lone.http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let too_big = lone.post_raw("/Users", "application/scim+json", big).await;
    assert_scim_error(too_big, 413).await;

    let bad_filter = okta
        .request(Method::GET, "/Users")
        .query(&[("filter", "noSuchAttribute eq \"x\"")])
        .send()
        .await
        .expect("GET");
    let err = assert_scim_error(bad_filter, 400).await;
    assert_eq!(err["scimType"], "invalidFilter");

    // Okta's own test tools send application/json; that works.
    let body = create_user_body(&app.email("json"), "J", "S").to_string();
    let res = okta.post_raw("/Users", "application/json", body).await;
    assert_eq!(res.status(), 201);

    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        1,
        "only the valid create stored"
    );
    app.stop().await;
}
