//! Discovery (RFC 7644 §4): what `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas` tell a SCIM client, behind the SCIM token like every SCIM call.

use serde_json::{Value, json};
use tests::{harness::TestApp, okta::ScimClient};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ROSTER: &str = "urn:ietf:params:scim:schemas:extension:roster:2.0:User";
const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// GETs `path`, expects `status` as `application/scim+json`, returns the body.
async fn get(scim: &ScimClient, path: &str, status: u16) -> Value {
    let res = scim.get(path).await;
    assert_eq!(res.status().as_u16(), status, "GET {path}");
    let ct = res.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_owned();
    assert!(ct.starts_with("application/scim+json"), "{path}: {ct}");
    res.json().await.expect("JSON")
}

fn assert_scim_error(body: &Value, status: &str) {
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(body["status"], status);
}

/// A ListResponse of `n` resources on one page; returns the resources.
fn assert_list(body: &Value, n: usize) -> &Vec<Value> {
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(body["totalResults"], n);
    assert_eq!(body["itemsPerPage"], n);
    assert_eq!(body["startIndex"], 1);
    let resources = body["Resources"].as_array().expect("Resources");
    assert_eq!(resources.len(), n);
    resources
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_provider_config_says_what_roster_supports() {
    let app = TestApp::spawn().await;
    let scim = app.tenant("Acme").await.scim;

    let spc = get(&scim, "/ServiceProviderConfig", 200).await;
    assert_eq!(
        spc["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(spc["patch"], json!({"supported": true}));
    assert_eq!(
        spc["bulk"],
        json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0})
    );
    assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 200}));
    assert_eq!(spc["changePassword"], json!({"supported": false}));
    assert_eq!(spc["sort"], json!({"supported": true}));
    assert_eq!(spc["etag"], json!({"supported": true}));
    let schemes = spc["authenticationSchemes"].as_array().expect("schemes");
    assert_eq!(schemes.len(), 1);
    assert_eq!(schemes[0]["type"], "oauthbearertoken");
    assert_eq!(schemes[0]["name"], "OAuth Bearer Token");
    assert_eq!(schemes[0]["primary"], true);
    assert!(
        schemes[0]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(spc["meta"]["resourceType"], "ServiceProviderConfig");
    assert_eq!(
        spc["meta"]["location"],
        format!("{}/scim/v2/ServiceProviderConfig", app.base)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_types_are_user_and_group() {
    let app = TestApp::spawn().await;
    let scim = app.tenant("Acme").await.scim;

    let list = get(&scim, "/ResourceTypes", 200).await;
    let types = assert_list(&list, 2);
    let ids: Vec<&str> = types.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, ["User", "Group"]);

    let user = get(&scim, "/ResourceTypes/User", 200).await;
    assert_eq!(user, types[0], "the list and the single GET agree");
    assert_eq!(
        user["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"])
    );
    assert_eq!(user["name"], "User");
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], CORE_USER);
    assert_eq!(
        user["schemaExtensions"],
        json!([
            {"schema": ENTERPRISE, "required": false},
            {"schema": ROSTER, "required": false},
        ])
    );
    assert_eq!(user["meta"]["resourceType"], "ResourceType");
    assert_eq!(
        user["meta"]["location"],
        format!("{}/scim/v2/ResourceTypes/User", app.base)
    );

    let group = get(&scim, "/ResourceTypes/Group", 200).await;
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schema"], CORE_GROUP);
    assert!(
        group["schemaExtensions"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{group}"
    );

    let missing = get(&scim, "/ResourceTypes/Device", 404).await;
    assert_scim_error(&missing, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_list_every_schema_and_serve_each_by_urn() {
    let app = TestApp::spawn().await;
    let scim = app.tenant("Acme").await.scim;

    let list = get(&scim, "/Schemas", 200).await;
    let schemas = assert_list(&list, 4);
    let ids: Vec<&str> = schemas.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [CORE_USER, ENTERPRISE, ROSTER, CORE_GROUP]);

    for listed in schemas {
        let id = listed["id"].as_str().expect("id");
        let one = get(&scim, &format!("/Schemas/{id}"), 200).await;
        assert_eq!(&one, listed, "{id}: the list and the single GET agree");
        assert_eq!(
            one["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"])
        );
        assert_eq!(one["meta"]["resourceType"], "Schema");
        assert_eq!(
            one["meta"]["location"],
            format!("{}/scim/v2/Schemas/{id}", app.base)
        );
        assert!(
            one["attributes"].as_array().is_some_and(|a| !a.is_empty()),
            "{id} has attributes"
        );
    }
    let user = &schemas[0];
    let user_name = user["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "userName"))
        .expect("userName");
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);

    let missing = get(&scim, "/Schemas/urn:example:params:scim:schemas:nope", 404).await;
    assert_scim_error(&missing, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_needs_the_scim_token() {
    let app = TestApp::spawn().await;
    let _acme = app.tenant("Acme").await;
    let wrong = app.scim("rst_scim_not-a-real-token");
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        &format!("/Schemas/{CORE_USER}"),
    ] {
        let body = get(&wrong, path, 401).await;
        assert_scim_error(&body, "401");
        let res = app
            .http
            .get(format!("{}/scim/v2{path}", app.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 401, "{path} without a token");
        assert!(res.headers().contains_key("www-authenticate"));
    }
}
