//! Tenants are walled off: one org's token never sees another org's users.

use reqwest::Method;
use serde_json::Value;
use tests::{harness::TestApp, okta::create_user_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_a_never_sees_org_b() {
    let app = TestApp::spawn().await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;

    let b_name = app.email("b.person");
    let res = b
        .scim
        .post_user(&create_user_body(&b_name, "B", "Person"))
        .await;
    assert_eq!(res.status(), 201);
    let b_id = res.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let a_name = app.email("a.person");
    assert_eq!(
        a.scim
            .post_user(&create_user_body(&a_name, "A", "Person"))
            .await
            .status(),
        201
    );

    assert_eq!(a.scim.get_user(&b_id).await.status(), 404);
    assert_eq!(a.scim.find_by_user_name(&b_name).await["totalResults"], 0);
    let list: Value = a
        .scim
        .request(Method::GET, "/Users?startIndex=1&count=100")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["userName"], a_name.as_str());

    // The same userName may exist in both orgs.
    assert_eq!(
        a.scim
            .post_user(&create_user_body(&b_name, "Other", "One"))
            .await
            .status(),
        201
    );
    assert_eq!(b.scim.get_user(&b_id).await.status(), 200);

    // Admin keys are per org too.
    let res = app
        .admin(Method::GET, "/admin/v1/provisioning", &a.admin_key, None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.admin(
            Method::GET,
            "/admin/v1/provisioning",
            "rst_admin_wrong",
            None
        )
        .await
        .status(),
        401
    );
    app.stop().await;
}
