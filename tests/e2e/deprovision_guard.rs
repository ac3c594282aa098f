//! The mass-deprovisioning guard, with Okta's deactivation PATCH: past the org's
//! threshold within the window, deactivations and deletions are held (`503` with
//! `Retry-After`, nothing applied) while creates, updates and reactivations go on; an
//! approval lets Okta's retries through, a rejection keeps them refused. Concurrent workers
//! never let more through than the limit.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tests::{
    harness::{Tenant, TestApp},
    okta::{ScimClient, create_user_body},
};

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// Okta's deactivation: `PATCH /Users/{id}` replacing `active` with false.
async fn deactivate(okta: &ScimClient, id: &str) -> reqwest::Response {
    okta.send_json(
        Method::PATCH,
        &format!("/Users/{id}"),
        &patch(json!([{"op": "replace", "value": {"active": false}}])),
    )
    .await
}

async fn people(app: &TestApp, t: &Tenant, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let res = t
            .scim
            .post_user(&create_user_body(
                &app.email(&format!("p{i}")),
                "Pat",
                &format!("No{i}"),
            ))
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("JSON");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    ids
}

async fn active(okta: &ScimClient, id: &str) -> bool {
    let res = okta.get_user(id).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.expect("JSON")["active"] == true
}

/// `POST /admin/v1/deprovision-guard/{decision}` (approve or reject) with `key`.
async fn guard_decision(app: &TestApp, key: &str, decision: &str) -> reqwest::Response {
    let path = format!("/admin/v1/deprovision-guard/{decision}");
    app.admin(Method::POST, &path, key, None).await
}

async fn guard(app: &TestApp, key: &str) -> Value {
    let res = app
        .admin(Method::GET, "/admin/v1/deprovision-guard", key, None)
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

/// 10 % of 40 people, at least 2: four deactivations within the hour pass.
async fn with_guard(app: &TestApp) -> Tenant {
    let t = app.tenant("Acme").await;
    let res = app
        .put_settings(&t.admin_key, json!({"deprovision_guard": {"threshold_percent": 10, "min_count": 2, "window_minutes": 60}}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(
        body["deprovision_guard"],
        json!({"enabled": true, "threshold_percent": 10, "min_count": 2, "window_minutes": 60})
    );
    t
}

async fn assert_held(res: reqwest::Response, word: &str) {
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some(), "Retry-After");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/scim+json"))
    );
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["status"], "503");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(word), "{detail}");
    assert!(detail.contains("Nothing was changed"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_deactivation_waits_for_the_admin() {
    let app = TestApp::spawn().await;
    let t = with_guard(&app).await;
    let okta = &t.scim;
    let ids = people(&app, &t, 40).await;

    // Settings are validated and change nothing when refused.
    let res = app
        .put_settings(
            &t.admin_key,
            json!({"deprovision_guard": {"threshold_percent": 0, "window_minutes": 99999}}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.expect("JSON");
    let msg = err["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("threshold_percent") && msg.contains("window_minutes"),
        "{msg}"
    );

    // Four pass; the fifth trips the guard and is held, as is the sixth.
    for id in &ids[..4] {
        assert_eq!(deactivate(okta, id).await.status(), 200);
    }
    assert_eq!(guard(&app, &t.admin_key).await["state"], "armed");
    assert_held(
        deactivate(okta, &ids[4]).await,
        "held for an admin's approval",
    )
    .await;
    assert_held(
        deactivate(okta, &ids[5]).await,
        "held for an admin's approval",
    )
    .await;
    let res = okta.delete(&format!("/Users/{}", ids[6])).await;
    assert_held(res, "this deletion is held").await;
    for id in &ids[4..7] {
        assert!(active(okta, id).await, "a held change is not applied");
    }
    // Okta retries a held one: still held, counted once.
    assert_held(deactivate(okta, &ids[4]).await, "held").await;
    let g = guard(&app, &t.admin_key).await;
    assert_eq!(g["state"], "tripped");
    assert_eq!(g["held"], 3);
    assert!(g["tripped_at"].is_string());

    // Everything else goes on: a create, an update, a reactivation.
    let res = okta
        .post_user(&create_user_body(&app.email("new"), "New", "Hire"))
        .await;
    assert_eq!(res.status(), 201);
    let res = okta
        .send_json(
            Method::PATCH,
            &format!("/Users/{}", ids[10]),
            &patch(json!([{"op": "replace", "path": "title", "value": "CTO"}])),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = okta
        .send_json(
            Method::PATCH,
            &format!("/Users/{}", ids[0]),
            &patch(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(active(okta, &ids[0]).await);

    // The admin sees it in the activity log and the metrics count the trip.
    let res = app
        .admin(
            Method::GET,
            "/admin/v1/activity?limit=200",
            &t.admin_key,
            None,
        )
        .await;
    let activity: Value = res.json().await.expect("JSON");
    let tripped: Vec<&Value> = activity
        .as_array()
        .expect("a list")
        .iter()
        .filter(|a| a["action"] == "deprovision_guard.tripped")
        .collect();
    assert_eq!(tripped.len(), 1, "one trip, one entry");
    assert_eq!(tripped[0]["detail"]["limit"], 4);
    let metrics = app.metrics_text().await;
    let prefix = format!("prefix=\"{}\"", app.settings.amqp_prefix);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("roster_deprovision_guard_trips_total") && l.contains(&prefix)),
        "the trip is counted"
    );

    // Approval: Okta's retries succeed.
    let res = guard_decision(&app, &t.admin_key, "approve").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("JSON")["state"], "armed");
    assert_eq!(deactivate(okta, &ids[4]).await.status(), 200);
    assert_eq!(deactivate(okta, &ids[5]).await.status(), 200);
    let res = okta.delete(&format!("/Users/{}", ids[6])).await;
    assert_eq!(res.status(), 204);
    assert!(!active(okta, &ids[4]).await);
    let res = guard_decision(&app, &t.admin_key, "approve").await;
    assert_eq!(res.status(), 409, "nothing is held now");

    // The count starts again after the approval: four more pass, then it trips again.
    for id in &ids[11..15] {
        assert_eq!(deactivate(okta, id).await.status(), 200);
    }
    assert_held(deactivate(okta, &ids[15]).await, "held").await;

    // Rejection: the held one, and every other deactivation, stay refused.
    let res = guard_decision(&app, &t.admin_key, "reject").await;
    assert_eq!(res.status(), 200);
    let g: Value = res.json().await.expect("JSON");
    assert_eq!(g["state"], "rejected");
    assert!(g["refused_until"].is_string());
    assert_held(deactivate(okta, &ids[15]).await, "rejected").await;
    assert_held(deactivate(okta, &ids[16]).await, "rejected").await;
    assert!(active(okta, &ids[15]).await && active(okta, &ids[16]).await);
    assert_eq!(
        okta.post_user(&create_user_body(&app.email("later"), "La", "Ter"))
            .await
            .status(),
        201,
        "creates still go on"
    );
    let activity: Value = app
        .admin(
            Method::GET,
            "/admin/v1/activity?limit=200",
            &t.admin_key,
            None,
        )
        .await
        .json()
        .await
        .expect("JSON");
    for action in ["deprovision_guard.approved", "deprovision_guard.rejected"] {
        assert!(
            activity
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["action"] == action)),
            "{action}"
        );
    }

    // Turned off, the guard holds nothing (a rejection included).
    let res = app
        .put_settings(
            &t.admin_key,
            json!({"deprovision_guard": {"enabled": false}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let g = guard(&app, &t.admin_key).await;
    assert_eq!(
        (g["state"].as_str(), g["held"].as_i64()),
        (Some("armed"), Some(0))
    );
    assert_eq!(deactivate(okta, &ids[16]).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deactivations_never_pass_the_limit() {
    let mut app = TestApp::spawn().await;
    let t = with_guard(&app).await;
    let ids = people(&app, &t, 40).await;
    // The deactivations queue up while no worker runs, so the next worker takes them in
    // one prefetch and applies them side by side.
    app.stop_worker().await;
    let calls: Vec<_> = ids[..30]
        .iter()
        .map(|id| {
            let okta = t.scim.clone();
            let id = id.clone();
            tokio::spawn(async move { deactivate(&okta, &id).await.status().as_u16() })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    app.start_worker().await;
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [[200; 4].as_slice(), [503; 26].as_slice()].concat()
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM users WHERE org_id = '{}' AND NOT active",
            t.org_id
        ))
        .await,
        4
    );
    assert_eq!(guard(&app, &t.admin_key).await["held"], 26);
    app.stop().await;
}

/// Once the window has passed, a rejection ends and old deactivations no longer count
/// (the window's passing is simulated by moving the stored times back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_ends_when_the_window_has_passed() {
    let app = TestApp::spawn().await;
    let t = with_guard(&app).await;
    let okta = &t.scim;
    let ids = people(&app, &t, 10).await;
    // 10 % of 10 is 1, at least 2: two pass, the third trips.
    for id in &ids[..2] {
        assert_eq!(deactivate(okta, id).await.status(), 200);
    }
    assert_held(deactivate(okta, &ids[2]).await, "held").await;
    let res = guard_decision(&app, &t.admin_key, "reject").await;
    assert_eq!(res.status(), 200);
    assert_held(deactivate(okta, &ids[2]).await, "rejected").await;

    let moved = app
        .db
        .execute_unprepared(&format!(
            "UPDATE deprovision_guards SET rejected_until = now() - interval '1 second' \
             WHERE org_id = '{0}'; \
             UPDATE deprovisions SET at = now() - interval '61 minutes' WHERE org_id = '{0}'",
            t.org_id
        ))
        .await;
    assert!(moved.is_ok());
    assert_eq!(deactivate(okta, &ids[2]).await.status(), 200, "armed again");
    let g = guard(&app, &t.admin_key).await;
    assert_eq!(
        (g["state"].as_str(), g["held"].as_i64()),
        (Some("armed"), Some(0))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM deprovisions WHERE org_id = '{}'",
            t.org_id
        ))
        .await,
        1,
        "what fell out of the window is gone; the new one counts"
    );
    assert_eq!(deactivate(okta, &ids[3]).await.status(), 200);
    assert_held(deactivate(okta, &ids[4]).await, "held").await;
    app.stop().await;
}
