//! Bad credentials and bad input get SCIM errors and change nothing.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tests::{harness::TestApp, okta::create_user_body};

async fn assert_scim_error(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert!(
        ct.as_deref()
            .is_some_and(|c| c.starts_with("application/scim+json")),
        "content type {ct:?}"
    );
    let body: Value = res.json().await.expect("SCIM error JSON");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], status.to_string());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_missing_and_revoked_tokens_are_401() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let body = create_user_body(&app.email("a"), "A", "B");

    let wrong = app.scim("rst_scim_not-a-real-token");
    assert_scim_error(wrong.post_user(&body).await, 401).await;
    let res = wrong.get("/Users").await;
    assert!(res.headers().contains_key("www-authenticate"));
    assert_scim_error(res, 401).await;

    let res = app
        .http
        .get(format!("{}/scim/v2/Users", app.base))
        .send()
        .await
        .expect("GET");
    assert_scim_error(res, 401).await;

    // Disabling provisioning revokes the token at once.
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/provisioning",
            &acme.admin_key,
            Some(serde_json::json!({"enabled": false})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_scim_error(acme.scim.post_user(&body).await, 401).await;
    assert_scim_error(acme.scim.get("/Users").await, 401).await;

    app.assert_none("SELECT count(*) FROM users").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_bad_bodies_are_scim_errors_that_store_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;

    assert_scim_error(okta.get_user(&uuid::Uuid::new_v4().to_string()).await, 404).await;
    assert_scim_error(okta.get_user("not-a-uuid").await, 404).await;
    assert_scim_error(okta.get("/Nope").await, 404).await;
    assert_scim_error(okta.delete("/Users").await, 405).await;

    let malformed = okta
        .post_raw("/Users", "application/scim+json", "{\"userName\": ")
        .await;
    let err = assert_scim_error(malformed, 400).await;
    assert_eq!(err["scimType"], "invalidSyntax");

    let no_user_name = okta
        .post_user(&serde_json::json!({"name": {"givenName": "x"}}))
        .await;
    let err = assert_scim_error(no_user_name, 400).await;
    assert_eq!(err["scimType"], "invalidValue");

    let wrong_type = okta.post_raw("/Users", "text/plain", "hello").await;
    assert_scim_error(wrong_type, 415).await;

    let big = format!("{{\"userName\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // The server answers 413 without reading the body and drops the connection, so this
    // request gets a client of its own rather than poisoning the shared pool.
    let mut lone = okta.clone();
    lone.http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let too_big = lone.post_raw("/Users", "application/scim+json", big).await;
    assert_scim_error(too_big, 413).await;

    let bad_filter = okta
        .request(Method::GET, "/Users")
        .query(&[("filter", "noSuchAttribute eq \"x\"")])
        .send()
        .await
        .expect("GET");
    let err = assert_scim_error(bad_filter, 400).await;
    assert_eq!(err["scimType"], "invalidFilter");

    // Okta's own test tools send application/json; that works.
    let body = create_user_body(&app.email("json"), "J", "S").to_string();
    let res = okta.post_raw("/Users", "application/json", body).await;
    assert_eq!(res.status(), 201);

    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        1,
        "only the valid create stored"
    );
    app.stop().await;
}

/// The admin page over raw HTTP, as a browser at one address would use it.
pub(crate) struct Page {
    base: String,
    http: reqwest::Client,
}

/// What a sign-in attempt answered: status, the new session cookie (`name=value`) if one
/// was set, `Retry-After`, and the HTML.
pub(crate) struct SignIn {
    pub status: u16,
    pub cookie: Option<String>,
    pub retry_after: Option<u64>,
    pub html: String,
}

impl Page {
    /// A browser whose requests come from `local` (any 127.x.y.z reaches the ingress).
    pub(crate) fn from(app: &TestApp, local: [u8; 4]) -> Self {
        Self {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(local))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// `GET /admin` with `cookie`: status and HTML.
    pub(crate) async fn get(&self, cookie: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}/admin", self.base));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let res = req.send().await.expect("GET /admin");
        (res.status().as_u16(), res.text().await.expect("HTML"))
    }

    /// The sign-in form: its session cookie and CSRF token.
    pub(crate) async fn form(&self) -> (String, String) {
        let res = self
            .http
            .get(format!("{}/admin", self.base))
            .send()
            .await
            .expect("GET /admin");
        let cookie = session_cookie(&res).expect("a form session");
        let html = res.text().await.expect("HTML");
        (cookie, csrf_in(&html))
    }

    /// `POST path` with a form and a cookie.
    pub(crate) async fn post(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Cookie", cookie)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// Signs in with `key` from a fresh form.
    pub(crate) async fn sign_in(&self, key: &str) -> SignIn {
        let (cookie, csrf) = self.form().await;
        let res = self
            .post(
                "/admin/login",
                &cookie,
                &[("csrf", &csrf), ("admin_key", key)],
            )
            .await;
        SignIn {
            status: res.status().as_u16(),
            cookie: session_cookie(&res),
            retry_after: res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            html: res.text().await.expect("HTML"),
        }
    }

    /// A signed-in session cookie for `key`.
    pub(crate) async fn session(&self, key: &str) -> String {
        let s = self.sign_in(key).await;
        assert_eq!(s.status, 303, "signing in: {}", s.html);
        s.cookie.expect("a session cookie")
    }

    /// Signs in with `key` and opens `/admin`: the session cookie and the page's HTML.
    pub(crate) async fn signed_in(&self, key: &str) -> (String, String) {
        let cookie = self.session(key).await;
        let (status, html) = self.get(Some(&cookie)).await;
        assert_eq!(status, 200);
        (cookie, html)
    }

    /// Submits a form of the page `html` (its CSRF token added) as `cookie`'s session.
    pub(crate) async fn submit(
        &self,
        path: &str,
        cookie: &str,
        html: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let csrf = csrf_in(html);
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(path, cookie, &form).await
    }
}

/// The `roster_admin=…` pair a response sets, if any.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("roster_admin="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf_in(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().expect("a value").to_owned()
}

/// An admin API call from `local`.
async fn admin_from(app: &TestApp, local: [u8; 4], key: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(local))
        .build()
        .expect("client")
        .get(format!("{}/admin/v1/settings", app.base))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /admin/v1/settings")
}

/// A SCIM client for `token` whose requests come from `local`.
fn scim_from(app: &TestApp, local: [u8; 4], token: &str) -> tests::okta::ScimClient {
    let mut c = app.scim(token);
    c.http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(local))
        .build()
        .expect("client");
    c
}

fn retry_after(res: &reqwest::Response) -> u64 {
    let secs: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_keys_are_rate_limited_per_address() {
    let app = TestApp::spawn_with(tests::harness::Options {
        auth_failures_per_minute: 3,
        ..Default::default()
    })
    .await;
    let acme = app.tenant("Acme").await;
    let guesser = [127, 0, 0, 11];
    let admin = [127, 0, 0, 12];

    // Successes do not count.
    for _ in 0..10 {
        assert_eq!(
            admin_from(&app, guesser, &acme.admin_key).await.status(),
            200
        );
    }
    for i in 0..3 {
        let res = admin_from(&app, guesser, &format!("rst_admin_guess{i}")).await;
        assert_eq!(res.status(), 401, "failure {i} is answered");
    }
    let res = admin_from(&app, guesser, "rst_admin_guess3").await;
    assert_eq!(res.status(), 429);
    retry_after(&res);
    let body: Value = res.json().await.expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many")),
        "{body}"
    );
    // Refused before it is checked: the right key from that address waits too …
    let res = admin_from(&app, guesser, &acme.admin_key).await;
    assert_eq!(res.status(), 429);
    // … and the operator token, which shares the address's budget.
    let res = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(guesser))
        .build()
        .expect("client")
        .post(format!("{}/admin/v1/orgs", app.base))
        .bearer_auth(&app.operator_token)
        .json(&serde_json::json!({"name": "X"}))
        .send()
        .await
        .expect("POST /admin/v1/orgs");
    assert_eq!(res.status(), 429);
    // Another address is not affected.
    assert_eq!(admin_from(&app, admin, &acme.admin_key).await.status(), 200);

    // The admin page's sign-in: the same budget, per address.
    let page = Page::from(&app, [127, 0, 0, 13]);
    for _ in 0..3 {
        let s = page.sign_in("rst_admin_wrong").await;
        assert_eq!(s.status, 401);
        assert!(s.html.contains("not valid"));
        assert!(s.cookie.is_some(), "a new form to try again");
    }
    let s = page.sign_in(&acme.admin_key).await;
    assert_eq!(s.status, 429, "the right key waits too");
    assert!(s.retry_after.is_some_and(|r| (1..=60).contains(&r)));
    assert!(
        s.html.contains("too many failed authentications"),
        "{}",
        s.html
    );
    let s = Page::from(&app, [127, 0, 0, 14])
        .sign_in(&acme.admin_key)
        .await;
    assert_eq!(s.status, 303, "another address signs in");

    // An empty key or a missing header is not a guess.
    let other = [127, 0, 0, 15];
    for _ in 0..5 {
        let res = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(other))
            .build()
            .expect("client")
            .get(format!("{}/admin/v1/settings", app.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 401);
    }
    assert_eq!(admin_from(&app, other, &acme.admin_key).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scim_tokens_are_rate_limited_per_address_and_valid_ones_always_pass() {
    let app = TestApp::spawn_with(tests::harness::Options {
        auth_failures_per_minute: 3,
        ..Default::default()
    })
    .await;
    let acme = app.tenant("Acme").await;
    let okta_addr = [127, 0, 0, 21];
    let guesser_addr = [127, 0, 0, 22];
    let okta = scim_from(&app, okta_addr, &acme.scim.token);
    let guesser = scim_from(&app, guesser_addr, "rst_scim_guess");

    for _ in 0..3 {
        let res = guesser.get("/Users").await;
        assert_scim_error(res, 401).await;
    }
    let res = guesser.get("/Users").await;
    retry_after(&res);
    let err = assert_scim_error(res, 429).await;
    assert!(
        err["detail"]
            .as_str()
            .is_some_and(|d| d.contains("too many")),
        "{err}"
    );
    // Okta calls from egress addresses every Okta tenant shares: a stranger's tenant
    // sending wrong tokens from the same address must not lock this org's Okta out. A
    // valid token still passes there (256 random bits: the 429s teach a guesser nothing).
    let shared = scim_from(&app, guesser_addr, &acme.scim.token);
    let res = shared
        .post_user(&create_user_body(&app.email("g"), "G", "H"))
        .await;
    assert_eq!(res.status(), 201);

    // And Okta, from its own address, is not slowed by someone else's guessing.
    let res = okta
        .post_user(&create_user_body(&app.email("ada"), "Ada", "L"))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 2);
    // The guesser is still refused.
    let res = guesser.get("/Users").await;
    assert_scim_error(res, 429).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_issues_a_fresh_session_bound_to_the_admin_key() {
    let app = TestApp::spawn().await;
    let (org_id, key) = app.create_org("Acme").await;
    let page = Page::from(&app, [127, 0, 0, 31]);

    // The form's cookie is never promoted: sign-in sets a new one.
    let (before, csrf) = page.form().await;
    let res = page
        .post(
            "/admin/login",
            &before,
            &[("csrf", &csrf), ("admin_key", &key)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let after = set.split(';').next().expect("a pair").to_owned();
    assert_ne!(after, before, "a new cookie at sign-in");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
        assert!(set.contains(flag), "{set} lacks {flag}");
    }
    assert!(!set.contains("Secure"), "plain http here: {set}");
    let (status, html) = page.get(Some(&before)).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("sign-in-form"),
        "the pre-sign-in cookie is not signed in"
    );
    let (_, html) = page.get(Some(&after)).await;
    assert!(html.contains("id=\"provisioning\""), "signed in");

    // A tampered cookie (another org's id in it) is no session at all.
    let other = uuid::Uuid::now_v7().to_string();
    let forged = after.replace(&org_id, &other);
    assert_ne!(forged, after);
    let (_, html) = page.get(Some(&forged)).await;
    assert!(html.contains("sign-in-form"));

    // Replacing the org's admin key (as revoking or rotating it does) ends the session.
    app.db
        .execute_unprepared(&format!(
            "UPDATE orgs SET admin_key_hash = 'replaced' WHERE id = '{org_id}'"
        ))
        .await
        .expect("replacing the key");
    let (_, html) = page.get(Some(&after)).await;
    assert!(
        html.contains("sign-in-form"),
        "the session ended with its key"
    );
    let res = page
        .submit("/admin/settings", &after, &html, &[("send_invites", "")])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin", "back to sign-in");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orgs WHERE id = '{org_id}' AND send_invites"
        ))
        .await,
        1,
        "nothing changed"
    );
    app.stop().await;
}
