//! The directory side of provisioning: mapping policies decide what Okta writes, employee
//! edits respect "lock synced fields", deactivation removes people from the directory, and
//! the activity log shows what happened.

use reqwest::Method;
use serde_json::{Value, json};
use tests::{harness::TestApp, okta::create_user_body};

const ROSTER: &str = "urn:ietf:params:scim:schemas:extension:roster:2.0:User";

async fn ok_json(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.expect("JSON");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// `GET path` with `key`, which must succeed; its JSON.
async fn get_ok(app: &TestApp, path: &str, key: &str) -> Value {
    ok_json(app.admin(Method::GET, path, key, None).await).await
}

/// The string `field` of each object in the JSON array `list`.
fn strings<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|o| o[field].as_str().expect(field))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_policies_decide_what_okta_writes() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let key = &acme.admin_key;

    let defaults = get_ok(&app, "/admin/v1/mappings", key).await;
    let fields: Vec<&str> = strings(&defaults, "field");
    for f in [
        "first_name",
        "last_name",
        "preferred_name",
        "email",
        "job_title",
        "department",
        "phone",
        "location",
        "manager",
        "employee_number",
        "start_date",
    ] {
        assert!(fields.contains(&f), "default mapping has {f}");
    }

    // Unknown fields and attributes are a 400 naming them, and change nothing.
    let bad = json!([{"field": "shoe_size", "scim_attribute": "title", "policy": "overwrite"},
                     {"field": "job_title", "scim_attribute": "nonsense", "policy": "overwrite"}]);
    let res = app
        .admin(Method::PUT, "/admin/v1/mappings", key, Some(bad))
        .await;
    assert_eq!(res.status(), 400);
    let err = res.json::<Value>().await.expect("JSON")["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        err.contains("shoe_size") && err.contains("nonsense"),
        "{err}"
    );
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/mappings",
            key,
            Some(json!([{"field": "job_title", "scim_attribute": "title", "policy": "sometimes"}])),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(get_ok(&app, "/admin/v1/mappings", key).await, defaults);

    let mapping = json!([
        {"field": "first_name", "scim_attribute": "name.givenName", "policy": "overwrite"},
        {"field": "job_title", "scim_attribute": "title", "policy": "create_only"},
        {"field": "preferred_name", "scim_attribute": "nickName", "policy": "ignore"},
        {"field": "custom.shirt_size", "scim_attribute": format!("{ROSTER}:shirtSize"), "policy": "overwrite"},
    ]);
    let saved = ok_json(
        app.admin(
            Method::PUT,
            "/admin/v1/mappings",
            key,
            Some(mapping.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(saved, mapping);

    let mut body = create_user_body(&app.email("ann"), "Ann", "Lee");
    body["title"] = json!("Engineer");
    body["nickName"] = json!("Annie");
    body[ROSTER] = json!({"shirtSize": "M"});
    let created = ok_json(acme.scim.post_user(&body).await).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let person = get_ok(&app, &format!("/api/v1/people/{id}"), key).await;
    assert_eq!(person["fields"]["job_title"], "Engineer");
    assert_eq!(person["fields"]["first_name"], "Ann");
    assert_eq!(person["fields"]["custom.shirt_size"], "M");
    assert!(
        person["fields"].get("preferred_name").is_none(),
        "an ignored field is never written"
    );

    // Okta's profile push: GET, change, PUT.
    let mut current = ok_json(acme.scim.get_user(&id).await).await;
    current["title"] = json!("Manager");
    current["name"]["givenName"] = json!("Anna");
    current[ROSTER]["shirtSize"] = json!("L");
    current["nickName"] = json!("A");
    let put = ok_json(
        acme.scim
            .send_json(Method::PUT, &format!("/Users/{id}"), &current)
            .await,
    )
    .await;
    assert_eq!(
        put["title"], "Engineer",
        "SCIM returns the stored value of a create-only field"
    );
    let person = get_ok(&app, &format!("/api/v1/people/{id}"), key).await;
    assert_eq!(
        person["fields"]["job_title"], "Engineer",
        "create_only keeps its first value"
    );
    assert_eq!(person["fields"]["first_name"], "Anna");
    assert_eq!(person["fields"]["custom.shirt_size"], "L");
    assert!(person["fields"].get("preferred_name").is_none());
    assert_eq!(
        ok_json(acme.scim.get_user(&id).await).await["nickName"],
        "A",
        "ignored attributes are kept for Okta"
    );

    // A mapping change applies to the next provisioning call, not retroactively.
    let mut m = mapping.clone();
    m[1]["policy"] = json!("overwrite");
    ok_json(
        app.admin(Method::PUT, "/admin/v1/mappings", key, Some(m))
            .await,
    )
    .await;
    let person = get_ok(&app, &format!("/api/v1/people/{id}"), key).await;
    assert_eq!(person["fields"]["job_title"], "Engineer");
    let mut current = ok_json(acme.scim.get_user(&id).await).await;
    current["title"] = json!("Director");
    ok_json(
        acme.scim
            .send_json(Method::PUT, &format!("/Users/{id}"), &current)
            .await,
    )
    .await;
    let person = get_ok(&app, &format!("/api/v1/people/{id}"), key).await;
    assert_eq!(person["fields"]["job_title"], "Director");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn employee_edits_respect_the_lock_and_deactivation_hides_people() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let key = &acme.admin_key;
    let mut body = create_user_body(&app.email("bo"), "Bo", "Kim");
    body["title"] = json!("Analyst");
    let id = ok_json(acme.scim.post_user(&body).await).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let person_path = format!("/api/v1/people/{id}");

    let settings = ok_json(
        app.put_settings(key, json!({"lock_synced_fields": true}))
            .await,
    )
    .await;
    assert_eq!(settings["lock_synced_fields"], true);
    // job_title is overwritten by Okta (default mapping): locked.
    let res = app
        .admin(
            Method::PATCH,
            &person_path,
            key,
            Some(json!({"fields": {"job_title": "Boss"}})),
        )
        .await;
    assert_eq!(res.status(), 409);
    let err = res.json::<Value>().await.expect("JSON")["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(err.contains("Job title"), "{err}");
    // preferred_name is create-only and custom fields are unmapped: accepted.
    let edited = ok_json(
        app.admin(
            Method::PATCH,
            &person_path,
            key,
            Some(json!({"fields": {"preferred_name": "Bobo", "custom.pronouns": "they/them"}})),
        )
        .await,
    )
    .await;
    assert_eq!(edited["fields"]["preferred_name"], "Bobo");
    assert_eq!(edited["fields"]["custom.pronouns"], "they/them");
    assert_eq!(
        edited["fields"]["job_title"], "Analyst",
        "the refused edit changed nothing"
    );
    assert_eq!(
        ok_json(acme.scim.get_user(&id).await).await["nickName"],
        "Bobo",
        "a mapped edit shows over SCIM"
    );
    let res = app
        .admin(
            Method::PATCH,
            &person_path,
            key,
            Some(json!({"fields": {"shoe_size": "9"}})),
        )
        .await;
    assert_eq!(res.status(), 400);

    // With the lock off, the employee may edit a synced field.
    ok_json(
        app.put_settings(key, json!({"lock_synced_fields": false}))
            .await,
    )
    .await;
    let edited = ok_json(
        app.admin(
            Method::PATCH,
            &person_path,
            key,
            Some(json!({"fields": {"job_title": "Lead"}})),
        )
        .await,
    )
    .await;
    assert_eq!(edited["fields"]["job_title"], "Lead");
    assert_eq!(
        ok_json(acme.scim.get_user(&id).await).await["title"],
        "Lead"
    );

    // Deactivation removes the person from the directory; reactivation restores them.
    let list = |inactive: bool| {
        let path = if inactive {
            "/api/v1/people?include_inactive=true"
        } else {
            "/api/v1/people"
        };
        app.admin(Method::GET, path, key, None)
    };
    assert_eq!(
        ok_json(list(false).await).await.as_array().map(Vec::len),
        Some(1)
    );
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]});
    ok_json(
        acme.scim
            .send_json(Method::PATCH, &format!("/Users/{id}"), &off)
            .await,
    )
    .await;
    assert_eq!(ok_json(list(false).await).await, json!([]));
    let all = ok_json(list(true).await).await;
    assert_eq!(all[0]["active"], false);
    let on = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": true}}]});
    ok_json(
        acme.scim
            .send_json(Method::PATCH, &format!("/Users/{id}"), &on)
            .await,
    )
    .await;
    assert_eq!(
        ok_json(list(false).await).await.as_array().map(Vec::len),
        Some(1)
    );

    // Activity: newest first, paged.
    let activity = get_ok(&app, "/admin/v1/activity?limit=3", key).await;
    let actions: Vec<&str> = strings(&activity, "action");
    assert_eq!(
        actions,
        ["user.reactivated", "user.deactivated", "person.updated"]
    );
    assert_eq!(activity[0]["actor"], "scim");
    assert!(activity[0]["correlation_id"].is_string());
    let before = activity[2]["id"].as_i64().expect("id");
    let older = ok_json(
        app.admin(
            Method::GET,
            &format!("/admin/v1/activity?limit=100&before={before}"),
            key,
            None,
        )
        .await,
    )
    .await;
    let older: Vec<&str> = strings(&older, "action");
    assert!(
        older.contains(&"user.created") && older.contains(&"provisioning.enabled"),
        "{older:?}"
    );
    assert!(!older.contains(&"user.reactivated"));

    // Another org's people and activity are out of reach.
    let other = app.tenant("Other").await;
    assert_eq!(
        app.admin(Method::GET, &person_path, &other.admin_key, None)
            .await
            .status(),
        404
    );
    let res = app
        .admin(
            Method::PATCH,
            &person_path,
            &other.admin_key,
            Some(json!({"fields": {"preferred_name": "x"}})),
        )
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        ok_json(
            app.admin(Method::GET, "/api/v1/people", &other.admin_key, None)
                .await
        )
        .await,
        json!([])
    );
    app.stop().await;
}
