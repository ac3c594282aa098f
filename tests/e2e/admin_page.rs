//! The Okta integration page (`/admin`) in real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`): sign in, enable provisioning, copy the
//! token into a SCIM client, see people and activity, save a mapping and the invite
//! setting, sign out; plus CSRF refusal and escaping. Saves a screenshot under the target
//! directory.

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tests::{harness::TestApp, okta::create_user_body};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const MAIL_WAIT: Duration = Duration::from_secs(20);
const PAGE_WAIT: Duration = Duration::from_secs(30);

/// chromedriver on a free port with one headless Chromium session; both end on drop.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    pub(crate) async fn start() -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the browser test needs Debian's Chromium and its driver \
                 (`apt-get install chromium chromium-driver`; .ci/run installs them)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A process group of its own, so Chromium (its child) can be killed with it.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile =
            std::env::temp_dir().join(format!("roster-chromium-{}", uuid::Uuid::new_v4()));
        Self {
            client: connect(port, &profile).await,
            driver,
            profile,
        }
    }

    /// Ends the WebDriver session, then (on drop) chromedriver and Chromium.
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Whether the page fits the window's width (no sideways scrolling), as JSON.
    pub(crate) async fn fits_width(&self) -> Value {
        self.client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await
            .expect("measuring")
    }

    /// Types `key` into the sign-in form's admin key and submits it.
    pub(crate) async fn sign_in_with_key(&self, key: &str) {
        self.find("#admin-key")
            .await
            .send_keys(key)
            .await
            .expect("typing");
        self.submit("#sign-in").await;
    }

    /// Opens `{base}/admin` and signs in with `key`.
    pub(crate) async fn open_admin(&self, base: &str, key: &str) {
        self.client
            .goto(&format!("{base}/admin"))
            .await
            .expect("open /admin");
        self.sign_in_with_key(key).await;
    }

    /// Clicks a submit button and waits until the next document has loaded.
    pub(crate) async fn submit(&self, css: &str) {
        self.client
            .execute("window.__rosterOldPage = true; return true;", vec![])
            .await
            .expect("marking the page");
        self.find(css).await.click().await.expect("clicking");
        let start = Instant::now();
        loop {
            let ready = self
                .client
                .execute(
                    "return document.readyState === 'complete' && !window.__rosterOldPage;",
                    vec![],
                )
                .await;
            if ready.is_ok_and(|v| v == Value::Bool(true)) {
                return;
            }
            assert!(
                start.elapsed() < PAGE_WAIT,
                "no new page after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    pub(crate) async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .is_empty()
    }

    pub(crate) async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    async fn checked(&self, css: &str) -> bool {
        self.find(css).await.is_selected().await.expect("checked")
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = option_env!("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
        let path = dir.join(name);
        // The whole page: make the window as tall as the document first.
        let (width, _) = self.client.get_window_size().await.expect("window size");
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .expect("measuring")
            .as_u64()
            .unwrap_or(2000);
        let size = |n: u64| u32::try_from(n).unwrap_or(2000);
        self.client
            .set_window_size(size(width), size(height + 100))
            .await
            .expect("resizing");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("writing the screenshot");
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every Chromium process it started, even after a failed step.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Opens a WebDriver session once chromedriver answers.
async fn connect(port: u16, profile: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,2000",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let caps = caps.as_object().cloned().expect("an object");
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                panic!("no WebDriver session from {CHROMEDRIVER} on port {port}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Raw HTTP to the page with the browser's session cookie (what the browser hides:
/// headers, the HTML as sent, requests a page would never make).
struct Raw<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: String,
}

impl Raw<'_> {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.app.base))
            .header(header::COOKIE, &self.cookie)
            .send()
            .await
            .expect("GET")
    }

    async fn post(&self, path: &str, form: &str, cookie: bool) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.app.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if cookie {
            req = req.header(header::COOKIE, &self.cookie);
        }
        req.send().await.expect("POST")
    }
}

async fn settings(app: &TestApp, key: &str) -> Value {
    let res = app
        .admin(Method::GET, "/admin/v1/settings", key, None)
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connects_okta_from_the_integration_page() {
    let app = TestApp::spawn().await;
    let (_, admin_key) = app.create_org("Acme").await;
    let b = Browser::start().await;
    let page = format!("{}/admin", app.base);

    // Signing in: a wrong key is refused on the form, the right one opens the page.
    b.client.goto(&page).await.expect("open /admin");
    b.sign_in_with_key("rst_admin_wrong").await;
    assert!(b.text("#sign-in-error").await.contains("not valid"));
    b.sign_in_with_key(&admin_key).await;
    assert!(
        !b.checked("#enable-provisioning").await,
        "off for a new org"
    );

    // Enabling provisioning shows the token once, with the SCIM base URL.
    b.find("#enable-provisioning")
        .await
        .click()
        .await
        .expect("check");
    b.submit("#save-provisioning").await;
    let token = b.value("#scim-token").await;
    assert!(token.starts_with("rst_scim_"), "{token:?}");
    assert_eq!(
        b.value("#scim-base-url").await,
        format!("{}/scim/v2", app.base)
    );
    assert!(b.exists("button[data-copy-target=scim-token]").await);
    assert!(
        b.text("#provisioning-status")
            .await
            .contains(&token[token.len() - 4..])
    );

    // The token from the page works for Okta.
    let okta = app.scim(&token);
    let first = app.email("ada");
    okta.create_user_201(&first, "Ada", "Lovelace").await;
    let evil = app.email("evil");
    let mut body = create_user_body(&evil, "<script>alert('x')</script>", "Mallory");
    body["title"] = json!("<img src=x onerror=alert(1)>");
    assert_eq!(okta.post_user(&body).await.status(), 201);
    let pwn = app.email("pwn");
    let pwn_name = r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"#;
    okta.create_user_201(&pwn, pwn_name, "Pwn").await;

    b.client.goto(&page).await.expect("reload");
    assert!(
        !b.exists("#scim-token").await,
        "the token is shown only once"
    );
    let ada = b
        .find(&format!("tr.person[data-user-name='{first}']"))
        .await;
    let ada = ada.text().await.expect("row text");
    assert!(
        ada.contains("Ada Lovelace") && ada.contains(&first),
        "{ada}"
    );
    let activity = b.text("#activity-table").await;
    assert!(
        activity.contains("user.created") && activity.contains(&first),
        "{activity}"
    );

    // Values from Okta are text, never markup.
    let mallory = b.text(&format!("tr.person[data-user-name='{evil}']")).await;
    assert!(
        mallory.contains("<script>alert('x')</script> Mallory"),
        "{mallory}"
    );
    assert!(
        mallory.contains("<img src=x onerror=alert(1)>"),
        "{mallory}"
    );
    assert!(b.client.get_alert_text().await.is_err(), "no script ran");
    let row = b.text(&format!("tr.person[data-user-name='{pwn}']")).await;
    assert!(
        row.contains(&format!("{pwn_name} Pwn")),
        "shown as text: {row}"
    );
    let pwned = b
        .client
        .execute(
            "return [typeof window.__pwned, document.querySelectorAll('img[src=x]').length];",
            vec![],
        )
        .await
        .expect("probing");
    assert_eq!(
        pwned,
        json!(["undefined", 0]),
        "markup from Okta ran or rendered"
    );
    let cookie = b
        .client
        .get_named_cookie("roster_admin")
        .await
        .expect("the session cookie");
    let raw = Raw {
        app: &app,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        cookie: format!("roster_admin={}", cookie.value()),
    };
    let res = raw.get("/admin").await;
    let h = res.headers().clone();
    let html = res.text().await.expect("HTML");
    assert!(html.contains("&lt;script&gt;alert("), "escaped");
    assert!(
        !html.contains("<script>alert") && !html.contains("<img src=x"),
        "unescaped markup"
    );
    assert!(
        h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("CSP")
            .contains("script-src 'self'")
    );
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");

    // Forms without the session's CSRF token change nothing.
    for form in ["send_invites=", "send_invites=&csrf=forged"] {
        let res = raw.post("/admin/settings", form, true).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{form}");
    }
    let res = raw.post("/admin/settings", "send_invites=", false).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "no session: back to sign-in"
    );
    assert_eq!(res.headers()[header::LOCATION], "/admin");
    assert_eq!(settings(&app, &admin_key).await["send_invites"], true);

    // Rotating: a new token shown once; the old one stops working.
    b.submit("#rotate-token").await;
    let rotated = b.value("#scim-token").await;
    assert_ne!(rotated, token);
    assert_eq!(
        okta.post_user(&create_user_body(&app.email("late"), "L", "T"))
            .await
            .status(),
        401
    );
    let okta = app.scim(&rotated);

    // A policy change is saved; a bad custom field is refused with the reason shown.
    b.find("select[data-field=job_title]")
        .await
        .select_by_value("create_only")
        .await
        .expect("select");
    b.submit("#save-mappings").await;
    assert_eq!(b.value("select[data-field=job_title]").await, "create_only");
    b.find("#new-field")
        .await
        .send_keys("custom.Shirt")
        .await
        .expect("typing");
    b.find("#new-scim-attribute")
        .await
        .send_keys("title")
        .await
        .expect("typing");
    b.submit("#save-mappings").await;
    assert!(b.text("#page-error").await.contains("custom.Shirt"));
    b.client.goto(&page).await.expect("reload");
    assert_eq!(b.value("select[data-field=job_title]").await, "create_only");
    assert!(!b.exists("tr.mapping[data-field='custom.Shirt']").await);

    // Invites off: the next person Okta adds gets no invite.
    assert!(b.checked("#send-invites").await);
    b.find("#send-invites")
        .await
        .click()
        .await
        .expect("uncheck");
    b.submit("#save-settings").await;
    assert!(!b.checked("#send-invites").await);
    assert_eq!(settings(&app, &admin_key).await["send_invites"], false);
    let quiet = app.email("quiet");
    okta.create_user_201(&quiet, "Quinn", "Quiet").await;
    let loud = app.tenant("Loud").await;
    let sentinel = app.email("sentinel");
    loud.scim.create_user_201(&sentinel, "S", "T").await;
    assert_eq!(app.maildev.wait_for(&sentinel, 1, MAIL_WAIT).await.len(), 1);
    assert_eq!(
        app.maildev.wait_for(&first, 1, MAIL_WAIT).await.len(),
        1,
        "invited while on"
    );
    assert!(
        app.maildev.to(&quiet).await.is_empty(),
        "an invite went out with invites off"
    );

    b.client.goto(&page).await.expect("reload");
    b.find(&format!("tr.person[data-user-name='{quiet}']"))
        .await;
    let shot = b.screenshot("admin-page.png").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);
    b.client
        .set_window_size(375, 2000)
        .await
        .expect("phone width");
    b.screenshot("admin-page-phone.png").await;
    let overflow = b.fits_width().await;
    assert_eq!(
        overflow,
        Value::Bool(true),
        "the page scrolls sideways at 375 px"
    );

    // Signing out ends the session: /admin is the sign-in form again.
    b.submit("#sign-out").await;
    assert!(b.exists("#sign-in-form").await);
    b.client.goto(&page).await.expect("reload");
    assert!(b.exists("#sign-in-form").await);
    assert!(!b.exists("#provisioning").await);

    b.close().await;
    app.stop().await;
}

/// A tripped mass-deprovisioning guard shows on the page as a banner with the held count;
/// approving from it lets Okta's retry through, and the banner goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_banner_shows_what_is_held_and_approves_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let res = app
        .put_settings(
            &t.admin_key,
            json!({"deprovision_guard": {"threshold_percent": 1, "min_count": 1}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let mut ids = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let res = t
            .scim
            .post_user(&create_user_body(&app.email(name), "X", name))
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("JSON");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "replace", "value": {"active": false}}]});
    let deactivate = |id: String| {
        let (okta, off) = (t.scim.clone(), off.clone());
        async move {
            okta.send_json(Method::PATCH, &format!("/Users/{id}"), &off)
                .await
                .status()
        }
    };
    assert_eq!(deactivate(ids[0].clone()).await, StatusCode::OK);
    assert_eq!(
        deactivate(ids[1].clone()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let b = Browser::start().await;
    b.open_admin(&app.base, &t.admin_key).await;
    assert_eq!(b.text("#guard-held").await, "1");
    assert!(b.text("#guard-banner").await.contains("held"));
    let log = b.text("#provisioning-log-table").await;
    assert!(
        log.contains("503") && log.contains("held for an admin"),
        "{log}"
    );
    b.submit("#guard-approve").await;
    assert!(!b.exists("#guard-banner").await, "approved: no banner");
    assert_eq!(deactivate(ids[1].clone()).await, StatusCode::OK);

    b.close().await;
    app.stop().await;
}
