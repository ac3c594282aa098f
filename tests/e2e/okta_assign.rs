//! Okta's assign flow (OKTA.md "Calls, in the order Okta makes them").

use serde_json::Value;
use tests::{
    harness::TestApp,
    okta::{PASSWORD_PLACEHOLDER, create_user_body},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_assigns_a_user_and_finds_it_again() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;

    // Test connection.
    let res = okta.get("/Users?startIndex=1&count=2").await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.expect("JSON");
    assert_eq!(list["totalResults"], 0);
    assert_eq!(
        list["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );

    let user_name = app.email("jane.doe");
    let found = okta.find_by_user_name(&user_name).await;
    assert_eq!(found["totalResults"], 0);
    assert_eq!(found["itemsPerPage"], 0);

    let body = create_user_body(&user_name, "Jane", "Doe");
    let res = okta.post_user(&body).await;
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/scim+json"),
        "SCIM content type"
    );
    let location = res
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .expect("str")
        .to_owned();
    let etag = res
        .headers()
        .get("etag")
        .expect("ETag")
        .to_str()
        .expect("str")
        .to_owned();
    let created: Value = res.json().await.expect("JSON");
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(!id.is_empty());
    assert_eq!(created["userName"], user_name.as_str());
    assert_eq!(created["active"], true);
    assert_eq!(created["name"]["givenName"], "Jane");
    assert_eq!(created["externalId"], body["externalId"]);
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["meta"]["version"], etag.as_str());
    assert_eq!(location, format!("{}/scim/v2/Users/{id}", app.base));
    assert!(
        created.get("password").is_none(),
        "password returned: {created}"
    );
    assert!(!created.to_string().contains(PASSWORD_PLACEHOLDER));

    // The password is not stored anywhere in the user's row.
    let stored = app
        .count(&format!(
            "SELECT count(*) FROM users WHERE id = '{id}' AND row_to_json(users)::text LIKE '%{PASSWORD_PLACEHOLDER}%'"
        ))
        .await;
    assert_eq!(stored, 0, "the password placeholder was stored");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM users WHERE id = '{id}'"))
            .await,
        1
    );

    // GET right after the write sees it.
    let res = okta.get_user(&id).await;
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.expect("JSON");
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["userName"], user_name.as_str());
    assert_eq!(got["emails"][0]["value"], user_name.as_str());
    assert!(got.get("password").is_none());

    // The filter finds exactly it, whatever the case of the userName.
    for name in [user_name.clone(), user_name.to_uppercase()] {
        let found = okta.find_by_user_name(&name).await;
        assert_eq!(found["totalResults"], 1, "filter on {name}");
        assert_eq!(found["itemsPerPage"], 1);
        assert_eq!(found["startIndex"], 1);
        assert_eq!(found["Resources"][0]["id"], id.as_str());
    }

    // The create was applied once: one audit entry, one event.
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'user.created'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE routing_key = 'user.created'")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_differing_only_in_case_is_409_uniqueness() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let user_name = app.email("john.smith");
    let res = acme
        .scim
        .post_user(&create_user_body(&user_name, "John", "Smith"))
        .await;
    assert_eq!(res.status(), 201);

    let res = acme
        .scim
        .post_user(&create_user_body(
            &user_name.to_uppercase(),
            "John",
            "Smith",
        ))
        .await;
    assert_eq!(res.status(), 409);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/scim+json")
    );
    let err: Value = res.json().await.expect("JSON");
    assert_eq!(
        err["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(err["status"], "409");
    assert_eq!(err["scimType"], "uniqueness");
    assert!(err["detail"].as_str().is_some_and(|d| !d.is_empty()));

    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        1,
        "a 409 emits no event"
    );
    app.stop().await;
}
