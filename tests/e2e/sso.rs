//! Employee sign-in with OpenID Connect, end to end: a real provider (panva's certified
//! `oidc-provider`, `tests/oidc/provider.mjs`, installed from `tests/oidc/package-lock.json`)
//! started per test on this machine, driven through headless Chromium. The invite mail → its
//! link → the provider's login page → back in Roster, signed in, the directory shown; the
//! person's own edit within the lock; sessions ending at sign-out, deactivation and a
//! settings change; refused sign-ins each with their page (another audience, a wrong
//! nonce, an expired token, a key the JWKS does not list or no longer lists, a forged
//! state, a person not in the org, an inactive person); a key rotation at the provider
//! between two sign-ins.

use crate::admin_page::Browser;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};
use tests::{
    harness::TestApp,
    okta::{ScimClient, create_user_body},
};

const CLIENT_ID: &str = "roster-test-app";
const MAIL_WAIT: Duration = Duration::from_secs(20);

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// `npm ci` once per test binary when `tests/oidc/node_modules` is missing.
fn install_provider() {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut done = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *done || provider_dir().join("node_modules/oidc-provider").exists() {
        *done = true;
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(provider_dir())
        .status()
        .expect("running npm (the sign-in tests need Node.js and npm)");
    assert!(status.success(), "npm ci in tests/oidc failed");
    *done = true;
}

/// The OpenID provider, stopped on drop.
struct Provider {
    child: Child,
    issuer: String,
    http: reqwest::Client,
}

impl Provider {
    async fn start(client_secret: &str, redirect_uri: &str) -> Self {
        install_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = json!({
            "port": port, "client_id": CLIENT_ID, "client_secret": client_secret,
            "redirect_uris": [redirect_uri],
        });
        let child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .env("OIDC_TEST_CONFIG", config.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node tests/oidc/provider.mjs");
        let mut p = Self {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let start = Instant::now();
        let discovery = format!("{}/.well-known/openid-configuration", p.issuer);
        loop {
            if p.http
                .get(&discovery)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return p;
            }
            assert!(
                p.child.try_wait().ok().flatten().is_none(),
                "the OpenID provider exited"
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the OpenID provider did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn control(&self, path: &str) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.issuer))
            .send()
            .await
            .expect("test control");
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.expect("JSON")
    }

    /// From now on the provider's ID tokens have one thing wrong (`none`: nothing).
    async fn tamper(&self, mode: &str) {
        self.control(&format!("/__test/tamper?mode={mode}")).await;
    }

    /// A new signing key; the JWKS lists only it. Returns its `kid`.
    async fn rotate(&self) -> String {
        self.control("/__test/rotate").await["kid"]
            .as_str()
            .expect("kid")
            .to_owned()
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .expect("JWKS")
            .json()
            .await
            .expect("JSON");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An org with provisioning on and sign-in set up at a fresh provider.
struct Org {
    id: String,
    key: String,
    secret: String,
    okta: ScimClient,
    provider: Provider,
}

async fn org_with_sign_in(app: &TestApp, name: &str) -> Org {
    let t = app.tenant(name).await;
    let secret = format!("client-secret-{}", uuid::Uuid::new_v4().simple());
    tests::harness::record_secret(&secret);
    let redirect = format!("{}/sso/{}/callback", app.base, t.org_id);
    let provider = Provider::start(&secret, &redirect).await;
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/sso",
            &t.admin_key,
            Some(
                json!({"issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret": secret}),
            ),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["redirect_uri"], redirect.as_str());
    assert_eq!(body["client_secret_set"], true);
    assert!(!body.to_string().contains(&secret), "the secret came back");
    let stored: String = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT oidc_client_secret FROM orgs WHERE id = '{}'",
                t.org_id
            ),
        ))
        .await
        .expect("query")
        .expect("the org")
        .try_get("", "oidc_client_secret")
        .expect("sealed secret");
    assert!(
        stored.starts_with("v1.") && !stored.contains(&secret),
        "{stored}"
    );
    Org {
        id: t.org_id,
        key: t.admin_key,
        secret,
        okta: t.scim,
        provider,
    }
}

use sea_orm::ConnectionTrait;

/// Fills in the provider's login form if it shows one (it does not while the browser still
/// has a provider session), and waits until Roster shows the directory or a sign-in page.
async fn log_in_at_provider(b: &Browser, provider: &Provider, login: &str) {
    let start = Instant::now();
    loop {
        let url = b.client.current_url().await.expect("URL").to_string();
        if url.starts_with(&provider.issuer) {
            if b.exists("input[name=login]").await {
                b.find("input[name=login]")
                    .await
                    .send_keys(login)
                    .await
                    .expect("typing");
                b.find("input[name=password]")
                    .await
                    .send_keys("any password")
                    .await
                    .expect("typing");
                b.submit("button.login-submit").await;
                continue;
            }
        } else if b.exists("#signed-in-as, #sign-in-error, #signed-out").await {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no Roster page after the provider: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new sign-in from `/sso/{org}/sign-in` as `login`, with no provider session left over.
async fn sign_in(app: &TestApp, b: &Browser, org: &Org, login: &str) {
    // On a page of 127.0.0.1 (an error page would be Chromium's own origin), clear the
    // cookies of both Roster and the provider (the same host).
    b.client
        .goto(&format!("{}/directory", app.base))
        .await
        .expect("open Roster");
    b.client
        .delete_all_cookies()
        .await
        .expect("clearing cookies");
    b.client
        .goto(&format!("{}/sso/{}/sign-in", app.base, org.id))
        .await
        .expect("open the sign-in page");
    log_in_at_provider(b, &org.provider, login).await;
}

/// Signs `login` in (see [`sign_in`]) and waits for the signed-in page.
async fn sign_in_fully(app: &TestApp, b: &Browser, org: &Org, login: &str) {
    sign_in(app, b, org, login).await;
    b.find("#signed-in-as").await;
}

/// `PUT /admin/v1/sso` keeping the org's provider and client (and stored secret), with `claim`.
async fn set_claim(app: &TestApp, org: &Org, claim: &str) -> reqwest::Response {
    let body = json!({"issuer": org.provider.issuer, "client_id": CLIENT_ID, "claim": claim});
    app.admin(Method::PUT, "/admin/v1/sso", &org.key, Some(body))
        .await
}

/// Starts a sign-in over plain HTTP: the flow cookie Roster set and the `state` it sent to
/// the provider.
async fn start_flow(app: &TestApp, org: &Org) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = http
        .get(format!("{}/sso/{}/sign-in", app.base, org.id))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ASCII")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let location = reqwest::Url::parse(res.headers()[header::LOCATION].to_str().expect("ASCII"))
        .expect("the provider's URL");
    assert!(location.as_str().starts_with(&org.provider.issuer));
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("the state Roster sent");
    (cookie, state)
}

/// A callback with a made-up code: its status and the refusal code on its page.
async fn callback_with(app: &TestApp, org_id: &str, cookie: &str, state: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(format!(
            "{}/sso/{org_id}/callback?code=made-up&state={state}",
            app.base
        ))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("GET");
    let status = res.status().as_u16();
    let html = res.text().await.expect("HTML");
    let code = html
        .split("data-code=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

/// The `/admin` page's employee sign-in status.
async fn sso_enabled(b: &Browser) -> Option<String> {
    b.find("#sso-status")
        .await
        .attr("data-enabled")
        .await
        .expect("attr")
}

/// The refused sign-in's code on its page.
async fn refusal_code(b: &Browser) -> String {
    b.find("#sign-in-error")
        .await
        .attr("data-code")
        .await
        .expect("attr")
        .unwrap_or_default()
}

async fn activity(app: &TestApp, key: &str, action: &str) -> Vec<Value> {
    let res = app
        .admin(Method::GET, "/admin/v1/activity?limit=200", key, None)
        .await;
    let all: Vec<Value> = res.json().await.expect("JSON");
    all.into_iter().filter(|a| a["action"] == action).collect()
}

async fn create(okta: &ScimClient, user_name: &str, given: &str, family: &str) -> String {
    let mut body = create_user_body(user_name, given, family);
    body["title"] = json!("Engineer");
    let res = okta.post_user(&body).await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.expect("JSON");
    v["id"].as_str().expect("id").to_owned()
}

async fn set_active(okta: &ScimClient, id: &str, active: bool) {
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": active}}]});
    let res = okta
        .send_json(Method::PATCH, &format!("/Users/{id}"), &patch)
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_person_signs_in_with_okta_and_uses_the_directory() {
    let app = TestApp::spawn().await;
    let org = org_with_sign_in(&app, "Acme").await;
    let jane = app.email("jane");
    let bob = app.email("bob");
    let jane_id = create(&org.okta, &jane, "Jane", "Doe").await;
    create(&org.okta, &bob, "Bob", "Stone").await;
    let b = Browser::start().await;

    // The invite mail → its link → "Sign in with Okta" → the provider → the directory.
    let mail = app.maildev.wait_for(&jane, 1, MAIL_WAIT).await;
    let link = mail[0].invite_link().expect("an invite link");
    b.client.goto(&link).await.expect("open the invite");
    b.find("#accept-sign-in")
        .await
        .click()
        .await
        .expect("click");
    log_in_at_provider(&b, &org.provider, &jane).await;
    assert_eq!(
        b.find("#signed-in-as")
            .await
            .attr("data-user-name")
            .await
            .expect("attr")
            .as_deref(),
        Some(jane.as_str())
    );
    for who in [&jane, &bob] {
        assert!(
            b.exists(&format!("tr.person[data-user-name='{who}']"))
                .await
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM invites WHERE accepted_at IS NOT NULL")
            .await,
        1,
        "signing in from the invite accepted it"
    );
    let signed_in = activity(&app, &org.key, "person.signed_in").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0]["actor"], "employee");
    assert_eq!(signed_in[0]["resource_id"], jane_id.as_str());
    assert_eq!(signed_in[0]["detail"]["claim"], "email");
    assert_eq!(signed_in[0]["detail"]["matched"], "userName");
    assert_eq!(signed_in[0]["detail"]["invite_accepted"], true);
    assert_eq!(activity(&app, &org.key, "invite.accepted").await.len(), 1);
    let cookie = b
        .client
        .get_named_cookie("roster_session")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Lax")
    );
    assert_eq!(cookie.path(), Some("/"));
    let session = format!("roster_session={}", cookie.value());

    // Their own fields, within the lock: job title is Okta's, preferred name theirs.
    let res = app
        .put_settings(&org.key, json!({"lock_synced_fields": true}))
        .await;
    assert_eq!(res.status(), 200);
    b.client
        .goto(&format!("{}/directory", app.base))
        .await
        .expect("reload");
    assert!(b.exists("#field-job_title[data-locked=true]").await);
    b.find("#field-preferred_name")
        .await
        .send_keys("JJ")
        .await
        .expect("typing");
    b.submit("#save-profile").await;
    let row = b.text(&format!("tr.person[data-user-name='{jane}']")).await;
    assert!(row.contains("JJ Doe"), "{row}");
    b.screenshot("sso-directory.png").await;
    // A locked field sent anyway is refused, and nothing of the edit applies.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let html = raw
        .get(format!("{}/directory", app.base))
        .header(header::COOKIE, &session)
        .send()
        .await
        .expect("GET");
    let html = html.text().await.expect("HTML");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the CSRF token");
    let edit = |form: String| {
        raw.post(format!("{}/directory/me", app.base))
            .header(header::COOKIE, &session)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let res = edit(format!(
        "csrf={csrf}&field.job_title=CEO&field.preferred_name=Boss"
    ))
    .await
    .expect("POST");
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.expect("body").contains("Job title"));
    let res = edit("field.preferred_name=Forged".to_owned())
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let me = app
        .admin(
            Method::GET,
            &format!("/api/v1/people/{jane_id}"),
            &org.key,
            None,
        )
        .await
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(me["fields"]["preferred_name"], "JJ");
    assert_eq!(me["fields"]["job_title"], "Engineer");

    // Sign-out ends the session, even for a copy of its cookie.
    b.submit("#sign-out").await;
    assert!(b.exists("#signed-out").await);
    let res = raw
        .get(format!("{}/directory", app.base))
        .header(header::COOKIE, &session)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(activity(&app, &org.key, "person.signed_out").await.len(), 1);

    // Signed in again; deactivation in Okta ends the session, and reactivation does not
    // bring it back.
    sign_in_fully(&app, &b, &org, &jane).await;
    let cookie = b
        .client
        .get_named_cookie("roster_session")
        .await
        .expect("the session cookie");
    let session = format!("roster_session={}", cookie.value());
    let directory = |cookie: String| {
        raw.get(format!("{}/directory", app.base))
            .header(header::COOKIE, cookie)
            .send()
    };
    assert_eq!(
        directory(session.clone()).await.expect("GET").status(),
        StatusCode::OK
    );
    set_active(&org.okta, &jane_id, false).await;
    b.client
        .goto(&format!("{}/directory", app.base))
        .await
        .expect("reload");
    assert!(b.exists("#session-ended").await, "deactivation ends it");
    set_active(&org.okta, &jane_id, true).await;
    assert_eq!(
        directory(session).await.expect("GET").status(),
        StatusCode::UNAUTHORIZED,
        "reactivation revived the session"
    );

    // A change of the org's sign-in settings ends every session.
    sign_in_fully(&app, &b, &org, &jane).await;
    let res = set_claim(&app, &org, "email").await;
    assert_eq!(res.status(), 200, "the stored secret is kept");
    b.client
        .goto(&format!("{}/directory", app.base))
        .await
        .expect("reload");
    assert!(
        b.exists("#session-ended").await,
        "a settings change ends it"
    );

    // Turned off: no sign-in.
    let res = app.admin_delete("/admin/v1/sso", &org.key).await;
    assert_eq!(res.json::<Value>().await.expect("JSON")["enabled"], false);
    b.client
        .goto(&format!("{}/sso/{}/sign-in", app.base, org.id))
        .await
        .expect("open");
    assert_eq!(refusal_code(&b).await, "sign_in_off");

    // The admin sets it up again on the /admin page: the redirect URI to paste into Okta is
    // shown, the secret is entered once, and people sign in again.
    b.open_admin(&app.base, &org.key).await;
    assert_eq!(sso_enabled(&b).await.as_deref(), Some("false"));
    assert_eq!(
        b.value("#sso-redirect-uri").await,
        format!("{}/sso/{}/callback", app.base, org.id)
    );
    for (field, value) in [
        ("#sso-issuer", org.provider.issuer.as_str()),
        ("#sso-client-id", CLIENT_ID),
        ("#sso-client-secret", org.secret.as_str()),
    ] {
        b.find(field).await.send_keys(value).await.expect("typing");
    }
    b.submit("#save-sso").await;
    assert_eq!(sso_enabled(&b).await.as_deref(), Some("true"));
    assert_eq!(
        b.value("#sso-client-secret").await,
        "",
        "the secret is not shown"
    );
    sign_in_fully(&app, &b, &org, &jane).await;

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sign_ins_each_get_a_clear_page_and_a_key_rotation_is_followed() {
    let app = TestApp::spawn().await;
    let org = org_with_sign_in(&app, "Acme").await;
    let jane = app.email("jane");
    let gone = app.email("gone");
    create(&org.okta, &jane, "Jane", "Doe").await;
    let gone_id = create(&org.okta, &gone, "Gone", "Away").await;
    set_active(&org.okta, &gone_id, false).await;
    let b = Browser::start().await;

    // A good sign-in first: what follows fails for its own reason, not the setup's.
    sign_in_fully(&app, &b, &org, &jane).await;

    // ID tokens with one thing wrong, from the real provider, re-signed by its key.
    for (mode, code) in [
        ("audience", "wrong_audience"),
        ("nonce", "wrong_nonce"),
        ("expired", "expired_token"),
        ("unlisted_key", "unknown_key"),
    ] {
        org.provider.tamper(mode).await;
        sign_in(&app, &b, &org, &jane).await;
        assert_eq!(refusal_code(&b).await, code, "{mode}");
        let all = b.client.get_all_cookies().await.expect("cookies");
        assert!(
            b.client.get_named_cookie("roster_session").await.is_err(),
            "{mode}: signed in anyway: {all:?} at {:?}",
            b.client.current_url().await
        );
    }
    org.provider.tamper("none").await;

    let metrics = app.metrics_text().await;
    for outcome in [
        "signed_in",
        "wrong_audience",
        "wrong_nonce",
        "expired_token",
        "unknown_key",
    ] {
        let series = format!(
            "roster_sign_ins_total{{outcome=\"{outcome}\",prefix=\"{}\"}} 1",
            app.settings.amqp_prefix
        );
        assert!(metrics.contains(&series), "{series} not in /metrics");
    }

    // People Roster refuses: not in the org, deactivated.
    for (login, code) in [
        (app.email("stranger"), "not_in_directory"),
        (gone.clone(), "deactivated"),
    ] {
        sign_in(&app, &b, &org, &login).await;
        assert_eq!(refusal_code(&b).await, code, "{login}");
        assert!(b.client.get_named_cookie("roster_session").await.is_err());
    }

    // A state that is not the one Roster sent, and a callback with no sign-in started.
    b.client.delete_all_cookies().await.expect("clearing");
    b.client
        .goto(&format!("{}/sso/{}/sign-in", app.base, org.id))
        .await
        .expect("start");
    b.find("input[name=login]").await;
    let callback = format!(
        "{}/sso/{}/callback?code=stolen-code&state=forged",
        app.base, org.id
    );
    b.client.goto(&callback).await.expect("forged callback");
    assert_eq!(refusal_code(&b).await, "state_mismatch");
    b.client.delete_all_cookies().await.expect("clearing");
    b.client.goto(&callback).await.expect("callback");
    assert_eq!(refusal_code(&b).await, "state_mismatch");
    let res = reqwest::get(&callback).await.expect("GET");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The right state, but at another org's callback: refused there; at its own org's
    // callback it gets as far as the code exchange (a made-up code: code_refused).
    let (other_org, _) = app.create_org("Other").await;
    let (cookie, state) = start_flow(&app, &org).await;
    assert_eq!(
        callback_with(&app, &other_org, &cookie, &state).await,
        (400, "state_mismatch".to_owned())
    );
    let (cookie, state) = start_flow(&app, &org).await;
    assert_eq!(
        callback_with(&app, &org.id, &cookie, &state).await,
        (401, "code_refused".to_owned())
    );

    // The provider rotates its key between two sign-ins; Roster follows without a restart.
    let before = org.provider.jwks_kids().await;
    let kid = org.provider.rotate().await;
    assert_eq!(org.provider.jwks_kids().await, std::slice::from_ref(&kid));
    assert!(!before.contains(&kid));
    sign_in_fully(&app, &b, &org, &jane).await;
    // A token signed with the key the provider rotated out is refused.
    org.provider.tamper("retired_key").await;
    sign_in(&app, &b, &org, &jane).await;
    assert_eq!(refusal_code(&b).await, "unknown_key");
    org.provider.tamper("none").await;

    // The email claim also matches a person's directory email (their userName differs);
    // with the preferred_username claim, only the userName (Okta's login) does.
    let login = app.email("jdoe-login");
    let work = app.email("jd.work");
    let mut body = create_user_body(&login, "Jo", "Doe");
    body["emails"] = json!([{"primary": true, "value": work, "type": "work"}]);
    assert_eq!(org.okta.post_user(&body).await.status(), 201);
    sign_in_fully(&app, &b, &org, &work).await;
    let res = set_claim(&app, &org, "preferred_username").await;
    assert_eq!(res.status(), 200);
    sign_in(&app, &b, &org, &work).await;
    assert_eq!(refusal_code(&b).await, "not_in_directory");
    sign_in_fully(&app, &b, &org, &login).await;

    let how: Vec<(String, String)> = activity(&app, &org.key, "person.signed_in")
        .await
        .iter()
        .map(|a| {
            let d = &a["detail"];
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("claim"), s("matched"))
        })
        .collect();
    let pair = |c: &str, m: &str| (c.to_owned(), m.to_owned());
    assert_eq!(
        how,
        [
            pair("preferred_username", "userName"),
            pair("email", "email"),
            pair("email", "userName"),
            pair("email", "userName"),
        ],
        "only the good sign-ins are recorded, newest first"
    );
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn sign_in_settings_are_checked_and_the_secret_is_never_shown() {
    let app = TestApp::spawn().await;
    let (org_id, key) = app.create_org("Acme").await;
    let get = || app.admin(Method::GET, "/admin/v1/sso", &key, None);
    let status: Value = get().await.json().await.expect("JSON");
    assert_eq!(status["enabled"], false);
    assert_eq!(
        status["redirect_uri"],
        format!("{}/sso/{org_id}/callback", app.base)
    );
    assert_eq!(status["configurable"], true);
    let put = |body: Value| app.admin(Method::PUT, "/admin/v1/sso", &key, Some(body));
    for (body, why) in [
        (
            json!({"issuer": "http://acme.okta.com", "client_id": "x", "client_secret": "y"}),
            "https",
        ),
        (
            json!({"issuer": "https://acme.okta.com", "client_id": "x"}),
            "client_secret",
        ),
        (
            json!({"issuer": "https://acme.okta.com", "client_id": "", "client_secret": "y"}),
            "client_id",
        ),
        (
            json!({"issuer": "https://acme.okta.com", "client_id": "x", "client_secret": "y", "claim": "sub"}),
            "sub",
        ),
        (
            json!({"issuer": "https://acme.okta.com", "client_id": "x", "client_secret": "y", "extra": 1}),
            "extra",
        ),
    ] {
        let res = put(body).await;
        assert_eq!(res.status(), 400, "{why}");
        let e: Value = res.json().await.expect("JSON");
        assert!(
            e["error"].as_str().expect("error").contains(why),
            "{why}: {e}"
        );
    }
    assert_eq!(
        get().await.json::<Value>().await.expect("JSON")["enabled"],
        false,
        "a refused change changed something"
    );
    let secret = "a-client-secret-that-must-stay-hidden";
    tests::harness::record_secret(secret);
    let res = put(
        json!({"issuer": "https://acme.okta.com/", "client_id": "0oa1",
        "client_secret": secret, "claim": "preferred_username"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    assert!(!body.contains(secret));
    let status: Value = get().await.json().await.expect("JSON");
    assert_eq!(status["issuer"], "https://acme.okta.com");
    assert_eq!(status["claim"], "preferred_username");
    assert_eq!(status["client_secret_set"], true);
    let log = app
        .admin(Method::GET, "/admin/v1/activity", &key, None)
        .await
        .text()
        .await
        .expect("body");
    assert!(
        log.contains("sso.updated") && !log.contains(secret),
        "{log}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orgs WHERE oidc_client_secret LIKE '%{secret}%'"
        ))
        .await,
        0
    );
    // Without an admin key: nothing.
    let res = app
        .http
        .get(format!("{}/admin/v1/sso", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 401);
    app.stop().await;
}
