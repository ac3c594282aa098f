//! The admin provisioning API: enabling shows a token once, `GET` shows only a hint,
//! rotating replaces the token at once, disabling revokes it; secrets are stored hashed.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::harness::TestApp;

/// `GET /admin/v1/provisioning` with `key`, its JSON.
async fn provisioning(app: &TestApp, key: &str) -> Value {
    app.admin(Method::GET, "/admin/v1/provisioning", key, None)
        .await
        .json()
        .await
        .expect("JSON")
}

/// The status of Okta's `GET /Users` with the SCIM token `token`.
async fn users_status(app: &TestApp, token: &str) -> reqwest::StatusCode {
    app.scim(token).get("/Users").await.status()
}

/// The new secret `field` of a `200` answer.
async fn issued(res: reqwest::Response, field: &str) -> String {
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.expect("JSON")[field]
        .as_str()
        .expect(field)
        .to_owned()
}

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
    let status: Value = provisioning(&app, &key).await;
    assert_eq!(status["enabled"], false);
    assert!(status["token_hint"].is_null());

    let token = app.enable_provisioning(&key).await;
    assert!(token.starts_with("rst_scim_"));
    let status: Value = provisioning(&app, &key).await;
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
    assert_eq!(users_status(&app, &token).await, 200);

    // Rotate: the new token works at once, the old one stops.
    let res = app
        .admin(Method::POST, "/admin/v1/provisioning/token", &key, None)
        .await;
    let new_token = issued(res, "token").await;
    assert_ne!(new_token, token);
    assert_eq!(users_status(&app, &new_token).await, 200);
    assert_eq!(users_status(&app, &token).await, 401);

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

/// A token ended by a change made elsewhere (through another ingress, or by an operator
/// in psql) is refused by an ingress that had just accepted it, at once: it had kept the
/// token (`ingress::tokens`, up to `KEEP`, shown here by a change nobody announces), and
/// forgets it when PostgreSQL announces the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_ended_elsewhere_is_refused_by_every_ingress_at_once() {
    let mut app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let other = app.start_ingress().await;
    // Both ingresses keep tokens once they hear PostgreSQL's announcements.
    for base in [&app.base, &other] {
        let start = Instant::now();
        loop {
            let ready: Value = app
                .http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .expect("readyz")
                .json()
                .await
                .expect("JSON");
            if ready["scim_tokens_kept"] == true {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{base}: {ready}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let via = |base: &str, token: &str| {
        let mut client = app.scim(token);
        client.base = base.to_owned();
        client
    };
    let accepted_by_both = |token: String| {
        let (first, second) = (via(&app.base, &token), via(&other, &token));
        async move {
            for _ in 0..2 {
                assert_eq!(first.get("/Users").await.status(), 200);
                assert_eq!(second.get("/Users").await.status(), 200);
            }
        }
    };
    // Refused by the other ingress within `within`; accepted until then.
    let refused_within = |token: String, within: Duration| {
        let client = via(&other, &token);
        async move {
            let start = Instant::now();
            loop {
                let status = client.get("/Users").await.status();
                if status == 401 {
                    return start.elapsed();
                }
                assert_eq!(status, 200);
                assert!(
                    start.elapsed() < within,
                    "the other ingress still accepted the token after {:?}",
                    start.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Well inside the time a kept token is trusted: only an announcement explains it.
    let at_once = ingress::tokens::KEEP / 4;

    // An operator revokes the token in psql.
    accepted_by_both(acme.scim.token.clone()).await;
    app.db
        .execute_unprepared("UPDATE scim_tokens SET revoked_at = now()")
        .await
        .expect("revoking in SQL");
    refused_within(acme.scim.token.clone(), at_once).await;

    // The same change with its trigger disabled is not announced: the other ingress
    // accepts the token it kept until it lapses.
    let rotate = || async {
        let res = app
            .admin(
                Method::POST,
                "/admin/v1/provisioning/token",
                &acme.admin_key,
                None,
            )
            .await;
        issued(res, "token").await
    };
    let token = rotate().await;
    accepted_by_both(token.clone()).await;
    app.db
        .execute_unprepared(
            "ALTER TABLE scim_tokens DISABLE TRIGGER scim_tokens_changed; \
             UPDATE scim_tokens SET revoked_at = now() WHERE revoked_at IS NULL",
        )
        .await
        .expect("revoking unannounced");
    let took = refused_within(token, ingress::tokens::KEEP + Duration::from_secs(1)).await;
    assert!(
        took > Duration::from_millis(200),
        "refused after {took:?}: nothing was kept"
    );
    app.db
        .execute_unprepared("ALTER TABLE scim_tokens ENABLE TRIGGER scim_tokens_changed")
        .await
        .expect("enabling the trigger");

    // Provisioning switched off through the first ingress: refused there from its answer
    // on, and by the other at once.
    let token = rotate().await;
    accepted_by_both(token.clone()).await;
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/provisioning",
            &acme.admin_key,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        users_status(&app, &token).await,
        401,
        "the ingress that relayed it"
    );
    refused_within(token, at_once).await;
    app.stop().await;
}

/// The admin key can be replaced — by the admin, or by the operator when it leaked: the new
/// key works at once, the old one is `401` on the next request, nothing else changes, and
/// another org is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_are_rotated_by_the_admin_or_reset_by_the_operator() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let globex = app.tenant("Globex").await;
    let settings = |key: String| {
        let app = &app;
        async move {
            app.admin(Method::GET, "/admin/v1/settings", &key, None)
                .await
                .status()
        }
    };

    // The admin rotates their own key.
    let res = app
        .admin(Method::POST, "/admin/v1/admin-key", &acme.admin_key, None)
        .await;
    let rotated = issued(res, "admin_key").await;
    tests::harness::record_secret(&rotated);
    assert!(rotated.starts_with("rst_admin_") && rotated != acme.admin_key);
    assert_eq!(settings(acme.admin_key.clone()).await, 401, "the old key");
    assert_eq!(settings(rotated.clone()).await, 200, "the new key");
    // Okta's SCIM token is not the admin key: it keeps working.
    let found = acme.scim.find_by_user_name("nobody@example.com").await;
    assert_eq!(found["totalResults"], 0);

    // The operator resets it (a leaked key); only the operator may.
    let reset_path = format!("/admin/v1/orgs/{}/admin-key", acme.org_id);
    let res = app.admin(Method::POST, &reset_path, &rotated, None).await;
    assert_eq!(res.status(), 401, "an admin key is not the operator token");
    let res = app
        .admin(Method::POST, &reset_path, &app.operator_token, None)
        .await;
    let reset = issued(res, "admin_key").await;
    tests::harness::record_secret(&reset);
    assert_eq!(settings(rotated).await, 401);
    assert_eq!(settings(reset.clone()).await, 200);
    let unknown = format!("/admin/v1/orgs/{}/admin-key", uuid::Uuid::now_v7());
    let res = app
        .admin(Method::POST, &unknown, &app.operator_token, None)
        .await;
    assert_eq!(res.status(), 404);

    // Stored as a digest only; Globex untouched; both changes in Acme's activity log.
    let plain = app
        .count(&format!(
            "SELECT count(*) FROM orgs WHERE admin_key_hash = '{reset}'"
        ))
        .await;
    assert_eq!(plain, 0);
    assert_eq!(settings(globex.admin_key.clone()).await, 200);
    let activity: Value = app
        .admin(Method::GET, "/admin/v1/activity?limit=10", &reset, None)
        .await
        .json()
        .await
        .expect("JSON");
    let rotations: Vec<&str> = activity
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["action"] == "admin_key.rotated")
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(rotations, ["operator", "admin"], "newest first");
    assert!(!activity.to_string().contains("rst_admin_"));
    app.stop().await;
}
