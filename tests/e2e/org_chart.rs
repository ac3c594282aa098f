//! The org chart (issue "#15"): managers resolved whatever order people arrive in, by each
//! org's `manager_match`; reports and the chart served by the directory API; cycles
//! refused for the link only; a deactivated manager a vacancy; the page (and the
//! settings form's manager keys) in Chromium.

use crate::admin_page::Browser;
use futures_util::{StreamExt, stream};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use tests::{
    harness::TestApp,
    okta::{ScimClient, create_user_body},
};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

async fn ok_json(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.expect("JSON");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Okta's create body with an externalId, a title and, when given, the mapped manager
/// value in the enterprise extension (`manager.value`, as an Okta admin maps it).
fn okta_user(user_name: &str, external_id: &str, manager: Option<&str>) -> Value {
    let mut body = create_user_body(
        user_name,
        "Given",
        user_name.split('@').next().unwrap_or("x"),
    );
    body["externalId"] = json!(external_id);
    body["title"] = json!(format!("Title of {user_name}"));
    if let Some(m) = manager {
        body["schemas"] = json!([CORE, ENTERPRISE]);
        body[ENTERPRISE] = json!({"manager": {"value": m}});
    }
    body
}

async fn create(scim: &ScimClient, body: &Value) -> Value {
    let res = scim.post_user(body).await;
    let status = res.status();
    let out: Value = res.json().await.expect("JSON");
    assert_eq!(status, 201, "{out}");
    out
}

/// Okta's profile push: `GET` the user, change it, `PUT` it back whole.
async fn okta_put(scim: &ScimClient, id: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut body: Value = scim.get_user(id).await.json().await.expect("JSON");
    change(&mut body);
    let res = scim
        .send_json(Method::PUT, &format!("/Users/{id}"), &body)
        .await;
    let status = res.status();
    let out: Value = res.json().await.expect("JSON");
    assert_eq!(status, 200, "{out}");
    out
}

/// Entra's manager PATCH: a bare string, `Add` capitalised.
async fn entra_manager(scim: &ScimClient, id: &str, op: &str, value: &str) {
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": op, "path": format!("{ENTERPRISE}:manager"), "value": value}],
    });
    let res = scim
        .send_json(Method::PATCH, &format!("/Users/{id}"), &patch)
        .await;
    assert!(res.status().is_success(), "{}", res.status());
}

async fn person(app: &TestApp, key: &str, id: &str) -> Value {
    ok_json(
        app.admin(Method::GET, &format!("/api/v1/people/{id}"), key, None)
            .await,
    )
    .await
}

fn manager_of(p: &Value) -> Option<String> {
    p["manager"]["id"].as_str().map(str::to_owned)
}

async fn report_ids(app: &TestApp, key: &str, id: &str) -> BTreeSet<String> {
    let list = ok_json(
        app.admin(
            Method::GET,
            &format!("/api/v1/people/{id}/reports"),
            key,
            None,
        )
        .await,
    )
    .await;
    list.as_array()
        .expect("a list")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn chart(app: &TestApp, key: &str, query: &str) -> Value {
    ok_json(
        app.admin(Method::GET, &format!("/api/v1/org-chart{query}"), key, None)
            .await,
    )
    .await
}

/// A chart as `id → sorted child ids`, checking every node's shape on the way.
fn edges(nodes: &Value, out: &mut HashMap<String, BTreeSet<String>>) {
    for n in nodes.as_array().expect("a list of nodes") {
        let id = n["id"].as_str().expect("id").to_owned();
        assert!(n["name"].is_string() && n.get("job_title").is_some(), "{n}");
        let kids = out.entry(id).or_default();
        for r in n["reports"].as_array().expect("reports") {
            kids.insert(r["id"].as_str().expect("id").to_owned());
        }
        edges(&n["reports"], out);
    }
}

async fn set_match(app: &TestApp, key: &str, keys: Value) -> reqwest::Response {
    app.put_settings(key, json!({ "manager_match": keys }))
        .await
}

async fn activity(app: &TestApp, key: &str) -> Vec<Value> {
    let list = ok_json(
        app.admin(Method::GET, "/admin/v1/activity?limit=200", key, None)
            .await,
    )
    .await;
    list.as_array().expect("a list").clone()
}

/// How one org's people name their manager.
#[derive(Clone, Copy, Debug)]
enum By {
    /// Okta sends the manager's Okta id (Roster's externalId) on create.
    ExternalId,
    /// Okta sends the manager's email, in another case, on create.
    Email,
    /// Entra: everyone is created first, then each gets a PATCH with the manager's Roster id.
    RosterId,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_people_in_random_order_are_linked_right_in_three_orgs() {
    let app = TestApp::spawn().await;
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let orgs = [
        (By::ExternalId, json!(["external_id"]), 70),
        (By::Email, json!(["email", "user_name"]), 70),
        (By::RosterId, json!(["id"]), 60),
    ];
    for (n_org, (by, keys, n)) in orgs.into_iter().enumerate() {
        let t = app.tenant(&format!("Org {n_org}")).await;
        assert_eq!(
            ok_json(set_match(&app, &t.admin_key, keys.clone()).await).await["manager_match"],
            keys
        );
        // A random tree: person i reports to someone before them; 0 is the top.
        let boss: Vec<Option<usize>> = (0..n)
            .map(|i| (i > 0).then(|| rng.random_range(0..i)))
            .collect();
        let user_name = |i: usize| app.email(&format!("o{n_org}-p{i}"));
        let external = |i: usize| format!("00u{n_org}x{i:04}");
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let bodies: Vec<(usize, Value)> = order
            .iter()
            .map(|&i| {
                let manager = match by {
                    By::ExternalId => boss[i].map(external),
                    By::Email => boss[i].map(|b| user_name(b).to_uppercase()),
                    By::RosterId => None,
                };
                (
                    i,
                    okta_user(&user_name(i), &external(i), manager.as_deref()),
                )
            })
            .collect();
        // Eight at a time, as Okta's import runs: a report and its manager may be created
        // at the same moment.
        let created: Vec<(usize, Value)> = stream::iter(bodies)
            .map(|(i, body)| {
                let scim = t.scim.clone();
                async move { (i, create(&scim, &body).await) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut id = vec![String::new(); n];
        for (i, u) in created {
            id[i] = u["id"].as_str().expect("id").to_owned();
        }
        if let By::RosterId = by {
            let mut linking: Vec<usize> = (1..n).collect();
            linking.shuffle(&mut rng);
            stream::iter(linking)
                .map(|i| {
                    let (scim, me, mgr) = (
                        t.scim.clone(),
                        id[i].clone(),
                        id[boss[i].unwrap_or(0)].clone(),
                    );
                    async move { entra_manager(&scim, &me, "Add", &mgr).await }
                })
                .buffer_unordered(8)
                .collect::<Vec<()>>()
                .await;
        }

        // Every link is right, every /reports answer and the whole chart match the tree.
        let mut expected: HashMap<String, BTreeSet<String>> = HashMap::new();
        for i in 0..n {
            let p = person(&app, &t.admin_key, &id[i]).await;
            assert_eq!(
                manager_of(&p),
                boss[i].map(|b| id[b].clone()),
                "{by:?} person {i}: {p}"
            );
            assert!(
                p.get("manager_ref").is_none(),
                "resolved: no raw value shown: {p}"
            );
            if let Some(b) = boss[i] {
                assert!(
                    p["manager"]["name"].as_str().is_some_and(|s| !s.is_empty()),
                    "{p}"
                );
                expected
                    .entry(id[b].clone())
                    .or_default()
                    .insert(id[i].clone());
            }
            expected.entry(id[i].clone()).or_default();
        }
        for i in 0..n {
            assert_eq!(
                report_ids(&app, &t.admin_key, &id[i]).await,
                expected[&id[i]],
                "{by:?} reports of {i}"
            );
        }
        let whole = chart(&app, &t.admin_key, "").await;
        assert_eq!(whole.as_array().map(Vec::len), Some(1), "one top: {whole}");
        assert_eq!(whole[0]["id"], json!(id[0]));
        let mut got = HashMap::new();
        edges(&whole, &mut got);
        assert_eq!(got, expected, "{by:?}: the chart is the tree");
        // Below one person, one level deep: their reports, with their own counts.
        let mid = (1..n).find(|&i| !expected[&id[i]].is_empty()).unwrap_or(0);
        let sub = chart(&app, &t.admin_key, &format!("?root={}&depth=1", id[mid])).await;
        assert_eq!(sub[0]["id"], json!(id[mid]));
        for r in sub[0]["reports"].as_array().expect("reports") {
            let rid = r["id"].as_str().expect("id");
            assert!(
                r["reports"].as_array().is_some_and(Vec::is_empty),
                "depth 1: {r}"
            );
            assert_eq!(r["report_count"], json!(expected[rid].len()), "{r}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_vacancies_and_late_managers() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let key = &t.admin_key;
    let (a_name, b_name, c_name) = (app.email("ann"), app.email("bob"), app.email("cy"));

    // A report before their manager: Ann waits on Bob's Okta id, then Bob arrives.
    let ann = create(&t.scim, &okta_user(&a_name, "00uANN", None)).await;
    let ann_id = ann["id"].as_str().expect("id").to_owned();
    okta_put(&t.scim, &ann_id, |u| {
        u["schemas"] = json!([CORE, ENTERPRISE]);
        u[ENTERPRISE] = json!({"manager": {"value": "00uBOB0001"}});
    })
    .await;
    let p = person(&app, key, &ann_id).await;
    assert_eq!(p["manager"], Value::Null);
    assert_eq!(
        p["manager_ref"], "00uBOB0001",
        "the raw value while unresolved"
    );
    let bob = create(&t.scim, &okta_user(&b_name, "00uBOB0001", None)).await;
    let bob_id = bob["id"].as_str().expect("id").to_owned();
    let p = person(&app, key, &ann_id).await;
    assert_eq!(manager_of(&p).as_deref(), Some(bob_id.as_str()), "{p}");
    assert!(p.get("manager_ref").is_none(), "{p}");
    // Ann's own user.updated says who her manager now is, one version up.
    let event = app
        .db
        .query_one_raw(common::db::stmt(
            "SELECT envelope FROM outbox WHERE routing_key = 'user.updated' \
             AND envelope->'payload'->>'user_id' = $1 ORDER BY id DESC LIMIT 1",
            [ann_id.clone().into()],
        ))
        .await
        .expect("query")
        .expect("Ann's user.updated");
    let envelope: Value = event.try_get("", "envelope").expect("envelope");
    assert_eq!(
        envelope["payload"]["manager_id"],
        json!(bob_id),
        "{envelope}"
    );
    assert_eq!(
        envelope["payload"]["changes"],
        json!({"manager_id": bob_id})
    );
    assert_eq!(envelope["payload"]["version"], p["version"]);

    // Bob changes his email and Okta id: Ann keeps him.
    okta_put(&t.scim, &bob_id, |u| {
        u["externalId"] = json!("00uBOB9999");
        u["emails"] = json!([{"primary": true, "type": "work", "value": app.email("robert")}]);
    })
    .await;
    assert_eq!(
        manager_of(&person(&app, key, &ann_id).await).as_deref(),
        Some(bob_id.as_str())
    );

    // Cy reports to Bob. Then Bob is pushed reporting to Ann, with a new title: the title
    // is applied, the link is refused (Ann reports to Bob), and the log says why.
    let cy = create(&t.scim, &okta_user(&c_name, "00uCY", Some(&b_name))).await;
    let cy_id = cy["id"].as_str().expect("id").to_owned();
    assert_eq!(
        manager_of(&person(&app, key, &cy_id).await).as_deref(),
        Some(bob_id.as_str())
    );
    okta_put(&t.scim, &bob_id, |u| {
        u["title"] = json!("Chief");
        u["schemas"] = json!([CORE, ENTERPRISE]);
        u[ENTERPRISE] = json!({"manager": {"value": a_name.to_uppercase()}});
    })
    .await;
    let b = person(&app, key, &bob_id).await;
    assert_eq!(
        b["fields"]["job_title"], "Chief",
        "the rest of the update stands"
    );
    assert_eq!(b["manager"], Value::Null, "the link stays as it was: none");
    let refused = activity(&app, key).await;
    let entry = refused
        .iter()
        .find(|a| a["action"] == "manager.refused")
        .unwrap_or_else(|| panic!("no manager.refused in {refused:?}"));
    assert_eq!(entry["resource_id"], json!(bob_id));
    let reason = entry["detail"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains(&a_name) && reason.contains("already reports to"),
        "{reason}"
    );

    // The other way round it is fine: Ann's chain is Ann → Bob; Cy stays under Bob.
    // A longer cycle: Bob → Cy is refused too, and a link that was there stays: Cy → Ann
    // first (Ann reports to Bob, so Cy → Ann is fine), then Cy → Cy by Entra is refused.
    entra_manager(&t.scim, &cy_id, "Replace", &ann_id).await;
    assert_eq!(
        manager_of(&person(&app, key, &cy_id).await).as_deref(),
        Some(ann_id.as_str())
    );
    entra_manager(&t.scim, &bob_id, "Replace", &cy_id).await;
    assert_eq!(
        person(&app, key, &bob_id).await["manager"],
        Value::Null,
        "Bob → Cy → Ann → Bob"
    );
    entra_manager(&t.scim, &cy_id, "Replace", &cy_id).await;
    assert_eq!(
        manager_of(&person(&app, key, &cy_id).await).as_deref(),
        Some(ann_id.as_str()),
        "own manager refused; the link that was there stays"
    );
    let reasons: Vec<String> = activity(&app, key)
        .await
        .iter()
        .filter(|a| a["action"] == "manager.refused")
        .map(|a| {
            a["detail"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("cannot be their own manager"),
        "{reasons:?}"
    );

    // Bob is deactivated: Ann still points at him, a vacancy; reactivated, he is back.
    let deactivate = |active: bool| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "value": {"active": active}}]})
    };
    let res = t
        .scim
        .send_json(
            Method::PATCH,
            &format!("/Users/{bob_id}"),
            &deactivate(false),
        )
        .await;
    assert_eq!(res.status(), 200);
    let p = person(&app, key, &ann_id).await;
    assert_eq!(p["manager"]["id"], json!(bob_id));
    assert_eq!(p["manager"]["active"], false, "a vacancy: {p}");
    let whole = chart(&app, key, "").await;
    let top = whole
        .as_array()
        .expect("roots")
        .iter()
        .find(|n| n["id"] == json!(bob_id))
        .unwrap_or_else(|| panic!("the vacancy is in the chart: {whole}"));
    assert_eq!(top["active"], false);
    assert_eq!(top["reports"][0]["id"], json!(ann_id));
    let res = t
        .scim
        .send_json(
            Method::PATCH,
            &format!("/Users/{bob_id}"),
            &deactivate(true),
        )
        .await;
    assert_eq!(res.status(), 200);
    let p = person(&app, key, &ann_id).await;
    assert_eq!(p["manager"]["active"], true, "reactivated: {p}");

    // Entra clears Cy's manager with "": no link, nothing to wait on.
    entra_manager(&t.scim, &cy_id, "Replace", "").await;
    let p = person(&app, key, &cy_id).await;
    assert_eq!(p["manager"], Value::Null);
    assert!(p.get("manager_ref").is_none(), "{p}");

    // Bob is deleted: Ann waits on her raw value again, and a new person with that Okta id
    // is her manager as soon as they arrive.
    let res = t.scim.delete(&format!("/Users/{bob_id}")).await;
    assert_eq!(res.status(), 204);
    let p = person(&app, key, &ann_id).await;
    assert_eq!(p["manager"], Value::Null);
    assert_eq!(p["manager_ref"], "00uBOB0001");
    let dana = create(&t.scim, &okta_user(&app.email("dana"), "00uBOB0001", None)).await;
    assert_eq!(
        manager_of(&person(&app, key, &ann_id).await),
        dana["id"].as_str().map(str::to_owned)
    );
    app.stop().await;
}

/// Two changes that close a cycle only together, pushed at once: with B → C and D → A
/// already linked, A → B and C → D. Each alone is fine; both make A → B → C → D → A. (A
/// pair pushed crosswise, A → B with B → A, is also held apart by the rows' own locks;
/// this shape is not, so it needs the org's chart lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_closing_a_cycle_together_are_not_both_applied() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let key = &t.admin_key;
    const GROUPS: usize = 30;
    let name = |g: usize, x: &str| app.email(&format!("{x}{g}"));
    let ext = |g: usize, x: &str| format!("00u{x}{g}");
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let mut ids = HashMap::new();
        // D → A and B → C from the start (A and C arrive first).
        for (x, manager) in [("a", None), ("c", None), ("b", Some("c")), ("d", Some("a"))] {
            let m = manager.map(|m| ext(g, m));
            let u = create(&t.scim, &okta_user(&name(g, x), &ext(g, x), m.as_deref())).await;
            ids.insert(x, u["id"].as_str().expect("id").to_owned());
        }
        groups.push(ids);
    }
    let put = |id: String, body: Value| {
        let scim = t.scim.clone();
        async move {
            let res = scim
                .send_json(Method::PUT, &format!("/Users/{id}"), &body)
                .await;
            assert_eq!(res.status(), 200);
        }
    };
    stream::iter(groups.iter().enumerate())
        .map(|(g, ids)| {
            let ab = okta_user(&name(g, "a"), &ext(g, "a"), Some(&ext(g, "b")));
            let cd = okta_user(&name(g, "c"), &ext(g, "c"), Some(&ext(g, "d")));
            let (x, y) = (put(ids["a"].clone(), ab), put(ids["c"].clone(), cd));
            async move {
                tokio::join!(x, y);
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    for ids in &groups {
        let (pa, pc) = (
            person(&app, key, &ids["a"]).await,
            person(&app, key, &ids["c"]).await,
        );
        let links = [
            manager_of(&pa).as_deref() == Some(ids["b"].as_str()),
            manager_of(&pc).as_deref() == Some(ids["d"].as_str()),
        ];
        assert_eq!(
            links.iter().filter(|l| **l).count(),
            1,
            "exactly one link: {pa} {pc}"
        );
    }
    let refused = activity(&app, key)
        .await
        .iter()
        .filter(|a| a["action"] == "manager.refused")
        .count();
    assert_eq!(refused, GROUPS, "one refusal per group");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_match_is_an_org_setting_and_bad_values_change_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let key = &t.admin_key;
    let settings = ok_json(
        app.admin(Method::GET, "/admin/v1/settings", key, None)
            .await,
    )
    .await;
    assert_eq!(
        settings["manager_match"],
        json!(["id", "external_id", "email", "user_name", "employee_number"]),
        "the default"
    );
    for (bad, says) in [
        (json!([]), "at least one"),
        (json!(["email", "email"]), "twice"),
        (json!(["phone"]), "phone"),
        (json!("email"), "invalid"),
    ] {
        let res = set_match(&app, key, bad.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        let err: Value = res.json().await.expect("JSON");
        assert!(
            err["error"].as_str().is_some_and(|e| e.contains(says)),
            "{bad}: {err}"
        );
    }
    let after = ok_json(
        app.admin(Method::GET, "/admin/v1/settings", key, None)
            .await,
    )
    .await;
    assert_eq!(after, settings, "nothing changed");

    // The order decides: a value that is one person's employee number and another's
    // userName goes to whoever the first key names.
    let kim = create(&t.scim, &{
        let mut b = okta_user(&app.email("kim"), "00uKIM", None);
        b["schemas"] = json!([CORE, ENTERPRISE]);
        b[ENTERPRISE] = json!({"employeeNumber": app.email("lee")});
        b
    })
    .await;
    let lee = create(&t.scim, &okta_user(&app.email("lee"), "00uLEE", None)).await;
    ok_json(set_match(&app, key, json!(["employee_number", "user_name"])).await).await;
    let r1 = create(
        &t.scim,
        &okta_user(&app.email("r1"), "00uR1", Some(&app.email("lee"))),
    )
    .await;
    ok_json(set_match(&app, key, json!(["user_name", "employee_number"])).await).await;
    let r2 = create(
        &t.scim,
        &okta_user(&app.email("r2"), "00uR2", Some(&app.email("lee"))),
    )
    .await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    assert_eq!(
        manager_of(&person(&app, key, &id(&r1)).await),
        Some(id(&kim))
    );
    assert_eq!(
        manager_of(&person(&app, key, &id(&r2)).await),
        Some(id(&lee))
    );
    // A key the org does not use links no one.
    ok_json(set_match(&app, key, json!(["email"])).await).await;
    let r3 = create(
        &t.scim,
        &okta_user(&app.email("r3"), "00uR3", Some("00uLEE")),
    )
    .await;
    let p = person(&app, key, &id(&r3)).await;
    assert_eq!(p["manager"], Value::Null);
    assert_eq!(p["manager_ref"], "00uLEE");
    // Unknown people and bad ids are 404s; depth is bounded.
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/people/{unknown}/reports"),
        "/api/v1/people/nope/reports".to_owned(),
        format!("/api/v1/org-chart?root={unknown}"),
    ] {
        let res = app.admin(Method::GET, &path, key, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = app
        .admin(Method::GET, "/api/v1/org-chart?depth=65", key, None)
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Another org's person is not found either.
    let other = app.tenant("Other").await;
    let res = app
        .admin(
            Method::GET,
            &format!("/api/v1/people/{}/reports", id(&lee)),
            &other.admin_key,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_chart_page_shows_the_tree_and_a_vacancy_at_phone_width() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let boss = create(&t.scim, &okta_user(&app.email("boss"), "00uBOSS", None)).await;
    let boss_id = boss["id"].as_str().expect("id").to_owned();
    let lead = create(
        &t.scim,
        &okta_user(&app.email("lead"), "00uLEAD", Some("00uBOSS")),
    )
    .await;
    let lead_id = lead["id"].as_str().expect("id").to_owned();
    for i in 0..3 {
        create(
            &t.scim,
            &okta_user(
                &app.email(&format!("dev{i}-with-a-rather-long-name")),
                &format!("00uD{i}"),
                Some("00uLEAD"),
            ),
        )
        .await;
    }
    create(
        &t.scim,
        &okta_user(&app.email("early"), "00uEARLY", Some("00uNOBODY")),
    )
    .await;
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "replace", "value": {"active": false}}]});
    let res = t
        .scim
        .send_json(Method::PATCH, &format!("/Users/{lead_id}"), &off)
        .await;
    assert_eq!(res.status(), 200);

    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/admin/org-chart", app.base))
        .await
        .expect("open");
    assert!(
        b.exists("#sign-in-form").await,
        "signed out: the sign-in form"
    );
    b.sign_in_with_key(&t.admin_key).await;
    // The settings form orders the manager keys: email first, then the user name only.
    for (position, key) in [(1, "email"), (2, "user_name"), (3, ""), (4, ""), (5, "")] {
        b.find(&format!(
            "select[name='manager_match'][data-position='{position}']"
        ))
        .await
        .select_by_value(key)
        .await
        .expect("choosing a key");
    }
    b.submit("#save-settings").await;
    // The people table names each person's manager, a vacancy, or the value still waiting.
    let row = |name: String| format!("tr.person[data-user-name='{name}'] td.manager");
    assert!(
        b.text(&row(app.email("dev0-with-a-rather-long-name")))
            .await
            .contains("Vacant (was Given lead)")
    );
    assert_eq!(b.text(&row(app.email("lead"))).await, "Given boss");
    assert!(b.text(&row(app.email("early"))).await.contains("00uNOBODY"));
    let settings = ok_json(
        app.admin(Method::GET, "/admin/v1/settings", &t.admin_key, None)
            .await,
    )
    .await;
    assert_eq!(settings["manager_match"], json!(["email", "user_name"]));
    b.submit("#org-chart-link").await;
    let top = format!("li.node[data-id='{boss_id}']");
    b.find(&top).await;
    let vacancy = b
        .text(&format!("li.node[data-id='{lead_id}'] > .card"))
        .await;
    assert!(
        vacancy.contains("Vacant position") && vacancy.contains("was"),
        "{vacancy}"
    );
    let devs = b
        .client
        .find_all(fantoccini::Locator::Css(&format!(
            "li.node[data-id='{lead_id}'] li.node"
        )))
        .await
        .expect("find_all");
    assert_eq!(devs.len(), 3, "the vacancy's reports are under it");
    assert!(b.text("#waiting").await.contains("00uNOBODY"));
    b.client
        .set_window_size(375, 1200)
        .await
        .expect("phone width");
    let fits = b.fits_width().await;
    assert_eq!(
        fits,
        Value::Bool(true),
        "the chart scrolls sideways at 375 px"
    );
    let shot = b.screenshot("org-chart-phone.png").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);
    // A name opens the tree below that person.
    b.submit(&format!("{top} > .card a.name")).await;
    assert!(b.exists("#whole-org").await);
    b.close().await;
    app.stop().await;
}

/// docs/performance.md, "The org chart at 10,000 people": a first import in reverse order
/// (every report before their manager, so every manager's arrival links up to eight
/// waiting reports), against the same import without managers, then the whole org's
/// chart. Ignored by default (minutes on a busy machine); run it with
/// `cargo test -p tests --test e2e -- --ignored --nocapture org_chart::ten_thousand`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: docs/performance.md"]
async fn ten_thousand_people_imported_in_reverse_order() {
    const N: usize = 10_000;
    const FAN_OUT: usize = 8;
    const CONCURRENCY: usize = 32;
    let app = TestApp::spawn().await;
    let mut rates = Vec::new();
    for with_managers in [false, true] {
        let t = app
            .tenant(if with_managers { "Chart" } else { "Flat" })
            .await;
        ok_json(
            app.put_settings(&t.admin_key, json!({"send_invites": false}))
                .await,
        )
        .await;
        let tag = if with_managers { "c" } else { "f" };
        let bodies: Vec<Value> = (0..N)
            .rev()
            .map(|i| {
                let manager =
                    (with_managers && i > 0).then(|| format!("00u{tag}{:06}", (i - 1) / FAN_OUT));
                okta_user(
                    &app.email(&format!("{tag}{i}")),
                    &format!("00u{tag}{i:06}"),
                    manager.as_deref(),
                )
            })
            .collect();
        let start = std::time::Instant::now();
        stream::iter(bodies)
            .map(|body| {
                let scim = t.scim.clone();
                async move {
                    create(&scim, &body).await;
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        let took = start.elapsed();
        let rate = N as f64 / took.as_secs_f64();
        println!(
            "import of {N} ({}): {:.1} s, {rate:.0} creates/s",
            if with_managers {
                "reverse order, managers by externalId"
            } else {
                "no managers"
            },
            took.as_secs_f64()
        );
        rates.push(rate);
        if !with_managers {
            continue;
        }
        let linked = app
            .count(&format!(
                "SELECT count(*) FROM users WHERE org_id = '{}' AND manager_id IS NOT NULL",
                t.org_id
            ))
            .await;
        assert_eq!(
            linked,
            i64::try_from(N - 1).unwrap_or(0),
            "everyone but the top is linked"
        );
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let whole = chart(&app, &t.admin_key, "").await;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            let mut got = HashMap::new();
            edges(&whole, &mut got);
            assert_eq!(got.len(), N, "the whole org is in the chart");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "GET /api/v1/org-chart of {N}: median {:.0} ms (min {:.0}, max {:.0})",
            times[2], times[0], times[4]
        );
    }
    println!("with managers / without: {:.2}", rates[1] / rates[0]);
    // No `stop()`: its check of every event reads a queue the broker drops after a minute
    // without a consumer, and this test runs for minutes. Dropping the app cleans up.
    drop(app);
}

/// Creates that come one after another in a batch are written together (issue 14,
/// `users::create_run`), and each comes to what it would one at a time, in order: a
/// `userName` taken earlier in the batch is a `409`; a report waiting on keys of two of
/// them goes to the first; an email is matched in any case, an Okta id exactly; a person
/// with a manager value among them finds the people created before them, and one waiting
/// on a person created after them is linked when that person is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_written_together_come_to_what_they_would_one_at_a_time() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let key = &t.admin_key;
    let two = app.email("two");
    let boss = app.email("boss");
    // Waiting before the batch: Zed on a value that is P1's Okta id and P2's email, Wes
    // on Boss's email in capitals, Xan on Big's Okta id in another case.
    let waiting = [
        ("zed", two.clone()),
        ("wes", boss.to_uppercase()),
        ("xan", "00ubig".to_owned()),
    ];
    let mut ids = HashMap::new();
    for (name, manager) in &waiting {
        let body = okta_user(&app.email(name), &format!("00u{name}"), Some(manager));
        let p = create(&t.scim, &body).await;
        ids.insert(*name, p["id"].as_str().expect("id").to_owned());
    }
    let user = |name: &str, external_id: &str, manager: Option<&str>| {
        let user_name = if name == "p2" {
            two.clone()
        } else {
            app.email(name)
        };
        let body = okta_user(&user_name, external_id, manager);
        crate::integrations::command("user.create", &t.org_id, json!({ "resource": body }), None)
    };
    let envs = [
        user("p1", &two, None),
        user("p2", "00uP2", None),
        crate::integrations::command(
            "user.create",
            &t.org_id,
            json!({"resource": okta_user(&app.email("p1").to_uppercase(), "00uDUP", None)}),
            None,
        ),
        user("boss", "00uBOSS", None),
        user("big", "00uBIG", None),
        user("rae", "00uRAE", Some(&two)),
        user("tia", "00uTIA", Some("00uSOL")),
        user("sol", "00uSOL", None),
    ];
    let batch = crate::integrations::apply_as_one_batch(&app, &envs).await;
    assert!(batch.error.is_none(), "{:?}", batch.error);
    let statuses: Vec<u16> = batch.settled.iter().map(|a| a.reply.status()).collect();
    assert_eq!(statuses, [201, 201, 409, 201, 201, 201, 201, 201]);
    let created: Vec<String> = batch
        .settled
        .iter()
        .map(|a| match &a.reply {
            common::messages::Reply::Ok { body, .. } => body["id"].as_str().unwrap_or("").into(),
            _ => String::new(),
        })
        .collect();
    let (p1, boss_id, rae, tia, sol) = (
        &created[0],
        &created[3],
        &created[5],
        &created[6],
        &created[7],
    );
    let manager = |p: Value| manager_of(&p);
    assert_eq!(
        manager(person(&app, key, &ids["zed"]).await).as_ref(),
        Some(p1),
        "the first of two"
    );
    assert_eq!(
        manager(person(&app, key, &ids["wes"]).await).as_ref(),
        Some(boss_id),
        "an email in any case"
    );
    let xan = person(&app, key, &ids["xan"]).await;
    assert_eq!(manager(xan.clone()), None, "an Okta id exactly: {xan}");
    assert_eq!(xan["manager_ref"], "00ubig");
    assert_eq!(manager(person(&app, key, rae).await).as_ref(), Some(p1));
    assert_eq!(manager(person(&app, key, tia).await).as_ref(), Some(sol));
    // Each link is its report's own user.updated, one version up, and its manager's
    // activity entry.
    for (report, to) in [(&ids["zed"], p1), (&ids["wes"], boss_id), (tia, sol)] {
        let row = app
            .db
            .query_one_raw(common::db::stmt(
                "SELECT envelope FROM outbox WHERE routing_key = 'user.updated' \
                 AND envelope->'payload'->>'user_id' = $1",
                [report.clone().into()],
            ))
            .await
            .expect("query")
            .expect("the report's user.updated");
        let envelope: Value = row.try_get("", "envelope").expect("envelope");
        assert_eq!(envelope["payload"]["manager_id"], json!(to), "{envelope}");
        assert_eq!(envelope["payload"]["version"], 2, "{envelope}");
    }
    let linked = app
        .count(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'manager.reports_linked' \
             AND resource_id IN ('{p1}', '{boss_id}', '{sol}') AND (detail->>'reports')::int = 1"
        ))
        .await;
    assert_eq!(linked, 3);
    let events = app
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE org_id = '{}' AND routing_key = 'user.created'",
            t.org_id
        ))
        .await;
    assert_eq!(events, 3 + 7, "one user.created a person created");
    app.stop().await;
}
