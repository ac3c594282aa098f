//! The admin provisioning API: enabling shows a token once, `GET` shows only a hint,
//! rotating replaces the token at once, disabling revokes it; secrets are stored hashed.

use reqwest::Method;
use serde_json::{Value, json};
use tests::harness::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_rotated_and_stored_hashed() {
    let app = TestApp::spawn().await;

    // Only the operator creates orgs.
    let res = app
        .http
        .post(format!("{}/admin/v1/orgs", app.base))
        .bearer_auth("not-the-operator")
        .json(&json!({"name": "X"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 401);
    assert!(res.json::<Value>().await.expect("JSON")["error"].is_string());

    let (_, key) = app.create_org("Acme").await;
    assert!(key.starts_with("rst_admin_"));
    let status: Value = app
        .admin(Method::GET, "/admin/v1/provisioning", &key, None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["enabled"], false);
    assert!(status["token_hint"].is_null());

    let token = app.enable_provisioning(&key).await;
    assert!(token.starts_with("rst_scim_"));
    let status: Value = app
        .admin(Method::GET, "/admin/v1/provisioning", &key, None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["enabled"], true);
    assert!(
        status["token_hint"]
            .as_str()
            .is_some_and(|h| h.ends_with(&token[token.len() - 4..]))
    );
    assert!(status["token_created_at"].is_string());
    assert!(
        !status.to_string().contains(&token),
        "GET never shows the token"
    );

    // Enabling again does not silently replace the token Okta holds.
    let again: Value = app
        .admin(
            Method::PUT,
            "/admin/v1/provisioning",
            &key,
            Some(json!({"enabled": true})),
        )
        .await
        .json()
        .await
        .expect("JSON");
    assert!(again.get("token").is_none());
    assert_eq!(
        app.scim(&token)
            .request(Method::GET, "/Users")
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );

    // Rotate: the new token works at once, the old one stops.
    let res = app
        .admin(Method::POST, "/admin/v1/provisioning/token", &key, None)
        .await;
    assert_eq!(res.status(), 200);
    let new_token = res.json::<Value>().await.expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(new_token, token);
    assert_eq!(
        app.scim(&new_token)
            .request(Method::GET, "/Users")
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
    assert_eq!(
        app.scim(&token)
            .request(Method::GET, "/Users")
            .send()
            .await
            .expect("GET")
            .status(),
        401
    );

    // Bad admin input is a clear 400 and changes nothing.
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/provisioning",
            &key,
            Some(json!({"enabled": "yes"})),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.expect("JSON")["error"].is_string());

    // No secret is stored in plain text.
    for secret in [&key, &token, &new_token] {
        let n = app
            .count(&format!(
                "SELECT (SELECT count(*) FROM orgs WHERE row_to_json(orgs)::text LIKE '%{secret}%') + \
                        (SELECT count(*) FROM scim_tokens WHERE row_to_json(scim_tokens)::text LIKE '%{secret}%')"
            ))
            .await;
        assert_eq!(n, 0, "a secret is stored in plain text");
    }
    app.stop().await;
}
