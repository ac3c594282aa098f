//! `worker gc [--dry-run]`: prints what would go, or prunes and erases until nothing is
//! left and prints what went.

use super::{
    Gc, Pruned, Windows,
    erasure::{due_for_erasure, pending},
    expired::TARGETS,
};
use crate::apply::ApplyContext;
use common::{Settings, db::redact};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr,
    sea_query::{Asterisk, Expr, Func, Query, SelectStatement},
};
use std::io::Write;

/// What `worker gc --dry-run` reports: per line, what and how many.
pub async fn dry_run_counts(
    db: &DatabaseConnection,
    windows: &Windows,
) -> Result<Vec<(String, i64)>, DbErr> {
    let count = |count: SelectStatement| async move {
        db.query_one(&count)
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let mut out = vec![(
        "users: deactivated people past their org's erase-after window".to_owned(),
        count(count_of(due_for_erasure())).await?,
    )];
    out.push((
        "erasures: deleted people whose events, replies and activity are still to be scrubbed"
            .to_owned(),
        count(pending()).await?,
    ));
    for t in &TARGETS {
        let secs = t.window(windows).as_secs_f64();
        let n = count(count_of(t.expired(secs))).await?;
        out.push((format!("{}: {}", t.table, t.what), n));
    }
    Ok(out)
}

/// `SELECT count(*) FROM (<rows>) x`.
fn count_of(rows: SelectStatement) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .from_subquery(rows, "x")
        .to_owned()
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
