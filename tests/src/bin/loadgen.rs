//! `loadgen`: drives a running Roster stack over HTTP with Okta's exact requests and
//! reports throughput and latency, with a baseline of the worker's create transaction run
//! straight against PostgreSQL. It starts nothing itself. See `docs/performance.md`.
//!
//! ```text
//! cargo run --release -p tests --bin loadgen -- --base-url http://127.0.0.1:8080 \
//!     --operator-token dev-operator-token --scenario create --concurrency 64 \
//!     --requests 20000 --database-url postgres://postgres@127.0.0.1/roster --out create.json
//! ```

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};
use tests::okta::{self, ScimClient};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::Semaphore,
    task::JoinSet,
};
use uuid::Uuid;

const USAGE: &str = "\
loadgen — drives a running Roster stack with Okta's SCIM requests

USAGE: loadgen [OPTIONS]

  --base-url URL            the ingress (default http://127.0.0.1:8080)
  --token TOKEN             a SCIM token of an existing org, or:
  --operator-token TOKEN    create an org and turn provisioning on through the admin API
                            (invites off unless --scenario create --invites)
  --invites                 keep the new org's invites on (create scenario)
  --scenario S              create | mixed | import | filter (default create)
  --concurrency N           connections / in-flight operations (default 64)
  --rate R                  open loop: operations started per second (absent: closed loop)
  --requests N              operations to run (create: POSTs; import: full page-throughs)
  --duration S              or run for S seconds (default 30 when neither is given)
  --users N                 population for mixed/filter/import, created first if missing
  --domain D                email domain of the population (default loadgen.example)
  --okta-lookup             create: send Okta's `userName eq` lookup before each POST
  --database-url URL        measure the baseline (create): the worker's create
                            transaction straight against PostgreSQL, same concurrency
  --baseline-connections N  PostgreSQL connections of the baseline (default min(N, 32))
  --maildev-url URL         time create→invite in MailDev's API (e.g. http://127.0.0.1:1080);
                            with --database-url, also to the SMTP server's acceptance that
                            the mailer records (invites.sent_at), to the millisecond
  --invite-timeout S        how long to wait for every invite (default 120)
  --sample PID[,PID|name:COMM]  sample VmRSS and CPU of these processes during the run
                            (name:COMM sums every process whose comm is COMM)
  --hold-connections N      open N idle keep-alive connections to the ingress during the run
  --out FILE                write the result as JSON
  --label TEXT              a free-form label stored in the JSON
";

// ---------------------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Create,
    Mixed,
    Import,
    Filter,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Mixed => "mixed",
            Self::Import => "import",
            Self::Filter => "filter",
        }
    }
}

#[derive(Clone, Debug)]
struct Args {
    base_url: String,
    token: Option<String>,
    operator_token: Option<String>,
    invites: bool,
    scenario: Scenario,
    concurrency: usize,
    rate: Option<f64>,
    requests: Option<u64>,
    duration: Option<Duration>,
    users: u64,
    domain: String,
    okta_lookup: bool,
    database_url: Option<String>,
    baseline_connections: Option<u32>,
    maildev_url: Option<String>,
    invite_timeout: Duration,
    sample: Vec<String>,
    hold_connections: usize,
    out: Option<String>,
    label: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        base_url: "http://127.0.0.1:8080".into(),
        token: None,
        operator_token: None,
        invites: false,
        scenario: Scenario::Create,
        concurrency: 64,
        rate: None,
        requests: None,
        duration: None,
        users: 0,
        domain: "loadgen.example".into(),
        okta_lookup: false,
        database_url: None,
        baseline_connections: None,
        maildev_url: None,
        invite_timeout: Duration::from_secs(120),
        sample: Vec::new(),
        hold_connections: 0,
        out: None,
        label: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--base-url" => a.base_url = val(&flag)?.trim_end_matches('/').to_owned(),
            "--token" => a.token = Some(val(&flag)?),
            "--operator-token" => a.operator_token = Some(val(&flag)?),
            "--invites" => a.invites = true,
            "--okta-lookup" => a.okta_lookup = true,
            "--scenario" => {
                a.scenario = match val(&flag)?.as_str() {
                    "create" => Scenario::Create,
                    "mixed" => Scenario::Mixed,
                    "import" => Scenario::Import,
                    "filter" => Scenario::Filter,
                    s => bail!("unknown scenario {s:?} (create, mixed, import, filter)"),
                }
            }
            "--concurrency" => a.concurrency = val(&flag)?.parse().context("--concurrency")?,
            "--rate" => a.rate = Some(val(&flag)?.parse().context("--rate")?),
            "--requests" => a.requests = Some(val(&flag)?.parse().context("--requests")?),
            "--duration" => {
                a.duration = Some(Duration::from_secs_f64(
                    val(&flag)?.parse().context("--duration")?,
                ))
            }
            "--users" => a.users = val(&flag)?.parse().context("--users")?,
            "--domain" => a.domain = val(&flag)?,
            "--database-url" => a.database_url = Some(val(&flag)?),
            "--baseline-connections" => {
                a.baseline_connections =
                    Some(val(&flag)?.parse().context("--baseline-connections")?)
            }
            "--maildev-url" => a.maildev_url = Some(val(&flag)?.trim_end_matches('/').to_owned()),
            "--invite-timeout" => {
                a.invite_timeout =
                    Duration::from_secs_f64(val(&flag)?.parse().context("--invite-timeout")?)
            }
            "--sample" | "--sample-rss" => {
                a.sample.extend(val(&flag)?.split(',').map(str::to_owned))
            }
            "--hold-connections" => {
                a.hold_connections = val(&flag)?.parse().context("--hold-connections")?
            }
            "--out" => a.out = Some(val(&flag)?),
            "--label" => a.label = Some(val(&flag)?),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if a.token.is_none() && a.operator_token.is_none() {
        bail!("give --token or --operator-token\n\n{USAGE}");
    }
    if a.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if a.rate.is_some_and(|r| r <= 0.0) {
        bail!("--rate must be positive");
    }
    if a.requests.is_none() && a.duration.is_none() {
        a.duration = Some(Duration::from_secs(30));
    }
    if matches!(
        a.scenario,
        Scenario::Mixed | Scenario::Filter | Scenario::Import
    ) && a.users == 0
    {
        a.users = 1000;
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// Recording

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

struct OpStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> Self {
        Self {
            hist: histogram(),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, latency: Duration, outcome: &Outcome) {
        self.hist
            .saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Status(s) => *self.errors.entry(s.as_u16().to_string()).or_default() += 1,
            Outcome::Io(kind) => *self.errors.entry(kind.clone()).or_default() += 1,
        }
    }

    fn merge(&mut self, other: &OpStats) {
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    fn requests(&self) -> u64 {
        self.hist.len()
    }

    fn summary(&self, label: &str, elapsed: Duration) -> Row {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        Row {
            label: label.to_owned(),
            requests: self.requests(),
            ok: self.ok,
            errors: self.errors.clone(),
            seconds: elapsed.as_secs_f64(),
            throughput: self.requests() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            max_ms: self.hist.max() as f64 / 1000.0,
            mean_ms: self.hist.mean() / 1000.0,
        }
    }
}

enum Outcome {
    Ok,
    Status(StatusCode),
    Io(String),
}

/// Every request's latency by request kind, shared by the connection tasks.
struct Recorder {
    by_op: Mutex<BTreeMap<&'static str, OpStats>>,
    requests: AtomicU64,
    errors: AtomicU64,
    ops_done: AtomicU64,
}

impl Recorder {
    fn new() -> Self {
        Self {
            by_op: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ops_done: AtomicU64::new(0),
        }
    }

    fn record(&self, op: &'static str, latency: Duration, outcome: &Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !matches!(outcome, Outcome::Ok) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut m = self.by_op.lock().expect("recorder lock");
        m.entry(op)
            .or_insert_with(OpStats::new)
            .record(latency, outcome);
    }

    fn snapshot(&self) -> (OpStats, BTreeMap<&'static str, OpStats>) {
        let m = self.by_op.lock().expect("recorder lock");
        let mut total = OpStats::new();
        let mut per = BTreeMap::new();
        for (k, v) in m.iter() {
            total.merge(v);
            let mut c = OpStats::new();
            c.merge(v);
            per.insert(*k, c);
        }
        (total, per)
    }
}

#[derive(Clone, Debug, serde::Serialize)]
struct Row {
    label: String,
    requests: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    seconds: f64,
    throughput: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
}

// ---------------------------------------------------------------------------------------
// Requests, as Okta sends them

struct Ctx {
    args: Args,
    scim: ScimClient,
    rec: Recorder,
    /// Users this run created (email, time the 201 arrived), for the invite timing.
    created: Mutex<Vec<(String, SystemTime)>>,
    /// The population's ids (mixed).
    ids: Vec<String>,
    run_id: String,
}

/// Sends one request and records it under `op`; the latency counts from `since` (the
/// scheduled start in open loop, so a request waiting for a free connection is slow).
async fn send(
    ctx: &Ctx,
    op: &'static str,
    req: reqwest::RequestBuilder,
    expect: &[u16],
    since: Instant,
) -> Option<(StatusCode, Value)> {
    let res = req.send().await;
    let (outcome, out) = match res {
        Ok(res) => {
            let status = res.status();
            let body = res.bytes().await;
            match body {
                Ok(b) => {
                    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                    if expect.contains(&status.as_u16()) {
                        (Outcome::Ok, Some((status, v)))
                    } else {
                        (Outcome::Status(status), Some((status, v)))
                    }
                }
                Err(e) => (Outcome::Io(io_kind(&e)), None),
            }
        }
        Err(e) => (Outcome::Io(io_kind(&e)), None),
    };
    ctx.rec.record(op, since.elapsed(), &outcome);
    out
}

fn io_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "io".into()
    }
}

fn json_req(ctx: &Ctx, method: Method, path: &str, body: &Value) -> reqwest::RequestBuilder {
    ctx.scim
        .request(method, path)
        .header("Content-Type", "application/scim+json; charset=utf-8")
        .body(body.to_string())
}

fn lookup_req(ctx: &Ctx, user_name: &str) -> reqwest::RequestBuilder {
    ctx.scim.request(Method::GET, "/Users").query(&[
        ("filter", format!("userName eq \"{user_name}\"")),
        ("startIndex", "1".to_owned()),
        ("count", "100".to_owned()),
    ])
}

fn page_req(ctx: &Ctx, start_index: u64) -> reqwest::RequestBuilder {
    ctx.scim.request(Method::GET, "/Users").query(&[
        ("startIndex", start_index.to_string()),
        ("count", "100".to_owned()),
    ])
}

/// Okta's `userName eq` lookup of `name`, timed from `since`, expecting `200`.
async fn send_lookup(ctx: &Ctx, name: &str, since: Instant) {
    send(
        ctx,
        "GET /Users?filter",
        lookup_req(ctx, name),
        &[200],
        since,
    )
    .await;
}

fn population_name(ctx: &Ctx, i: u64) -> String {
    format!("pop-{i}@{}", ctx.args.domain)
}

/// Okta's create: optionally its `userName eq` lookup, then `POST /Users`.
async fn op_create(ctx: &Ctx, i: u64, since: Instant, lookup: bool) {
    let name = format!("lg-{}-{i}@{}", ctx.run_id, ctx.args.domain);
    let mut since = since;
    if lookup {
        send_lookup(ctx, &name, since).await;
        since = Instant::now();
    }
    let body = okta::create_user_body(&name, "Load", &format!("Gen{i}"));
    let res = send(
        ctx,
        "POST /Users",
        json_req(ctx, Method::POST, "/Users", &body),
        &[201],
        since,
    )
    .await;
    if let Some((s, _)) = res
        && s == StatusCode::CREATED
    {
        ctx.created
            .lock()
            .expect("created lock")
            .push((name, SystemTime::now()));
    }
}

/// Okta's profile push: `GET /Users/{id}`, then `PUT` of that body with a change.
async fn op_update(ctx: &Ctx, id: &str, since: Instant) {
    let path = format!("/Users/{id}");
    let got = send(
        ctx,
        "GET /Users/{id}",
        ctx.scim.request(Method::GET, &path),
        &[200],
        since,
    )
    .await;
    let Some((StatusCode::OK, Value::Object(mut body))) = got else {
        return;
    };
    let title = format!("Title {}", rand::rng().random_range(0..1_000_000u32));
    body.insert("title".into(), json!(title));
    send(
        ctx,
        "PUT /Users/{id}",
        json_req(ctx, Method::PUT, &path, &Value::Object(body)),
        &[200],
        Instant::now(),
    )
    .await;
}

/// Okta's deactivate then reactivate: `PATCH` with no `path` and an object value.
async fn op_patch(ctx: &Ctx, id: &str, since: Instant) {
    let path = format!("/Users/{id}");
    let mut since = since;
    for active in [false, true] {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": active}}]
        });
        let op = if active {
            "PATCH reactivate"
        } else {
            "PATCH deactivate"
        };
        send(
            ctx,
            op,
            json_req(ctx, Method::PATCH, &path, &body),
            &[200, 204],
            since,
        )
        .await;
        since = Instant::now();
    }
}

/// Okta's import: `GET /Users?startIndex=1&count=100`, then +100 until `totalResults`.
async fn op_import(ctx: &Ctx, since: Instant) {
    let mut start = 1u64;
    let mut since = since;
    loop {
        let first = start == 1;
        let t0 = since;
        let res = page_req(ctx, start).send().await;
        let (outcome, body) = match res {
            Ok(r) => {
                let s = r.status();
                match r.json::<Value>().await {
                    Ok(v) if s == StatusCode::OK => (Outcome::Ok, Some(v)),
                    Ok(_) => (Outcome::Status(s), None),
                    Err(e) => (Outcome::Io(io_kind(&e)), None),
                }
            }
            Err(e) => (Outcome::Io(io_kind(&e)), None),
        };
        let latency = t0.elapsed();
        let Some(body) = body else {
            ctx.rec.record("GET /Users page", latency, &outcome);
            return;
        };
        let total = body["totalResults"].as_u64().unwrap_or(0);
        let got = body["itemsPerPage"].as_u64().unwrap_or(0);
        let last = got == 0 || start + got > total;
        let op = match (first, last) {
            (true, _) => "GET /Users page first",
            (false, true) => "GET /Users page last",
            _ => "GET /Users page",
        };
        ctx.rec.record(op, latency, &outcome);
        if last {
            return;
        }
        start += got;
        since = Instant::now();
    }
}

async fn run_op(ctx: &Ctx, i: u64, since: Instant) {
    match ctx.args.scenario {
        Scenario::Create => op_create(ctx, i, since, ctx.args.okta_lookup).await,
        Scenario::Filter => {
            let n = rand::rng().random_range(0..ctx.args.users);
            let name = population_name(ctx, n);
            send_lookup(ctx, &name, since).await;
        }
        Scenario::Import => op_import(ctx, since).await,
        Scenario::Mixed => {
            // Okta's steady state: mostly profile pushes, some assignments, some
            // deactivate/reactivate cycles (docs/performance.md).
            let (roll, pick) = {
                let mut r = rand::rng();
                (
                    r.random_range(0..100u32),
                    r.random_range(0..ctx.ids.len().max(1)),
                )
            };
            match (roll, ctx.ids.get(pick)) {
                (0..20, _) | (_, None) => op_create(ctx, i, since, true).await,
                (20..80, Some(id)) => op_update(ctx, id, since).await,
                (_, Some(id)) => op_patch(ctx, id, since).await,
            }
        }
    }
    ctx.rec.ops_done.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// Driving: closed loop (N tasks as fast as they go) or open loop (a schedule of R/s)

fn progress(args: &Args) -> ProgressBar {
    let pb = match (args.requests, args.duration) {
        (Some(n), _) => ProgressBar::new(n),
        (None, Some(d)) => ProgressBar::new(d.as_secs()),
        (None, None) => ProgressBar::no_length(),
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    pb
}

async fn drive(ctx: Arc<Ctx>) -> Duration {
    let args = &ctx.args;
    let pb = progress(args);
    let by_count = args.requests.is_some();
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let ctx = ctx.clone();
        let pb = pb.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut last = (0u64, Instant::now());
            let mut every = tokio::time::interval(Duration::from_millis(500));
            while !done.load(Ordering::Relaxed) {
                every.tick().await;
                let reqs = ctx.rec.requests.load(Ordering::Relaxed);
                let rate = (reqs - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (reqs, Instant::now());
                pb.set_message(format!(
                    "{reqs} req, {rate:.0} req/s, {} errors",
                    ctx.rec.errors.load(Ordering::Relaxed)
                ));
                if by_count {
                    pb.set_position(ctx.rec.ops_done.load(Ordering::Relaxed));
                } else {
                    pb.set_position(start.elapsed().as_secs());
                }
            }
        })
    };
    let start = Instant::now();
    let limit = args.requests.unwrap_or(u64::MAX);
    let deadline = args.duration.map(|d| start + d);
    let over = move |i: u64, at: Instant| i >= limit || deadline.is_some_and(|d| at >= d);
    match args.rate {
        None => {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = JoinSet::new();
            for _ in 0..args.concurrency {
                let ctx = ctx.clone();
                let next = next.clone();
                tasks.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let now = Instant::now();
                        if over(i, now) {
                            break;
                        }
                        run_op(&ctx, i, now).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        Some(rate) => {
            let sem = Arc::new(Semaphore::new(args.concurrency));
            let mut tasks = JoinSet::new();
            let mut i = 0u64;
            loop {
                let at = start + Duration::from_secs_f64(i as f64 / rate);
                if over(i, at) {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let (ctx, sem) = (ctx.clone(), sem.clone());
                tasks.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    run_op(&ctx, i, at).await;
                });
                while tasks.try_join_next().is_some() {}
                i += 1;
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    pb.finish_and_clear();
    elapsed
}

// ---------------------------------------------------------------------------------------
// Setup: org, token, population

async fn setup_org(http: &reqwest::Client, args: &Args, run_id: &str) -> Result<String> {
    let Some(op) = &args.operator_token else {
        return args.token.clone().context("no token");
    };
    let res = http
        .post(format!("{}/admin/v1/orgs", args.base_url))
        .bearer_auth(op)
        .json(&json!({"name": format!("loadgen-{run_id}")}))
        .send()
        .await
        .context("POST /admin/v1/orgs")?;
    if res.status() != StatusCode::CREATED {
        bail!(
            "POST /admin/v1/orgs answered {}: {}",
            res.status(),
            res.text().await.unwrap_or_default()
        );
    }
    let org: Value = res.json().await?;
    let key = org["admin_key"].as_str().context("admin_key")?.to_owned();
    let token = tests::harness::provisioning_token(http, &args.base_url, &key).await?;
    let invites = args.scenario == Scenario::Create && args.invites;
    let res = http
        .put(format!("{}/admin/v1/settings", args.base_url))
        .bearer_auth(&key)
        // The mixed scenario's deactivations are load, not a mistake: no guard holds them.
        .json(&json!({"send_invites": invites, "deprovision_guard": {"enabled": false}}))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("PUT /admin/v1/settings answered {}", res.status());
    }
    eprintln!(
        "org {} (invites {}); reuse with --token {token}",
        org["id"].as_str().unwrap_or("?"),
        if invites { "on" } else { "off" }
    );
    Ok(token)
}

/// Creates `pop-<i>@domain` for i < users unless the last one exists (409s are fine).
async fn ensure_population(ctx: &Arc<Ctx>) -> Result<()> {
    let n = ctx.args.users;
    if n == 0 {
        return Ok(());
    }
    let last = population_name(ctx, n - 1);
    let res: Value = lookup_req(ctx, &last).send().await?.json().await?;
    if res["totalResults"].as_u64().unwrap_or(0) > 0 {
        eprintln!("population of {n} present");
        return Ok(());
    }
    eprintln!("creating a population of {n} users…");
    let pb = ProgressBar::new(n);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let t0 = Instant::now();
    for _ in 0..ctx.args.concurrency.min(64) {
        let (ctx, next, pb, failed) = (ctx.clone(), next.clone(), pb.clone(), failed.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = population_name(&ctx, i);
                let body = okta::create_user_body(&name, "Pop", &format!("User{i}"));
                let mut ok = false;
                for _ in 0..5 {
                    if let Ok(r) = json_req(&ctx, Method::POST, "/Users", &body).send().await
                        && matches!(r.status().as_u16(), 201 | 409)
                    {
                        ok = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                pb.inc(1);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    pb.finish_and_clear();
    eprintln!(
        "population created in {:.1} s ({} failed)",
        t0.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// The ids of up to `n` users of the org, by paging as Okta imports.
async fn collect_ids(scim: &ScimClient, n: u64) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut start = 1u64;
    while (ids.len() as u64) < n {
        let v: Value = scim
            .request(Method::GET, "/Users")
            .query(&[
                ("startIndex", start.to_string()),
                ("count", "100".to_owned()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let page = v["Resources"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        start += page.len() as u64;
        ids.extend(
            page.iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned)),
        );
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------------------
// Invite timing through MailDev

#[derive(Debug, serde::Serialize)]
struct InviteTiming {
    expected: usize,
    received: usize,
    waited_s: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// When each user this run created was created, by lower-cased email.
fn created_by_email(ctx: &Ctx) -> HashMap<String, SystemTime> {
    ctx.created
        .lock()
        .expect("created lock")
        .iter()
        .map(|(e, t)| (e.to_ascii_lowercase(), *t))
        .collect()
}

async fn invite_timing(ctx: &Ctx, http: &reqwest::Client, base: &str) -> Result<InviteTiming> {
    let created = created_by_email(ctx);
    let marker = format!("lg-{}-", ctx.run_id);
    let t0 = Instant::now();
    let mut seen: HashMap<String, SystemTime> = HashMap::new();
    let pb = ProgressBar::new(created.len() as u64);
    loop {
        let mut list = None;
        for path in ["/api/email", "/email"] {
            if let Ok(r) = http.get(format!("{base}{path}")).send().await
                && r.status().is_success()
                && let Ok(Value::Array(l)) = r.json::<Value>().await
            {
                list = Some(l);
                break;
            }
        }
        let list = list.with_context(|| format!("cannot read MailDev's API at {base}"))?;
        for m in &list {
            let when = m["time"]
                .as_str()
                .or_else(|| m["date"].as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    // MailDev stamps the mail's `Date` header (whole seconds, written
                    // when the mailer builds the mail) when it has one: count up to the
                    // end of that second, so the latency is an upper bound, by up to 1 s.
                    let whole = t.timestamp_subsec_millis() == 0;
                    SystemTime::from(t) + Duration::from_millis(if whole { 999 } else { 0 })
                });
            let Some(when) = when else { continue };
            for to in m["to"].as_array().into_iter().flatten() {
                if let Some(a) = to["address"].as_str() {
                    let a = a.to_ascii_lowercase();
                    if a.starts_with(&marker) && created.contains_key(&a) {
                        seen.entry(a).or_insert(when);
                    }
                }
            }
        }
        pb.set_position(seen.len() as u64);
        if seen.len() >= created.len() || t0.elapsed() > ctx.args.invite_timeout {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    pb.finish_and_clear();
    let mut h = histogram();
    for (a, mailed) in &seen {
        let answered = created[a];
        let d = mailed
            .duration_since(answered)
            .unwrap_or(Duration::ZERO)
            .as_micros();
        h.saturating_record(u64::try_from(d).unwrap_or(u64::MAX).max(1));
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Ok(InviteTiming {
        expected: created.len(),
        received: seen.len(),
        waited_s: t0.elapsed().as_secs_f64(),
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: h.max() as f64 / 1000.0,
    })
}

/// The same timing to the millisecond: `invites.sent_at` is when the SMTP server accepted
/// the mail (the mailer's clock, read as the server's `250` answer arrives). loadgen's
/// and the mailer's clocks are this machine's one clock when both run here.
async fn invite_timing_db(ctx: &Ctx, url: &str) -> Result<InviteTiming> {
    let t0 = Instant::now();
    let created = created_by_email(ctx);
    let db = Database::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    let rows = db
        .query_all_raw(common::db::stmt(
            "SELECT lower(u.user_name) AS name, \
                    (extract(epoch FROM i.sent_at) * 1000000)::bigint AS sent_us \
             FROM invites i JOIN users u ON u.id = i.user_id \
             WHERE u.user_name LIKE $1 AND i.sent_at IS NOT NULL",
            [format!("lg-{}-%", ctx.run_id).into()],
        ))
        .await?;
    let _ = db.close().await;
    let mut h = histogram();
    let mut received = 0;
    for r in &rows {
        let name: String = r.try_get("", "name")?;
        let sent_us: i64 = r.try_get("", "sent_us")?;
        let Some(answered) = created.get(&name) else {
            continue;
        };
        received += 1;
        let sent = SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(sent_us)?);
        let d = sent.duration_since(*answered).unwrap_or(Duration::ZERO);
        h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Ok(InviteTiming {
        expected: created.len(),
        received,
        waited_s: t0.elapsed().as_secs_f64(),
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: h.max() as f64 / 1000.0,
    })
}

// ---------------------------------------------------------------------------------------
// Baseline: the worker's create transaction straight against PostgreSQL
// (worker/src/apply/mod.rs + users.rs), on a scratch org deleted afterwards.

#[derive(Debug, serde::Serialize)]
struct Baseline {
    connections: u32,
    row: Row,
}

async fn baseline(args: &Args, count: u64, invites: bool) -> Result<Baseline> {
    let url = args.database_url.clone().context("--database-url")?;
    let conns = args
        .baseline_connections
        .unwrap_or_else(|| u32::try_from(args.concurrency.min(32)).unwrap_or(32));
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(conns)
        .min_connections(conns)
        .sqlx_logging(false);
    let db = Database::connect(opts)
        .await
        .context("connecting to PostgreSQL")?;
    let org = Uuid::new_v4();
    db.execute_raw(common::db::stmt(
        "INSERT INTO orgs (id, name, admin_key_hash, provisioning_enabled, send_invites) \
         VALUES ($1, $2, $3, true, $4)",
        [
            org.into(),
            format!("loadgen-baseline-{org}").into(),
            format!("loadgen-baseline-{}", Uuid::new_v4().simple()).into(),
            invites.into(),
        ],
    ))
    .await
    .context("inserting the scratch org")?;
    eprintln!(
        "baseline: {count} creates at concurrency {} over {conns} connections…",
        args.concurrency
    );
    let rec = Arc::new(Mutex::new(OpStats::new()));
    let next = Arc::new(AtomicU64::new(0));
    let pb = ProgressBar::new(count);
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for _ in 0..args.concurrency {
        let (db, rec, next, pb) = (db.clone(), rec.clone(), next.clone(), pb.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t = Instant::now();
                let outcome = match create_tx(&db, org, i).await {
                    Ok(()) => Outcome::Ok,
                    Err(e) => Outcome::Io(format!("db: {}", short(&e.to_string()))),
                };
                rec.lock()
                    .expect("baseline lock")
                    .record(t.elapsed(), &outcome);
                pb.inc(1);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    pb.finish_and_clear();
    for sql in [
        "DELETE FROM outbox WHERE org_id = $1",
        "DELETE FROM audit_log WHERE org_id = $1",
        "DELETE FROM processed_commands WHERE org_id = $1",
        "DELETE FROM orgs WHERE id = $1",
    ] {
        db.execute_raw(common::db::stmt(sql, [org.into()]))
            .await
            .with_context(|| format!("cleaning up: {sql}"))?;
    }
    let _ = db.close().await;
    let row = rec
        .lock()
        .expect("baseline lock")
        .summary("baseline (PostgreSQL only)", elapsed);
    Ok(Baseline {
        connections: conns,
        row,
    })
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The statements of `worker::apply` for a `user.create`, with payloads of the same shape
/// and size. The outbox row is written already published, so the running relay leaves it
/// alone (the relay's partial index skips it; everything else is the same insert).
async fn create_tx(db: &DatabaseConnection, org: Uuid, i: u64) -> Result<(), sea_orm::DbErr> {
    use common::db::stmt;
    let command_id = Uuid::now_v7();
    let user_id = Uuid::now_v7();
    let user_name = format!(
        "bl-{i}-{}@baseline.example",
        &command_id.simple().to_string()[20..]
    );
    let mut resource = okta::create_user_body(&user_name, "Base", &format!("Line{i}"));
    if let Some(m) = resource.as_object_mut() {
        m.remove("password");
    }
    let profile =
        json!({"first_name": "Base", "last_name": format!("Line{i}"), "email": user_name});
    let external_id = resource["externalId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let correlation = command_id.simple().to_string();

    let tx = db.begin().await?;
    tx.query_one_raw(stmt(
        "INSERT INTO processed_commands (command_id, org_id, command_type) VALUES ($1, $2, $3) \
         ON CONFLICT (command_id) DO NOTHING RETURNING command_id",
        [command_id.into(), org.into(), "user.create".into()],
    ))
    .await?;
    tx.query_all_raw(stmt(
        "SELECT m.field, m.scim_attribute, m.policy FROM orgs o \
         LEFT JOIN field_mappings m ON m.org_id = o.id WHERE o.id = $1 ORDER BY m.position",
        [org.into()],
    ))
    .await?;
    tx.query_one_raw(stmt(
        "INSERT INTO users (id, org_id, user_name, external_id, active, display_name, given_name, \
                            family_name, email, resource, profile, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, now(), now()) \
         ON CONFLICT (org_id, lower(user_name)) DO NOTHING \
         RETURNING *",
        [
            user_id.into(),
            org.into(),
            user_name.clone().into(),
            external_id.clone().into(),
            true.into(),
            format!("Base Line{i}").into(),
            "Base".into(),
            format!("Line{i}").into(),
            user_name.clone().into(),
            resource.clone().into(),
            profile.into(),
        ],
    ))
    .await?;
    let event_id = Uuid::now_v7();
    let envelope = json!({
        "id": event_id, "type": "user.created", "version": 1, "org_id": org,
        "correlation_id": correlation, "occurred_at": chrono::Utc::now(),
        "payload": {"user_id": user_id, "version": 1, "user_name": user_name, "changes": resource},
    });
    // The event, the invite and the audit entry in one statement, as `audit_with` writes
    // them.
    tx.execute_raw(stmt(
        "WITH event AS (INSERT INTO outbox (event_id, org_id, routing_key, envelope, published_at) \
                        VALUES ($9, $1, $10, $11, now())), \
              invite AS (INSERT INTO invites (id, org_id, user_id, email) \
                         SELECT $12, id, $13, $14 FROM orgs WHERE id = $1 AND send_invites) \
         INSERT INTO audit_log (org_id, command_id, correlation_id, actor, action, \
                                resource_type, resource_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            org.into(),
            command_id.into(),
            correlation.into(),
            "scim".into(),
            "user.created".into(),
            "User".into(),
            user_id.to_string().into(),
            json!({"userName": user_name, "externalId": external_id}).into(),
            event_id.into(),
            "user.created".into(),
            envelope.into(),
            Uuid::now_v7().into(),
            user_id.into(),
            user_name.clone().into(),
        ],
    ))
    .await?;
    let mut rendered = resource;
    if let Some(m) = rendered.as_object_mut() {
        m.insert("id".into(), json!(user_id));
        m.insert(
            "meta".into(),
            json!({"resourceType": "User", "version": "W/\"1\"",
                   "location": format!("http://localhost:8080/scim/v2/Users/{user_id}")}),
        );
    }
    let reply = json!({"status": 201, "body": rendered});
    tx.execute_raw(stmt(
        "UPDATE processed_commands SET reply = $2 WHERE command_id = $1",
        [command_id.into(), reply.into()],
    ))
    .await?;
    tx.commit().await
}

// ---------------------------------------------------------------------------------------
// Process sampling (RSS and CPU) and idle connections

#[derive(Debug, Default, serde::Serialize)]
struct ProcSample {
    target: String,
    max_rss_mb: f64,
    last_rss_mb: f64,
    /// Average CPU over the run, in % of one core.
    cpu_percent: f64,
    /// CPU time over the run, in seconds (user and system, the kernel's 10 ms ticks).
    cpu_seconds: f64,
}

impl ProcSample {
    /// Milliseconds of CPU per operation of the run: what a change to a process's cost
    /// shows even when the machine's speed moves the throughput.
    fn cpu_ms_per(&self, ops: u64) -> f64 {
        self.cpu_seconds * 1000.0 / ops.max(1) as f64
    }
}

fn pids_of(target: &str) -> Vec<u32> {
    if let Some(comm) = target.strip_prefix("name:") {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .collect()
    } else {
        target.parse().map(|p| vec![p]).unwrap_or_default()
    }
}

/// (RSS in kB, utime + stime in clock ticks) of the processes.
fn read_proc(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut ticks = 0;
    for p in pids {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            rss += s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some((_, rest)) = s.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += num(11) + num(12);
        }
    }
    (rss, ticks)
}

fn start_sampling(
    targets: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<ProcSample>> {
    tokio::spawn(async move {
        let t0 = Instant::now();
        let mut state: Vec<(String, u64, u64, u64)> = targets
            .into_iter()
            .map(|t| {
                let (rss, ticks) = read_proc(&pids_of(&t));
                (t, rss, rss, ticks)
            })
            .collect();
        let mut end_ticks: Vec<u64> = state.iter().map(|s| s.3).collect();
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            for (i, s) in state.iter_mut().enumerate() {
                let (rss, ticks) = read_proc(&pids_of(&s.0));
                s.1 = s.1.max(rss);
                s.2 = rss;
                end_ticks[i] = end_ticks[i].max(ticks);
            }
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        state
            .into_iter()
            .zip(end_ticks)
            .map(|((target, max, last, t_start), t_end)| {
                let cpu_seconds = t_end.saturating_sub(t_start) as f64 / 100.0;
                ProcSample {
                    target,
                    max_rss_mb: max as f64 / 1024.0,
                    last_rss_mb: last as f64 / 1024.0,
                    cpu_percent: cpu_seconds / secs * 100.0,
                    cpu_seconds,
                }
            })
            .collect()
    })
}

/// Opens `n` keep-alive connections to the ingress, each with one answered `GET /healthz`,
/// and keeps them open until the returned streams are dropped.
async fn hold_connections(base: &str, n: usize) -> Result<Vec<tokio::net::TcpStream>> {
    let hostport = base
        .split_once("://")
        .map_or(base, |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(&hostport)
            .await
            .with_context(|| format!("connecting to {hostport}"))?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {hostport}\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await?;
        out.push(s);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Report

fn print_table(rows: &[Row]) {
    println!(
        "{:<34} {:>8} {:>8} {:>22} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "scenario / request",
        "requests",
        "ok",
        "errors by status",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms"
    );
    for r in rows {
        let errors = if r.errors.is_empty() {
            "-".to_owned()
        } else {
            r.errors
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<34} {:>8} {:>8} {:>22} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
            r.label, r.requests, r.ok, errors, r.throughput, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(64))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let token = setup_org(&http, &args, &run_id).await?;
    let scim = ScimClient {
        base: args.base_url.clone(),
        token,
        http: http.clone(),
    };
    let mut ctx = Ctx {
        args: args.clone(),
        scim: scim.clone(),
        rec: Recorder::new(),
        created: Mutex::new(Vec::new()),
        ids: Vec::new(),
        run_id: run_id.clone(),
    };
    if args.scenario != Scenario::Create {
        let shared = Arc::new(ctx);
        ensure_population(&shared).await?;
        ctx = Arc::into_inner(shared).context("population tasks still running")?;
        if args.scenario == Scenario::Mixed {
            ctx.ids = collect_ids(&scim, args.users).await?;
            eprintln!("{} user ids collected", ctx.ids.len());
        }
    }

    let _held = if args.hold_connections > 0 {
        let h = hold_connections(&args.base_url, args.hold_connections).await?;
        eprintln!("holding {} idle connections", h.len());
        h
    } else {
        Vec::new()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler =
        (!args.sample.is_empty()).then(|| start_sampling(args.sample.clone(), stop.clone()));

    let ctx = Arc::new(ctx);
    let timestamp = chrono::Utc::now();
    eprintln!(
        "run {run_id}: {} {} at concurrency {}…",
        args.scenario.name(),
        args.rate
            .map_or_else(|| "closed loop".to_owned(), |r| format!("open loop {r}/s")),
        args.concurrency
    );
    let elapsed = drive(ctx.clone()).await;
    stop.store(true, Ordering::Relaxed);
    let samples = match sampler {
        Some(s) => s.await.unwrap_or_default(),
        None => Vec::new(),
    };
    drop(_held);

    let (total, per) = ctx.rec.snapshot();
    let ops = ctx.rec.ops_done.load(Ordering::Relaxed);
    let mut rows =
        vec![total.summary(&format!("{} (all requests)", args.scenario.name()), elapsed)];
    if per.len() > 1 || args.scenario != Scenario::Create {
        rows.extend(
            per.iter()
                .map(|(k, v)| v.summary(&format!("  {k}"), elapsed)),
        );
    }
    let created = ctx.created.lock().expect("created lock").len() as u64;

    let invites = match (&args.maildev_url, args.scenario) {
        (Some(base), Scenario::Create) => {
            eprintln!("waiting for {created} invites in MailDev…");
            Some(invite_timing(&ctx, &http, base).await?)
        }
        _ => None,
    };

    let invites_db = match (&args.database_url, &invites) {
        (Some(url), Some(_)) => Some(invite_timing_db(&ctx, url).await?),
        _ => None,
    };

    let baseline = match (&args.database_url, args.scenario) {
        (Some(_), Scenario::Create) => {
            let invites_on = args.invites && args.operator_token.is_some();
            Some(baseline(&args, created.max(1), invites_on).await?)
        }
        _ => None,
    };
    let pipeline_creates = per
        .get("POST /Users")
        .map(|s| s.ok as f64 / elapsed.as_secs_f64())
        .unwrap_or(0.0);
    let ratio = baseline
        .as_ref()
        .map(|b| pipeline_creates / b.row.throughput.max(1e-9));
    if let Some(b) = &baseline {
        rows.push(b.row.clone());
    }

    println!();
    println!(
        "loadgen {run_id} — {} {}, concurrency {}, {:.1} s, {ops} operations ({:.1} ops/s)",
        args.scenario.name(),
        args.rate
            .map_or_else(|| "closed loop".to_owned(), |r| format!("open loop {r}/s")),
        args.concurrency,
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    print_table(&rows);
    if let (Some(r), Some(b)) = (ratio, &baseline) {
        println!(
            "pipeline/baseline: {pipeline_creates:.1} / {:.1} creates/s = {r:.2} (baseline over {} connections)",
            b.row.throughput, b.connections
        );
    }
    if let Some(i) = &invites {
        println!(
            "invites (MailDev time, upper bound): {}/{} reached SMTP; create→mail p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            i.received, i.expected, i.p50_ms, i.p95_ms, i.p99_ms, i.max_ms
        );
    }
    if let Some(i) = &invites_db {
        println!(
            "invites (SMTP server accepted, the mailer's record): {}/{}; create→accepted p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            i.received, i.expected, i.p50_ms, i.p95_ms, i.p99_ms, i.max_ms
        );
    }
    for s in &samples {
        println!(
            "process {}: max RSS {:.1} MB (last {:.1} MB), CPU {:.0}% of a core, {:.2} ms a request",
            s.target,
            s.max_rss_mb,
            s.last_rss_mb,
            s.cpu_percent,
            s.cpu_ms_per(total.hist.len())
        );
    }

    if let Some(path) = &args.out {
        let result = json!({
            "timestamp": timestamp,
            "run_id": run_id,
            "label": args.label,
            "parameters": {
                "base_url": args.base_url,
                "scenario": args.scenario.name(),
                "concurrency": args.concurrency,
                "rate": args.rate,
                "requests": args.requests,
                "duration_s": args.duration.map(|d| d.as_secs_f64()),
                "users": args.users,
                "okta_lookup": args.okta_lookup,
                "invites": args.invites,
                "baseline": args.database_url.is_some(),
                "hold_connections": args.hold_connections,
                "sample": args.sample,
                "command_line": command_line(),
            },
            "elapsed_s": elapsed.as_secs_f64(),
            "operations": ops,
            "ops_per_s": ops as f64 / elapsed.as_secs_f64(),
            "total": rows[0],
            "per_request": per.iter().map(|(k, v)| (k.to_string(), v.summary(k, elapsed))).collect::<BTreeMap<_, _>>(),
            "creates_per_s": pipeline_creates,
            "baseline": baseline,
            "pipeline_over_baseline": ratio,
            "invites": invites,
            "invites_db": invites_db,
            "processes": samples,
        });
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

/// The command line without tokens or URL credentials, for the result file.
fn command_line() -> Vec<String> {
    let mut out = Vec::new();
    let mut secret_next = false;
    for a in std::env::args().skip(1) {
        if secret_next {
            out.push("<redacted>".to_owned());
            secret_next = false;
            continue;
        }
        secret_next = a == "--token" || a == "--operator-token";
        out.push(match (a.find("://"), a.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://<redacted>{}", &a[..s], &a[at..]),
            _ => a,
        });
    }
    out
}
