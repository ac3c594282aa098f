//! Data's lifetime, in the background (docs/data-lifecycle.md): every `GC_INTERVAL` the
//! worker erases people its org's policy says to (deactivated for longer than the org's
//! window), scrubs what deleted people left in other tables once their last events are
//! published (`erasure`), and prunes rows past their retention window (`expired`) — each
//! in small batches of short transactions (`FOR UPDATE SKIP LOCKED`: workers running it
//! at once share the work and never wait on each other or on commands). `worker gc
//! --dry-run` prints what would go (`cli`).

mod cli;
mod erasure;
mod expired;

pub use cli::{cli, cli_from_settings, dry_run_counts};
pub(crate) use expired::{ago, seconds};

use crate::apply::ApplyContext;
use common::{Settings, db::redact, metrics::ROWS_PRUNED};
use expired::TARGETS;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use std::{collections::BTreeMap, time::Duration};
use tokio::sync::watch;

/// Rows one statement removes at most: short transactions, short locks.
const BATCH: u64 = 500;
/// Batches one table gets per pass, so one pass stays short and shares the database.
const BATCHES_PER_PASS: usize = 40;

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
            let delete = t.delete_batch(t.window(&self.windows).as_secs_f64(), BATCH);
            for _ in 0..BATCHES_PER_PASS {
                if stop() {
                    return Ok(pruned);
                }
                let n = self.db.execute(&delete).await?.rows_affected();
                self.count(&mut pruned, t.table, n);
                if n < BATCH {
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
}
