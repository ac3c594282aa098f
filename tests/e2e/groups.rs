//! Okta Push Groups and Entra group sync: every membership shape in OKTA.md and
//! IDP-NOTES.md, renames, uniqueness, `excludedAttributes=members`, and delete.

use reqwest::Method;
use serde_json::{Value, json};
use tests::{
    harness::TestApp,
    okta::{ScimClient, create_user_body, urlencode},
};

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn member_ids(okta: &ScimClient, group: &str) -> Vec<String> {
    let res = okta
        .request(Method::GET, &format!("/Groups/{group}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    let g: Value = res.json().await.expect("JSON");
    let mut ids: Vec<String> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_push_groups_with_every_membership_shape() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let mut users = Vec::new();
    for local in ["u1", "u2", "u3", "u4"] {
        let res = okta
            .post_user(&create_user_body(&app.email(local), local, "X"))
            .await;
        assert_eq!(res.status(), 201);
        users.push(
            res.json::<Value>().await.expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let (u1, u2, u3, u4) = (&users[0], &users[1], &users[2], &users[3]);

    let lookup = |name: &str| {
        format!(
            "/Groups?filter={}",
            urlencode(&format!("displayName eq \"{name}\""))
        )
    };
    let found: Value = okta
        .request(Method::GET, &lookup("Engineering"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(found["totalResults"], 0);

    let res = okta.send_json(Method::POST, "/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": []})).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("location"));
    let group: Value = res.json().await.expect("JSON");
    let gid = group["id"].as_str().expect("id").to_owned();
    assert_eq!(group["displayName"], "Engineering");
    assert_eq!(group["meta"]["resourceType"], "Group");
    let path = format!("/Groups/{gid}");

    // add with path "members"
    let add = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": u1, "display": "u1"}, {"value": u2, "display": "u2"}, {"value": u3}]}]),
    );
    assert_eq!(
        okta.send_json(Method::PATCH, &path, &add).await.status(),
        204
    );
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u1.clone(), u2.clone(), u3.clone()])
    );

    // A member's read-only `groups` reflects it.
    let user: Value = okta.get_user(u1).await.json().await.expect("JSON");
    assert_eq!(user["groups"][0]["value"], gid.as_str());
    assert_eq!(user["groups"][0]["display"], "Engineering");

    // remove with a members[value eq "…"] filter removes exactly that member
    let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}]));
    assert_eq!(
        okta.send_json(Method::PATCH, &path, &remove).await.status(),
        204
    );
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u1.clone(), u3.clone()])
    );

    // replace of the whole list, then []
    let replace = patch(json!([{"op": "replace", "path": "members", "value": [{"value": u4}]}]));
    assert_eq!(
        okta.send_json(Method::PATCH, &path, &replace)
            .await
            .status(),
        204
    );
    assert_eq!(member_ids(okta, &gid).await, vec![u4.clone()]);
    let empty = patch(json!([{"op": "replace", "path": "members", "value": []}]));
    assert_eq!(
        okta.send_json(Method::PATCH, &path, &empty).await.status(),
        204
    );
    assert!(member_ids(okta, &gid).await.is_empty());

    // rename with {"id","displayName"} in the value, together with membership changes
    let rename = patch(json!([
        {"op": "replace", "value": {"id": gid, "displayName": "Platform"}},
        {"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]},
    ]));
    assert_eq!(
        okta.send_json(Method::PATCH, &path, &rename).await.status(),
        204
    );
    let g: Value = okta
        .request(Method::GET, &path)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(g["displayName"], "Platform");
    assert_eq!(g["id"], gid.as_str());
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u1.clone(), u2.clone()])
    );

    // Entra: Remove with a value list removes only those; Replace displayName by path.
    let entra = patch(json!([
        {"op": "Add", "path": "members", "value": [{"value": u3}]},
        {"op": "Remove", "path": "members", "value": [{"value": u1}]},
        {"op": "Replace", "path": "displayName", "value": "Platform Team"},
    ]));
    assert_eq!(
        okta.send_json(Method::PATCH, &path, &entra).await.status(),
        204
    );
    assert_eq!(
        member_ids(okta, &gid).await,
        sorted(vec![u2.clone(), u3.clone()])
    );

    // Entra's lookup leaves members out.
    let res = okta
        .request(
            Method::GET,
            &format!("{}&excludedAttributes=members", lookup("platform team")),
        )
        .send()
        .await
        .expect("GET");
    let found: Value = res.json().await.expect("JSON");
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    assert_eq!(found["Resources"][0]["displayName"], "Platform Team");

    // PUT replaces name and members.
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": gid, "displayName": "Platform Team", "members": [{"value": u4}]});
    let res = okta.send_json(Method::PUT, &path, &put).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["members"][0]["value"],
        u4.as_str()
    );

    // A second group with the same name in another case is a uniqueness conflict.
    let res = okta
        .send_json(
            Method::POST,
            "/Groups",
            &json!({"displayName": "PLATFORM TEAM"}),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["scimType"],
        "uniqueness"
    );

    // Unknown members are refused and change nothing.
    let bad = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": uuid::Uuid::new_v4().to_string()}]}]),
    );
    let res = okta.send_json(Method::PATCH, &path, &bad).await;
    assert_eq!(res.status(), 400);
    assert_eq!(member_ids(okta, &gid).await, vec![u4.clone()]);

    // Deleting a member user drops the membership; deleting the group is 204.
    assert_eq!(
        okta.request(Method::DELETE, &format!("/Users/{u4}"))
            .send()
            .await
            .expect("DELETE")
            .status(),
        204
    );
    assert!(member_ids(okta, &gid).await.is_empty());
    assert_eq!(
        okta.request(Method::DELETE, &path)
            .send()
            .await
            .expect("DELETE")
            .status(),
        204
    );
    assert_eq!(
        okta.request(Method::GET, &path)
            .send()
            .await
            .expect("GET")
            .status(),
        404
    );
    let user: Value = okta.get_user(u2).await.json().await.expect("JSON");
    assert_eq!(user["groups"], json!([]));

    let kinds = app
        .count("SELECT count(*) FROM outbox WHERE routing_key IN ('group.created', 'group.updated', 'group.deleted')")
        .await;
    assert_eq!(
        kinds,
        1 + 7 + 1,
        "one event per change: create, 7 updates, delete"
    );
    app.stop().await;
}
