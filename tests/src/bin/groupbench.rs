//! `groupbench`: the cost of one member added to (and removed from) a large group, through
//! a running Roster stack, with Okta's exact PATCH bodies. For each size it writes the users
//! and the memberships straight into PostgreSQL (one statement each), then times single-member
//! PATCHes one after another. It starts nothing itself. See `docs/performance.md`.
//!
//! ```text
//! groupbench --base-url http://127.0.0.1:18080 --operator-token bench-operator-token \
//!     --database-url postgres://postgres@127.0.0.1/roster_bench --sizes 1000,100000 --patches 200
//! ```

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::{bulk, okta::ScimClient};
use uuid::Uuid;

const USAGE: &str = "\
groupbench — times single-member group PATCHes against groups of N members

USAGE: groupbench --operator-token TOKEN --database-url URL [OPTIONS]

  --base-url URL         the ingress (default http://127.0.0.1:8080)
  --operator-token TOKEN creates an org with provisioning on through the admin API
  --database-url URL     the stack's database, for writing the fixture in bulk
  --sizes N,N,…          group sizes (default 1000,100000)
  --patches K            adds (then as many removes) per size (default 200)
";

struct Args {
    base_url: String,
    operator_token: String,
    database_url: String,
    sizes: Vec<usize>,
    patches: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        base_url: "http://127.0.0.1:8080".into(),
        operator_token: String::new(),
        database_url: String::new(),
        sizes: vec![1_000, 100_000],
        patches: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--base-url" => a.base_url = val()?,
            "--operator-token" => a.operator_token = val()?,
            "--database-url" => a.database_url = val()?,
            "--sizes" => {
                a.sizes = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--sizes")?;
            }
            "--patches" => a.patches = val()?.parse().context("--patches")?,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n\n{USAGE}"),
        }
    }
    if a.operator_token.is_empty() || a.database_url.is_empty() {
        bail!("give --operator-token and --database-url\n\n{USAGE}");
    }
    Ok(a)
}

/// A new org with provisioning on and invites off: its id and an Okta client.
async fn org(http: &reqwest::Client, a: &Args) -> Result<(Uuid, ScimClient)> {
    let res = http
        .post(format!("{}/admin/v1/orgs", a.base_url))
        .bearer_auth(&a.operator_token)
        .json(&json!({"name": format!("groupbench-{}", Uuid::now_v7())}))
        .send()
        .await?;
    if res.status() != StatusCode::CREATED {
        bail!("POST /admin/v1/orgs answered {}", res.status());
    }
    let org: Value = res.json().await?;
    let key = org["admin_key"].as_str().context("admin_key")?;
    let token = tests::harness::provisioning_token(http, &a.base_url, key).await?;
    let res = http
        .put(format!("{}/admin/v1/settings", a.base_url))
        .bearer_auth(key)
        .json(&json!({"send_invites": false}))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("PUT /admin/v1/settings answered {}", res.status());
    }
    let id = org["id"].as_str().context("id")?.parse()?;
    Ok((
        id,
        ScimClient {
            base: a.base_url.clone(),
            token,
            http: http.clone(),
        },
    ))
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// Sends each body in turn; every one must answer 204. Returns the latencies.
async fn timed(okta: &ScimClient, path: &str, bodies: &[Value]) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(bodies.len());
    for body in bodies {
        let start = Instant::now();
        let res = okta
            .request(Method::PATCH, path)
            .header("Content-Type", "application/scim+json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await?;
        let status = res.status();
        res.bytes().await?;
        out.push(start.elapsed());
        if status != StatusCode::NO_CONTENT {
            bail!("PATCH {path} answered {status}");
        }
    }
    Ok(out)
}

fn summary(what: &str, n: usize, mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1]);
    let mean = d.iter().map(|x| ms(*x)).sum::<f64>() / d.len() as f64;
    format!(
        "| {n} | {what} | {} | {mean:.1} | {:.1} | {:.1} | {:.1} |",
        d.len(),
        at(0.5),
        at(0.99),
        ms(d[d.len() - 1])
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let http = reqwest::Client::new();
    let db = sea_orm::Database::connect(&a.database_url).await?;
    let (org_id, okta) = org(&http, &a).await?;
    let mut rows = Vec::new();
    for (g, &n) in a.sizes.iter().enumerate() {
        let res = okta
            .send_json(
                Method::POST,
                "/Groups",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("bench-{g}-{n}"), "members": []}),
            )
            .await;
        if res.status() != StatusCode::CREATED {
            bail!("POST /Groups answered {}", res.status());
        }
        let gid: Uuid = res.json::<Value>().await?["id"]
            .as_str()
            .context("id")?
            .parse()?;
        let start = Instant::now();
        let users = bulk::insert_users(&db, org_id, &format!("gb{g}"), n + a.patches).await?;
        let (members, joiners) = users.split_at(n);
        bulk::insert_members(&db, org_id, gid, members).await?;
        eprintln!("group of {n}: fixture written in {:?}", start.elapsed());
        let path = format!("/Groups/{gid}");
        // Okta's shapes (OKTA.md): add with `path: "members"`, remove by `members[value eq]`.
        let adds: Vec<Value> = joiners
            .iter()
            .map(|u| patch(json!([{"op": "add", "path": "members", "value": [{"value": u.to_string(), "display": u.to_string()}]}])))
            .collect();
        let removes: Vec<Value> = joiners
            .iter()
            .map(|u| patch(json!([{"op": "remove", "path": format!("members[value eq \"{u}\"]")}])))
            .collect();
        rows.push(summary("add one", n, timed(&okta, &path, &adds).await?));
        rows.push(summary(
            "remove one",
            n,
            timed(&okta, &path, &removes).await?,
        ));
    }
    println!("| members | PATCH | n | mean ms | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
