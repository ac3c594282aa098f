//! Queries as Okta's import and other clients make them: paging through every user once,
//! filters translated to SQL, sorting, attribute selection, and POST /.search.

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use tests::{
    harness::TestApp,
    okta::{create_user_body, urlencode},
};

async fn get(okta: &tests::okta::ScimClient, path_and_query: &str) -> Value {
    let res = okta.get(path_and_query).await;
    assert_eq!(res.status(), 200, "GET {path_and_query}");
    res.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_import_pages_through_every_user_exactly_once() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let res = app
        .put_settings(&acme.admin_key, json!({"send_invites": false}))
        .await;
    assert_eq!(res.status(), 200);
    let mut created = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..250 {
        let okta = acme.scim.clone();
        let body = create_user_body(&app.email(&format!("user{i:03}")), "U", &format!("N{i}"));
        tasks.spawn(async move {
            let res = okta.post_user(&body).await;
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        });
        if tasks.len() >= 16 {
            created.insert(tasks.join_next().await.expect("task").expect("create"));
        }
    }
    while let Some(id) = tasks.join_next().await {
        created.insert(id.expect("create"));
    }
    assert_eq!(created.len(), 250);

    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let page = get(&acme.scim, &format!("/Users?startIndex={start}&count=100")).await;
        assert_eq!(page["totalResults"], 250);
        assert_eq!(page["startIndex"], start);
        let items = page["Resources"].as_array().expect("Resources");
        assert_eq!(page["itemsPerPage"], items.len());
        if items.is_empty() {
            break;
        }
        seen.extend(
            items
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_owned()),
        );
        start += items.len();
    }
    assert_eq!(seen.len(), 250, "every user once");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        250,
        "no user twice"
    );
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);

    // count is capped at the advertised maximum, and count=0 only counts.
    let page = get(&acme.scim, "/Users?count=100000").await;
    assert_eq!(page["itemsPerPage"], 200);
    let page = get(&acme.scim, "/Users?count=0").await;
    assert_eq!(page["totalResults"], 250);
    assert_eq!(page["Resources"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_sorting_attributes_and_search() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    for (local, title, dept) in [
        ("ann", "Engineer", "Eng"),
        ("bob", "Designer", "Design"),
        ("cat", "Senior Engineer", "Eng"),
    ] {
        let mut body = create_user_body(&app.email(local), local, "Z");
        body["title"] = json!(title);
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
            json!({"department": dept});
        body["phoneNumbers"] = json!([{"value": format!("+1 555 {local}"), "type": "work"}]);
        assert_eq!(okta.post_user(&body).await.status(), 201);
    }
    let names = |page: &Value| -> Vec<String> {
        page["Resources"]
            .as_array()
            .expect("Resources")
            .iter()
            .map(|u| {
                u["userName"]
                    .as_str()
                    .expect("userName")
                    .split('@')
                    .next()
                    .expect("local")
                    .to_owned()
            })
            .collect()
    };
    let q = |f: &str| format!("/Users?filter={}&sortBy=userName", urlencode(f));
    assert_eq!(
        names(&get(okta, &q(r#"title co "engineer""#)).await),
        ["ann", "cat"]
    );
    assert_eq!(
        names(&get(okta, &q(r#"title sw "Senior" or userName sw "bob""#)).await),
        ["bob", "cat"]
    );
    assert_eq!(
        names(&get(okta, &q(r#"not (title co "engineer")"#)).await),
        ["bob"]
    );
    assert_eq!(
        names(&get(okta, &q(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "eng""#)).await),
        ["ann", "cat"]
    );
    assert_eq!(
        names(&get(okta, &q(r#"emails[type eq "work" and value sw "bob"]"#)).await),
        ["bob"]
    );
    assert_eq!(
        names(
            &get(
                okta,
                &q(&format!(
                    r#"emails[type eq "work"].value eq "{}""#,
                    app.email("cat")
                ))
            )
            .await
        ),
        ["cat"]
    );
    assert_eq!(
        names(&get(okta, &q(r#"phoneNumbers.value ew "ann""#)).await),
        ["ann"]
    );
    assert_eq!(
        names(
            &get(
                okta,
                &q(r#"meta.lastModified gt "2000-01-01T00:00:00Z" and active eq true"#)
            )
            .await
        )
        .len(),
        3
    );
    assert_eq!(
        names(&get(okta, &q(r#"meta.created lt "2000-01-01T00:00:00Z""#)).await).len(),
        0
    );

    let desc = get(okta, "/Users?sortBy=userName&sortOrder=descending").await;
    assert_eq!(names(&desc), ["cat", "bob", "ann"]);

    // attributes and excludedAttributes.
    let slim = get(okta, "/Users?attributes=userName&sortBy=userName").await;
    let first = &slim["Resources"][0];
    assert!(first.get("userName").is_some() && first.get("id").is_some());
    assert!(first.get("emails").is_none() && first.get("title").is_none());
    let id = first["id"].as_str().expect("id").to_owned();
    let one = get(
        okta,
        &format!("/Users/{id}?excludedAttributes=emails,phoneNumbers"),
    )
    .await;
    assert!(one.get("emails").is_none() && one.get("phoneNumbers").is_none());
    assert_eq!(one["title"], "Engineer");

    // POST /Users/.search reads the same query from its body.
    let res = okta
        .request(Method::POST, "/Users/.search")
        .header("Content-Type", "application/scim+json")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "title co \"engineer\"", "sortBy": "userName", "sortOrder": "descending",
                "attributes": ["userName"], "startIndex": 1, "count": 10
            })
            .to_string(),
        )
        .send()
        .await
        .expect("POST .search");
    assert_eq!(res.status(), 200);
    let found: Value = res.json().await.expect("JSON");
    assert_eq!(names(&found), ["cat", "ann"]);
    assert_eq!(found["totalResults"], 2);

    // Unsupported filters and sorts are errors, never an empty list.
    for bad in [
        r#"groups[value eq "x"]"#,
        r#"unknownAttr eq "1""#,
        r#"title eq"#,
    ] {
        let res = okta.get(&q(bad)).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(
            res.json::<Value>().await.expect("JSON")["scimType"],
            "invalidFilter"
        );
    }
    let res = okta.get("/Users?sortBy=nonsense").await;
    assert_eq!(res.status(), 400);
    app.stop().await;
}
