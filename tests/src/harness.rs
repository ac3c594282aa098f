//! `TestApp`: the whole stack for one test — its own PostgreSQL database, its own AMQP
//! names (prefix `test-<id>`, queues expiring when unused), a unique email domain — and
//! helpers to act as the operator, an org admin and Okta.

use crate::{events::EventLog, maildev::MailDev, okta::ScimClient, proxy::Proxy};
use common::Settings;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use std::{
    sync::Once,
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// How a test wants its stack.
#[derive(Clone, Debug)]
pub struct Options {
    /// Start a worker with the stack (a test may start it later).
    pub worker: bool,
    pub command_timeout: Duration,
    /// `INGRESS_MAX_IN_FLIGHT`.
    pub max_in_flight: usize,
    /// `COMMANDS_QUEUE_MAX_LENGTH`.
    pub commands_queue_max_length: u32,
    /// `SCIM_RATE_LIMIT_PER_SECOND` (0 = off).
    pub scim_rate_limit: u32,
    /// `AUTH_FAILURES_PER_MINUTE` (0 = off); every test client is 127.0.0.1.
    pub auth_failures_per_minute: u32,
    /// `HEADER_READ_TIMEOUT_MS`.
    pub header_read_timeout: Duration,
    /// The broker nodes (`AMQP_URL`, comma-separated: a cluster's) instead of the
    /// environment's broker. The services then reach them directly, without the per-test
    /// broker proxies: the test stops nodes for real.
    pub amqp_nodes: Option<String>,
    /// `QUORUM_INITIAL_GROUP_SIZE`.
    pub quorum_initial_group_size: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker: true,
            command_timeout: Duration::from_secs(15),
            max_in_flight: 1024,
            commands_queue_max_length: 100_000,
            scim_rate_limit: 0,
            auth_failures_per_minute: 10,
            header_read_timeout: Duration::from_secs(10),
            amqp_nodes: None,
            quorum_initial_group_size: None,
        }
    }
}

/// One org as its admin and its Okta see it.
pub struct Tenant {
    pub org_id: String,
    pub admin_key: String,
    pub scim: ScimClient,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub operator_token: String,
    pub settings: Settings,
    /// A direct connection to this test's database, for assertions.
    pub db: DatabaseConnection,
    pub maildev: MailDev,
    /// A domain no other test uses, for email addresses.
    pub domain: String,
    tasks: Vec<Service>,
    db_name: String,
    server_url: String,
    /// The services reach PostgreSQL, RabbitMQ and the SMTP server through these proxies
    /// (workers through one broker proxy each), so a test can cut or refuse connections
    /// without touching other tests. `db` above connects directly.
    pub db_proxy: Proxy,
    pub amqp_proxy: Proxy,
    pub smtp_proxy: Proxy,
    amqp_direct: String,
    /// The services use `amqp_direct` (a list of cluster nodes) without proxies.
    cluster: bool,
    /// Every event the stack publishes, checked against its schema at `stop()`.
    events: Option<EventLog>,
}

/// One running service and the switch that stops it.
struct Service {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    /// A worker's own broker connection runs through this, so it can be killed alone.
    amqp: Option<Proxy>,
    /// A worker's or mailer's health listener (`/readyz`).
    health: Option<std::net::SocketAddr>,
}

impl Service {
    fn spawn<F>(
        name: &'static str,
        run: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, mut rx) = watch::channel(false);
        let signal = Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        });
        Self {
            name,
            stop,
            task: tokio::spawn(run(signal)),
            amqp: None,
            health: None,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let name = self.name;
        let result = tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .unwrap_or_else(|_| panic!("{name} did not stop within 60 s"));
        result
            .unwrap_or_else(|e| panic!("{name} panicked: {e}"))
            .unwrap_or_else(|e| panic!("{name} failed: {e:#}"));
    }
}

static LOGGING: Once = Once::new();

/// What the log file keeps when `TEST_LOG_FILE` is set: Roster's crates verbose, the
/// libraries at info (`TEST_LOG_FILTER` overrides it).
const FILE_LOG_FILTER: &str =
    "info,common=debug,ingress=debug,worker=debug,mailer=debug,tests=debug,tower_http=debug";

/// `TEST_LOG_FILE=path`: every log line of the run, as JSON, appended to `path` (for
/// `.ci/log-scan`). Else `TEST_LOG=1`: pretty logs on stdout. Else none.
fn init_logging() {
    LOGGING.call_once(|| {
        if let Some(path) = std::env::var_os("TEST_LOG_FILE").filter(|p| !p.is_empty()) {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("opening TEST_LOG_FILE {path:?}: {e}"));
            let filter =
                std::env::var("TEST_LOG_FILTER").unwrap_or_else(|_| FILE_LOG_FILTER.to_owned());
            common::telemetry::init_json_file(&filter, file);
        } else if std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0") {
            common::telemetry::init(
                &std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                common::config::LogFormat::Pretty,
            );
        }
    });
}

/// Where the secrets a test run handles are listed, one a line, so `.ci/log-scan` can look
/// for each exact value in the logs: `TEST_SECRETS_FILE`, else `<TEST_LOG_FILE>.secrets`.
fn secrets_file() -> Option<std::path::PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|p| !p.is_empty());
    nonempty("TEST_SECRETS_FILE").map(Into::into).or_else(|| {
        nonempty("TEST_LOG_FILE").map(|p| {
            let mut p = p;
            p.push(".secrets");
            p.into()
        })
    })
}

/// Notes a token, key or link the API handed the test, for the log scan (a no-op unless
/// a log file is being written). Appends one line per call.
pub fn record_secret(secret: &str) {
    use std::io::Write;
    let Some(path) = secrets_file() else {
        return;
    };
    let secret = secret.trim();
    if secret.is_empty() || secret.contains(['\n', '\r']) {
        return;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening the secrets file {path:?}: {e}"));
    file.write_all(format!("{secret}\n").as_bytes())
        .unwrap_or_else(|e| panic!("writing the secrets file {path:?}: {e}"));
}

/// `scheme://user@host:port` of a URL (without the database path).
fn server_of(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_owned(),
        None => url.to_owned(),
    }
}

/// `PUT {base}/admin/v1/provisioning {"enabled": true}` with the org's admin key, as the
/// load tools run it against a running stack: the SCIM token, or an error when not `200`.
pub async fn provisioning_token(
    http: &reqwest::Client,
    base: &str,
    admin_key: &str,
) -> anyhow::Result<String> {
    let res = http
        .put(format!("{base}/admin/v1/provisioning"))
        .bearer_auth(admin_key)
        .json(&json!({"enabled": true}))
        .send()
        .await?;
    if res.status() != reqwest::StatusCode::OK {
        anyhow::bail!("PUT /admin/v1/provisioning answered {}", res.status());
    }
    res.json::<Value>().await?["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("token"))
}

/// `host:port` of a URL.
pub fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hp = rest.split(['/', '?']).next().unwrap_or(rest);
    if hp.contains(':') {
        hp.to_owned()
    } else {
        format!("{hp}:{default_port}")
    }
}

async fn require(what: &str, addr: &str, how: &str) {
    let ok = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(ok, "{what} is not reachable at {addr}: {how}");
}

/// Fails the test, saying what to start, when a service it needs is not running.
async fn require_services(s: &Settings, maildev: &MailDev) {
    let how = "run `bash .ci/test` (it starts what is missing) or `docker compose up -d postgres rabbitmq maildev`";
    require("PostgreSQL", &host_port(s.database_url.expose(), 5432), how).await;
    for node in common::amqp::nodes(s.amqp_url.expose()) {
        require("RabbitMQ", &host_port(node, 5672), how).await;
    }
    require(
        "The SMTP server (MailDev)",
        &host_port(s.smtp_url.expose(), 25),
        how,
    )
    .await;
    require("MailDev's web API", &host_port(maildev.base(), 80), how).await;
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> Self {
        init_logging();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut settings = Settings::from_env().expect("settings from the environment");
        let cluster = opts.amqp_nodes.is_some();
        if let Some(nodes) = &opts.amqp_nodes {
            settings.amqp_url = common::secret::Secret::new(nodes.clone());
        }
        if opts.quorum_initial_group_size.is_some() {
            settings.quorum_initial_group_size = opts.quorum_initial_group_size;
        }
        let maildev = MailDev::from_env();
        require_services(&settings, &maildev).await;

        let server_url = server_of(settings.database_url.expose());
        let db_name = format!("roster_test_{id}");
        let admin = Database::connect(format!("{server_url}/postgres"))
            .await
            .expect("connecting to PostgreSQL's `postgres` database");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{db_name}\""))
            .await
            .expect("creating the test database");
        let _ = admin.close().await;

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let operator_token = format!("op-{id}");
        record_secret(&operator_token);
        settings.database_url = common::secret::Secret::new(format!("{server_url}/{db_name}"));
        settings.amqp_prefix = format!("test-{}", &id[..12]);
        // Queues are deleted when the test ends; expiry catches a test that crashed.
        settings.queue_expires = Some(Duration::from_secs(60));
        settings.public_url = base.clone();
        // Employee sign-in seals each org's OIDC client secret with this key.
        if settings.secrets_key.is_none() {
            use base64::Engine;
            let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
            settings.secrets_key = common::sealed::SealKey::parse(&key).ok();
        }
        settings.operator_token = Some(common::secret::Secret::new(operator_token.clone()));
        settings.command_timeout = opts.command_timeout;
        settings.max_in_flight = opts.max_in_flight;
        settings.scim_rate_limit = opts.scim_rate_limit;
        settings.auth_failures_per_minute = opts.auth_failures_per_minute;
        settings.header_read_timeout = opts.header_read_timeout;
        settings.commands_queue_max_length = opts.commands_queue_max_length;
        settings.worker_prefetch = 16;
        // Tests run side by side against one PostgreSQL (100 connections by default).
        settings.db_max_connections = 5;
        settings.mailer_concurrency = 4;
        // Few retry queues: every quorum queue costs the broker file descriptors, and the
        // tests share one broker.
        settings.retry_delays = [300, 2000].map(Duration::from_millis).to_vec();

        worker::migrate(&settings).await.expect("migrations");
        let mut direct = sea_orm::ConnectOptions::new(settings.database_url.expose().clone());
        direct.max_connections(3).sqlx_logging(false);
        let db = Database::connect(direct)
            .await
            .expect("connecting to the test database");
        let db_proxy = Proxy::start(&host_port(settings.database_url.expose(), 5432)).await;
        let amqp_direct = settings.amqp_url.expose().clone();
        let first_node = common::amqp::nodes(&amqp_direct)[0].to_owned();
        let amqp_proxy = Proxy::start(&host_port(&first_node, 5672)).await;
        let smtp_proxy = Proxy::start(&host_port(settings.smtp_url.expose(), 25)).await;
        settings.database_url =
            common::secret::Secret::new(db_proxy.url_for(settings.database_url.expose()));
        if !cluster {
            settings.amqp_url = common::secret::Secret::new(amqp_proxy.url_for(&amqp_direct));
        }
        settings.smtp_url =
            common::secret::Secret::new(smtp_proxy.url_for(settings.smtp_url.expose()));

        let mut app = TestApp {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            operator_token,
            settings,
            db,
            maildev,
            domain: format!("t{}.example.com", &id[..12]),
            tasks: Vec::new(),
            db_name,
            server_url,
            db_proxy,
            amqp_proxy,
            smtp_proxy,
            amqp_direct,
            cluster,
            events: None,
        };
        let ingress = ingress::Application::with_listener(app.settings.clone(), listener)
            .await
            .expect("ingress");
        app.tasks
            .push(Service::spawn("ingress", |stop| ingress.run(stop)));
        app.start_mailer().await;
        if opts.worker {
            app.start_worker().await;
        }
        app.wait_ready().await;
        // A cluster test stops nodes: an event log on one of them could go with it.
        if !cluster {
            let exchange = common::amqp::Topology::from_settings(&app.settings).events_exchange();
            app.events = Some(
                EventLog::bind(&app.amqp_direct, &exchange)
                    .await
                    .expect("binding the test's event queue"),
            );
        }
        app
    }

    /// Starts another ingress on the same database and broker; its base URL.
    pub async fn start_ingress(&mut self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let ingress = ingress::Application::with_listener(self.settings.clone(), listener)
            .await
            .expect("another ingress");
        self.tasks
            .push(Service::spawn("ingress", |stop| ingress.run(stop)));
        base
    }

    /// Starts a worker with a broker connection of its own (see `kill_workers`).
    pub async fn start_worker(&mut self) {
        self.spawn_worker(self.settings.clone()).await;
    }

    /// Starts a worker whose database connections run through a proxy of its own, so a
    /// test can take the database away from the worker alone (the ingress still reads it).
    pub async fn start_worker_with_own_db(&mut self) -> Proxy {
        let direct = format!("{}/{}", self.server_url, self.db_name);
        let db = Proxy::start(&host_port(&direct, 5432)).await;
        let mut settings = self.settings.clone();
        settings.database_url = common::secret::Secret::new(db.url_for(&direct));
        self.spawn_worker(settings).await;
        db
    }

    /// A worker with `settings`, reaching the broker through a proxy of its own (but on a
    /// cluster, where it is given every node).
    async fn spawn_worker(&mut self, mut settings: Settings) {
        let proxy = if self.cluster {
            None
        } else {
            let proxy = Proxy::start(&host_port(&self.amqp_direct, 5672)).await;
            settings.amqp_url = common::secret::Secret::new(proxy.url_for(&self.amqp_direct));
            Some(proxy)
        };
        let w = worker::Worker::connect(&settings).await;
        let health = TcpListener::bind("127.0.0.1:0").await.expect("health port");
        let addr = health.local_addr().expect("health address");
        let mut service = Service::spawn("worker", |stop| w.run(health, stop));
        service.amqp = proxy;
        service.health = Some(addr);
        self.tasks.push(service);
    }

    /// Stops the mailer (as SIGTERM would) and checks it exited cleanly.
    pub async fn stop_mailer(&mut self) {
        self.stop_named("mailer").await;
    }

    /// The `host:port` the test's mailer sends to (its SMTP proxy), for a relay of a
    /// test's own to forward to.
    pub fn smtp_upstream(&self) -> String {
        self.settings.smtp_url.expose().replace("smtp://", "")
    }

    /// Starts a mailer that sends through `smtp_url` instead of the test's SMTP proxy.
    pub async fn start_mailer_via(&mut self, smtp_url: &str) {
        let mut settings = self.settings.clone();
        settings.smtp_url = common::secret::Secret::new(smtp_url.to_owned());
        self.spawn_mailer(&settings).await;
    }

    /// Which services answer `/readyz` with 200 now: the ingress, then each worker and
    /// mailer, by name.
    pub async fn readiness(&self) -> Vec<(&'static str, bool)> {
        let ready = |url: String| async move {
            self.http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        };
        let mut out = vec![("ingress", ready(format!("{}/readyz", self.base)).await)];
        for s in &self.tasks {
            if let Some(addr) = s.health {
                out.push((s.name, ready(format!("http://{addr}/readyz")).await));
            }
        }
        out
    }

    /// Kills the running workers as a crash would: the process is gone and its broker
    /// connection drops with its unacknowledged commands.
    pub fn kill_workers(&mut self) {
        let (workers, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|s| s.name == "worker");
        self.tasks = rest;
        for w in workers {
            w.task.abort();
            if let Some(p) = &w.amqp {
                p.down();
            }
        }
    }

    /// Drops every broker connection of every service at once (a broker restart, as the
    /// services see it); they must recover by themselves.
    pub fn cut_broker_connections(&self) {
        self.amqp_proxy.cut();
        for p in self.tasks.iter().filter_map(|s| s.amqp.as_ref()) {
            p.cut();
        }
    }

    /// A broker outage as every service sees it: open connections drop and new ones are
    /// refused until `broker_restored`.
    pub fn broker_down(&self) {
        self.amqp_proxy.down();
        for p in self.tasks.iter().filter_map(|s| s.amqp.as_ref()) {
            p.down();
        }
    }

    pub fn broker_restored(&self) {
        self.amqp_proxy.restore();
        for p in self.tasks.iter().filter_map(|s| s.amqp.as_ref()) {
            p.restore();
        }
    }

    /// Drops the services' side of every broker connection while RabbitMQ keeps its side,
    /// and what it owns, for `hold`: a partition the broker notices only then.
    pub fn sever_broker_connections(&self, hold: Duration) {
        self.amqp_proxy.sever(hold);
        for p in self.tasks.iter().filter_map(|s| s.amqp.as_ref()) {
            p.sever(hold);
        }
    }

    /// Stops the running workers (as SIGTERM would) and checks they exited cleanly.
    pub async fn stop_worker(&mut self) {
        self.stop_named("worker").await;
    }

    /// Stops every service called `name` (as SIGTERM would) and checks each exited cleanly.
    async fn stop_named(&mut self, name: &str) {
        let (named, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|s| s.name == name);
        self.tasks = rest;
        for service in named {
            service.stop().await;
        }
    }

    pub async fn start_mailer(&mut self) {
        self.spawn_mailer(&self.settings.clone()).await;
    }

    async fn spawn_mailer(&mut self, settings: &Settings) {
        let m = mailer::Mailer::connect(settings).await.expect("mailer");
        let health = TcpListener::bind("127.0.0.1:0").await.expect("health port");
        let addr = health.local_addr().expect("health address");
        let mut service = Service::spawn("mailer", |stop| m.run(health, stop));
        service.health = Some(addr);
        self.tasks.push(service);
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let ok = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ingress never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The broker URL without the proxy, for a test's own connections.
    pub fn settings_amqp_direct(&self) -> String {
        self.amqp_direct.clone()
    }

    /// How many consumers RabbitMQ counts on `queue` now (a passive declare).
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.passive_declare(queue).await.consumer_count()
    }

    /// How many messages wait in `queue` now, ready or not (a passive declare).
    pub async fn messages(&self, queue: &str) -> u32 {
        self.passive_declare(queue).await.message_count()
    }

    async fn passive_declare(&self, queue: &str) -> lapin::Queue {
        let conn = connect_direct(&self.amqp_direct)
            .await
            .expect("connecting to RabbitMQ");
        let channel = conn.create_channel().await.expect("channel");
        let q = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = conn.close(200, "counted".into()).await;
        q
    }

    /// A unique email address for this test.
    pub fn email(&self, local: &str) -> String {
        format!("{local}@{}", self.domain)
    }

    /// `POST /admin/v1/orgs` as the operator; returns (id, admin key).
    pub async fn create_org(&self, name: &str) -> (String, String) {
        let res = self
            .http
            .post(format!("{}/admin/v1/orgs", self.base))
            .bearer_auth(&self.operator_token)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("POST /admin/v1/orgs");
        assert_eq!(res.status(), 201, "creating an org");
        let body: Value = res.json().await.expect("JSON");
        let admin_key = body["admin_key"].as_str().expect("admin_key").to_owned();
        record_secret(&admin_key);
        (body["id"].as_str().expect("id").to_owned(), admin_key)
    }

    /// An admin API call with the given key.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("admin API call")
    }

    /// The text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    }

    /// `PUT /admin/v1/settings` with `key` and `body`.
    pub async fn put_settings(&self, key: &str, body: Value) -> reqwest::Response {
        self.admin(reqwest::Method::PUT, "/admin/v1/settings", key, Some(body))
            .await
    }

    /// `DELETE path` on the admin API with `key`.
    pub async fn admin_delete(&self, path: &str, key: &str) -> reqwest::Response {
        self.admin(reqwest::Method::DELETE, path, key, None).await
    }

    /// `PUT /admin/v1/provisioning {"enabled": true}`; returns the SCIM token.
    pub async fn enable_provisioning(&self, admin_key: &str) -> String {
        let res = self
            .admin(
                reqwest::Method::PUT,
                "/admin/v1/provisioning",
                admin_key,
                Some(json!({"enabled": true})),
            )
            .await;
        assert_eq!(res.status(), 200, "enabling provisioning");
        let body: Value = res.json().await.expect("JSON");
        let token = body["token"].as_str().expect("a token").to_owned();
        record_secret(&token);
        token
    }

    /// A new org with provisioning on, and an Okta client holding its token.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let (org_id, admin_key) = self.create_org(name).await;
        let token = self.enable_provisioning(&admin_key).await;
        Tenant {
            org_id,
            admin_key,
            scim: self.scim(&token),
        }
    }

    pub fn scim(&self, token: &str) -> ScimClient {
        ScimClient {
            base: self.base.clone(),
            token: token.to_owned(),
            http: self.http.clone(),
        }
    }

    /// Runs a `SELECT count(*) …` (or any single bigint) against this test's database.
    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(common::db::stmt(sql, []))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a bigint")
    }

    /// Asserts that `sql` (a `count(*)`) counts no row.
    pub async fn assert_none(&self, sql: &str) {
        assert_eq!(self.count(sql).await, 0, "{sql}");
    }

    /// Waits until `sql` counts `n`, or the timeout passes; returns the last count.
    pub async fn wait_count(&self, sql: &str, n: i64, timeout: Duration) -> i64 {
        let start = Instant::now();
        loop {
            let c = self.count(sql).await;
            if c == n || start.elapsed() > timeout {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every service as SIGTERM would and checks each exited cleanly, then that every
    /// event published matched its JSON Schema and came in version order.
    pub async fn stop(mut self) {
        for service in std::mem::take(&mut self.tasks) {
            service.stop().await;
        }
        if let Some(events) = self.events.take()
            && let Err(problems) = events.check().await
        {
            panic!("events that break the message contract (docs/messages.md):\n{problems}");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for s in &self.tasks {
            let _ = s.stop.send(true);
            s.task.abort();
        }
        // Drop the database and the queues from a thread of its own: Drop cannot await.
        let url = format!("{}/postgres", self.server_url);
        let name = self.db_name.clone();
        let amqp_url = self.amqp_direct.clone();
        let topology = common::amqp::Topology::from_settings(&self.settings);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                delete_topology(&amqp_url, &topology).await;
                if let Ok(admin) = Database::connect(url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Deletes a test's queues and exchanges (best effort, bounded).
async fn delete_topology(url: &str, topology: &common::amqp::Topology) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Some(conn) = connect_direct(url).await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in topology.all_queues() {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
            )
            .await;
        }
        for x in topology.all_exchanges() {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
            )
            .await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close(200, "test over".into())).await;
}

/// A connection of the test's own to the first of `nodes` (one AMQP URL or a cluster's
/// list) that answers within 5 s.
async fn connect_direct(nodes: &str) -> Option<lapin::Connection> {
    for node in common::amqp::nodes(nodes) {
        let connect = lapin::Connection::connect(node, lapin::ConnectionProperties::default());
        if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await {
            return Some(conn);
        }
    }
    None
}
