//! Data's lifetime, in the background (docs/data-lifecycle.md): every `GC_INTERVAL` the
//! worker erases people its org's policy says to (deactivated for longer than the org's
//! window), scrubs what deleted people left in other tables once their last events are
//! published, and prunes rows past their retention window — each in small batches of
//! short transactions (`FOR UPDATE SKIP LOCKED`: workers running it at once share the work
//! and never wait on each other or on commands). `worker gc --dry-run` prints what would go.

use crate::apply::{ApplyContext, apply};
use common::{
    Settings,
    db::{redact, stmt},
    messages::{Command, DeletePerson, Reply},
    metrics::{ERASURES_PENDING, ROWS_PRUNED},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use std::{collections::BTreeMap, io::Write, time::Duration};
use tokio::sync::watch;
use uuid::Uuid;

/// Rows one statement removes at most: short transactions, short locks.
const BATCH: i64 = 500;
/// Batches one table gets per pass, so one pass stays short and shares the database.
const BATCHES_PER_PASS: usize = 40;
/// Deleted people scrubbed per transaction.
const ERASURE_BATCH: i64 = 100;
/// Deactivated people erased per pass.
const POLICY_BATCH: i64 = 100;

/// The retention windows (`OUTBOX_RETENTION`, …).
#[derive(Clone, Debug)]
pub struct Windows {
    pub outbox: Duration,
    pub processed_commands: Duration,
    pub activity: Duration,
    pub invites: Duration,
}

impl Windows {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            outbox: s.outbox_retention,
            processed_commands: s.processed_commands_retention,
            activity: s.activity_retention,
            invites: s.invite_retention,
        }
    }
}

/// One kind of expired row: its table, key, and the `SELECT` of the keys that are past
/// the window (`$1`, seconds), with the table aliased `t`.
struct Target {
    table: &'static str,
    what: &'static str,
    key: &'static str,
    expired: &'static str,
}

const TARGETS: [Target; 4] = [
    Target {
        table: "outbox",
        what: "published events older than OUTBOX_RETENTION",
        key: "id",
        expired: "SELECT t.id FROM outbox t \
                  WHERE t.published_at < now() - make_interval(secs => $1)",
    },
    Target {
        table: "processed_commands",
        what: "command ids and stored replies older than PROCESSED_COMMANDS_RETENTION",
        key: "command_id",
        expired: "SELECT t.command_id FROM processed_commands t \
                  WHERE t.processed_at < now() - make_interval(secs => $1)",
    },
    Target {
        table: "audit_log",
        what: "activity entries older than ACTIVITY_RETENTION or the org's own window",
        key: "id",
        // The first condition (the shortest window of all) lets the index on created_at
        // do the work; the second applies each org's own.
        expired: "SELECT t.id FROM audit_log t LEFT JOIN orgs o ON o.id = t.org_id \
                  WHERE t.created_at < now() - make_interval(secs => LEAST($1::float8, \
                        (SELECT min(activity_retention_days) FROM orgs) * 86400.0::float8)) \
                  AND t.created_at < now() - COALESCE(make_interval(days => o.activity_retention_days), \
                        make_interval(secs => $1))",
    },
    Target {
        table: "invites",
        what: "invites accepted or expired longer ago than INVITE_RETENTION",
        key: "id",
        expired: "SELECT t.id FROM invites t \
                  WHERE COALESCE(t.accepted_at, t.expires_at) < now() - make_interval(secs => $1)",
    },
];

fn window(w: &Windows, table: &str) -> Duration {
    match table {
        "outbox" => w.outbox,
        "processed_commands" => w.processed_commands,
        "audit_log" => w.activity,
        _ => w.invites,
    }
}

/// Rows removed or scrubbed, by table.
pub type Pruned = BTreeMap<&'static str, u64>;

/// What the background pass needs.
#[derive(Clone)]
pub struct Gc {
    pub db: DatabaseConnection,
    pub ctx: ApplyContext,
    pub windows: Windows,
    /// The `prefix` metrics label.
    pub prefix: String,
}

impl Gc {
    /// One pass every `interval` until `shutdown` turns true. Failures are logged and the
    /// next pass tries again.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {},
                _ = shutdown.changed() => {},
            }
            if *shutdown.borrow() {
                return;
            }
            let stop = || *shutdown.borrow();
            match self.pass(&stop).await {
                Ok(pruned) => {
                    if pruned.values().any(|n| *n > 0) {
                        tracing::info!(?pruned, "pruned and erased");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %redact(&e), "background pruning failed; retrying next pass")
                }
            }
        }
    }

    /// Policy erasures, then scrubs, then pruning; stops early when `stop()` says so.
    pub async fn pass(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<Pruned, DbErr> {
        let mut pruned = Pruned::new();
        let erased = self.erase_deactivated(stop).await?;
        self.count(&mut pruned, "users", erased);
        self.scrub_erasures(&mut pruned, stop).await?;
        for t in &TARGETS {
            let secs = window(&self.windows, t.table).as_secs_f64();
            let sql = format!(
                "DELETE FROM {} WHERE {} IN ({} LIMIT $2 FOR UPDATE OF t SKIP LOCKED)",
                t.table, t.key, t.expired
            );
            for _ in 0..BATCHES_PER_PASS {
                if stop() {
                    return Ok(pruned);
                }
                let n = self
                    .db
                    .execute_raw(stmt(&sql, [secs.into(), BATCH.into()]))
                    .await?
                    .rows_affected();
                self.count(&mut pruned, t.table, n);
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    fn count(&self, pruned: &mut Pruned, table: &'static str, n: u64) {
        *pruned.entry(table).or_default() += n;
        if n > 0 {
            metrics::counter!(ROWS_PRUNED, "table" => table, "prefix" => self.prefix.clone())
                .increment(n);
        }
    }

    /// People deactivated longer than their org's `erase_deactivated_after_days`, deleted
    /// as the directory API's delete would (`person.delete`, actor `retention`): their
    /// event goes out, their activity shows it, and their data is erased.
    async fn erase_deactivated(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<u64, DbErr> {
        let due = self
            .db
            .query_all_raw(stmt(
                &format!("{DUE_FOR_ERASURE} ORDER BY u.deactivated_at LIMIT $1"),
                [POLICY_BATCH.into()],
            ))
            .await?;
        let mut erased = 0;
        for row in due {
            if stop() {
                break;
            }
            let org_id: Uuid = row.try_get("", "org_id")?;
            let user_id: Uuid = row.try_get("", "id")?;
            let cmd = Command::DeletePerson(DeletePerson {
                user_id,
                by_policy: true,
            });
            let correlation = format!("retention-{}", Uuid::now_v7());
            let env = cmd.clone().into_envelope(Some(org_id), &correlation);
            if let Reply::Ok { .. } = apply(&self.db, &self.ctx, &env, &cmd).await?.reply {
                tracing::info!(%org_id, %user_id, "deactivated person erased by the org's policy");
                erased += 1;
            }
        }
        Ok(erased)
    }

    /// Scrubs what deleted people left in other tables, once none of their events waits
    /// to be published (integrators learn of the delete first): their published events go,
    /// stored replies about them keep only their status and id, and their activity entries
    /// keep only what happened (`user.deleted`, the person's id), not their name or email.
    async fn scrub_erasures(
        &self,
        pruned: &mut Pruned,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), DbErr> {
        loop {
            if stop() {
                return Ok(());
            }
            let tx = self.db.begin().await?;
            let rows = tx
                .query_all_raw(stmt(
                    "SELECT e.user_id, e.org_id, e.needles FROM erasures e \
                     WHERE NOT EXISTS (SELECT 1 FROM outbox o \
                         WHERE (o.envelope #>> '{payload,user_id}') = e.user_id::text AND o.published_at IS NULL) \
                     ORDER BY e.requested_at LIMIT $1 FOR UPDATE OF e SKIP LOCKED",
                    [ERASURE_BATCH.into()],
                ))
                .await?;
            let n = rows.len();
            // One scrub per org for the whole batch: the stored replies of an org are
            // read once however many of its people were deleted.
            let mut by_org: BTreeMap<Uuid, (Vec<String>, Vec<String>)> = BTreeMap::new();
            for row in rows {
                let user_id: Uuid = row.try_get("", "user_id")?;
                let org_id: Uuid = row.try_get("", "org_id")?;
                let needles: Vec<String> = row.try_get("", "needles")?;
                let entry = by_org.entry(org_id).or_default();
                entry.0.push(user_id.to_string());
                entry.1.extend(needles);
            }
            for (org_id, (ids, needles)) in by_org {
                for (table, sql, by_needles) in scrub_statements() {
                    let mut values = vec![text_array(&ids), org_id.into()];
                    if by_needles {
                        values.push(text_array(&needles));
                    }
                    let done = tx.execute_raw(stmt(&sql, values)).await?.rows_affected();
                    self.count(pruned, table, done);
                }
            }
            tx.commit().await?;
            if n < ERASURE_BATCH as usize {
                break;
            }
        }
        let pending = self
            .db
            .query_one_raw(stmt("SELECT count(*) AS n FROM erasures", []))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        metrics::gauge!(ERASURES_PENDING, "prefix" => self.prefix.clone()).set(pending as f64);
        Ok(())
    }
}

/// Deactivated people past their org's window (`users u`, `orgs o`).
const DUE_FOR_ERASURE: &str = "SELECT u.org_id, u.id FROM users u JOIN orgs o ON o.id = u.org_id \
     WHERE NOT u.active AND o.erase_deactivated_after_days IS NOT NULL \
     AND u.deactivated_at <= now() - make_interval(days => o.erase_deactivated_after_days)";

/// The text a scrubbed error reply carries instead of its detail.
const ERASED_DETAIL: &str = "the details of this result were erased with the person they concerned";

/// The scrub of an org's deleted people: `$1` their ids (text), `$2` the org, `$3` their
/// identifying strings. Stored replies are matched by a person's id, or — for errors (a
/// `409` naming a userName) and group replies (members' names) — by those strings; a
/// reply already scrubbed is left alone.
fn scrub_statements() -> [(&'static str, String, bool); 5] {
    [
        (
            "outbox",
            "DELETE FROM outbox WHERE (envelope #>> '{payload,user_id}') = ANY($1) AND org_id = $2".to_owned(),
            false,
        ),
        (
            "processed_commands",
            format!(
                "UPDATE processed_commands SET reply = CASE WHEN reply->>'outcome' = 'ok' \
                     THEN jsonb_build_object('outcome', 'ok', 'status', reply->'status', 'body', \
                         CASE WHEN reply #>> '{{body,id}}' IS NOT NULL \
                              THEN jsonb_build_object('id', reply #> '{{body,id}}', 'erased', true) \
                              ELSE 'null'::jsonb END) \
                     ELSE jsonb_strip_nulls(jsonb_build_object('outcome', 'error', 'status', reply->'status', \
                         'scim_type', reply->'scim_type', 'detail', '{ERASED_DETAIL}')) \
                     END \
                 WHERE org_id = $2 AND reply IS NOT NULL \
                 AND NOT COALESCE(reply->'body' = jsonb_build_object('id', reply #> '{{body,id}}', 'erased', true), false) \
                 AND reply->>'detail' IS DISTINCT FROM '{ERASED_DETAIL}' \
                 AND (reply #>> '{{body,id}}' = ANY($1) \
                      OR ((reply->>'outcome' = 'error' OR command_type LIKE 'group.%') AND EXISTS ( \
                          SELECT 1 FROM jsonb_path_query(reply, 'strict $.** ? (@.type() == \"string\")') v, \
                               unnest($3::text[]) n \
                          WHERE strpos(lower(v #>> '{{}}'), lower(n)) > 0)))"
            ),
            true,
        ),
        (
            "audit_log",
            "UPDATE audit_log SET detail = '{}'::jsonb WHERE org_id = $2 AND resource_type = 'User' \
             AND resource_id = ANY($1) AND detail <> '{}'::jsonb".to_owned(),
            false,
        ),
        (
            // The provisioning log keeps the request (method, path, status, time) but not
            // an error's detail that concerned the person (a `409` names the userName).
            "provisioning_log",
            "UPDATE provisioning_log SET detail = NULL WHERE org_id = $2 AND detail IS NOT NULL \
             AND (resource_id::text = ANY($1) OR EXISTS ( \
                 SELECT 1 FROM unnest($3::text[]) n WHERE strpos(lower(detail), lower(n)) > 0))"
                .to_owned(),
            true,
        ),
        (
            "erasures",
            "DELETE FROM erasures WHERE user_id::text = ANY($1) AND org_id = $2".to_owned(),
            false,
        ),
    ]
}

fn text_array(values: &[String]) -> sea_orm::Value {
    sea_orm::Value::Array(
        sea_orm::sea_query::ArrayType::String,
        Some(Box::new(
            values
                .iter()
                .map(|v| sea_orm::Value::String(Some(v.clone())))
                .collect(),
        )),
    )
}

/// What `worker gc --dry-run` reports: per line, what and how many.
pub async fn dry_run_counts(
    db: &DatabaseConnection,
    windows: &Windows,
) -> Result<Vec<(String, i64)>, DbErr> {
    let mut out = Vec::new();
    let count = |sql: String, values: Vec<sea_orm::Value>| async move {
        db.query_one_raw(stmt(&sql, values))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let people = count(
        format!("SELECT count(*) FROM ({DUE_FOR_ERASURE}) x"),
        vec![],
    )
    .await?;
    out.push((
        "users: deactivated people past their org's erase-after window".to_owned(),
        people,
    ));
    let erasures = count("SELECT count(*) FROM erasures".to_owned(), vec![]).await?;
    out.push((
        "erasures: deleted people whose events, replies and activity are still to be scrubbed"
            .to_owned(),
        erasures,
    ));
    for t in &TARGETS {
        let secs = window(windows, t.table).as_secs_f64();
        let n = count(
            format!("SELECT count(*) FROM ({}) x", t.expired),
            vec![secs.into()],
        )
        .await?;
        out.push((format!("{}: {}", t.table, t.what), n));
    }
    Ok(out)
}

/// `worker gc [--dry-run]` as `main` runs it: connects with the service's settings.
pub async fn cli_from_settings(
    settings: &Settings,
    dry_run: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let db = common::db::connect(settings.database_url.expose(), 2).await;
    let prefix = common::metrics::prefix_of(&common::amqp::Topology::from_settings(settings));
    let gc = Gc {
        db: db.clone(),
        ctx: ApplyContext {
            scim_base: format!("{}/scim/v2", settings.public_url),
            prefix: prefix.clone(),
        },
        windows: Windows::from_settings(settings),
        prefix,
    };
    let result = cli(&gc, dry_run, out).await;
    let _ = db.close().await;
    result
}

/// `worker gc [--dry-run]`: prints what would go, or prunes until nothing is left and
/// prints what went.
pub async fn cli(gc: &Gc, dry_run: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if dry_run {
        writeln!(out, "would prune (dry run; nothing was changed):")?;
        let lines = dry_run_counts(&gc.db, &gc.windows)
            .await
            .map_err(|e| anyhow::anyhow!(redact(&e)))?;
        for (what, n) in lines {
            writeln!(out, "{n:>10}  {what}")?;
        }
        return Ok(());
    }
    let mut total = Pruned::new();
    loop {
        let pruned = gc
            .pass(&|| false)
            .await
            .map_err(|e| anyhow::anyhow!(redact(&e)))?;
        let any = pruned.values().any(|n| *n > 0);
        for (table, n) in pruned {
            *total.entry(table).or_default() += n;
        }
        if !any {
            break;
        }
    }
    writeln!(out, "pruned:")?;
    for (table, n) in total {
        writeln!(out, "{n:>10}  {table}")?;
    }
    Ok(())
}
