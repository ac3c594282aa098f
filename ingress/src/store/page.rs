//! One page of a SCIM list (`GET /Users`, `GET /Groups`, `.search`). The measured hot
//! path of an import (docs/performance.md). The statements are built with sea-query; the
//! SCIM filter's and sort's translations (`common::db::query`, the hand-written search
//! SQL) go in as fragments. The filter is translated with its `$n` numbered from 1, its
//! own: sea-query puts each in the statement's numbering, after the org's.

use common::{
    db::query::SqlWhere,
    scim::{ScimError, filter},
};
use moka::{policy::EvictionPolicy, sync::Cache};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult,
    sea_query::{
        Asterisk, Condition, Expr, ExprTrait, Func, NullOrdering, Order, Query, SelectStatement,
    },
};
use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};
use uuid::Uuid;

/// How one resource table is queried: its name, and its filter and sort translations.
pub struct Table {
    pub name: &'static str,
    pub filter: fn(&filter::Filter) -> Result<SqlWhere, ScimError>,
    /// The `sortBy` key's SQL (`None`: by id alone).
    pub sort_key: fn(Option<&str>) -> Result<Option<String>, ScimError>,
}

/// What a page asks for: the filter, the sort, and the `startIndex` and `count`.
pub struct PageRequest<'a> {
    pub filter: Option<&'a str>,
    pub sort_by: Option<&'a str>,
    pub descending: bool,
    /// 1-based, at least 1.
    pub start_index: u64,
    pub count: u64,
}

impl PageRequest<'_> {
    /// The OFFSET of the page.
    fn offset(&self) -> i64 {
        i64::try_from(self.start_index - 1).unwrap_or(i64::MAX)
    }

    /// The LIMIT of the page, at most `i64::MAX` (it is bound as a `bigint`).
    fn limit(&self) -> u64 {
        i64::try_from(self.count).unwrap_or(i64::MAX).unsigned_abs()
    }
}

/// Why a page could not be read: the client's filter or sort, or the database.
pub enum PageError {
    Scim(ScimError),
    Db(DbErr),
}

impl From<ScimError> for PageError {
    fn from(e: ScimError) -> Self {
        Self::Scim(e)
    }
}

impl From<DbErr> for PageError {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

/// One page of an org's rows matching `req`, and the exact total. Filtering, sorting
/// and paging all happen in PostgreSQL.
///
/// A page is chosen by ids first and its rows fetched by id: the ids come from an
/// index-only scan of `(org_id, id)`, so skipping `startIndex − 1` rows reads the index,
/// not every skipped row. And because clients page sequentially (Okta's import asks for
/// `startIndex` 1, 101, 201, … with one filter), a page in id order remembers where it
/// ended (`CONTINUATIONS`); the next page asked for at exactly that `startIndex` seeks
/// past that id instead of skipping. On an unchanged table both give the same rows; when
/// rows come or go between pages, OFFSET may repeat or skip one, the seek does not
/// (RFC 7644 §3.4.2.4 promises neither).
pub async fn fetch_page<M: FromQueryResult>(
    db: &DatabaseConnection,
    table: &Table,
    org_id: Uuid,
    req: &PageRequest<'_>,
) -> Result<(i64, Vec<M>), PageError> {
    let filter = match req.filter {
        Some(f) => Some((table.filter)(&filter::parse(f)?)?),
        None => None,
    };
    let matching = matching(org_id, filter);
    let key = (table.sort_key)(req.sort_by)?;
    let dir = if req.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    let name = table.name;
    let total: i64 = db
        .query_one(&count(name, matching.clone()))
        .await?
        .map(|r| r.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    if req.count == 0 || req.offset() >= total {
        return Ok((total, Vec::new()));
    }
    // Only the id order can be continued by a seek on the id alone.
    let by_id = key.is_none();
    let at = |start_index: u64| PageKey {
        table: name,
        org_id,
        filter: req.filter.map(str::to_owned),
        descending: req.descending,
        start_index,
    };
    let after = if by_id {
        CONTINUATIONS.take(&at(req.start_index))
    } else {
        None
    };
    let page = match after {
        Some(last) => seek(name, matching, dir, last, req.limit()),
        None => window(
            name,
            matching,
            key.as_deref(),
            dir,
            req.limit(),
            req.offset().unsigned_abs(),
        ),
    };
    let rows = db.query_all(&page).await?;
    if by_id && let Some(last) = rows.last() {
        let next = req.start_index + rows.len() as u64;
        if i64::try_from(next - 1).unwrap_or(i64::MAX) < total {
            CONTINUATIONS.put(at(next), last.try_get("", "id")?);
        }
    }
    let models = rows
        .iter()
        .map(|r| M::from_query_result(r, ""))
        .collect::<Result<Vec<M>, _>>()?;
    Ok((total, models))
}

/// The org's rows that pass the filter: `org_id = …`, and the filter's SQL as a fragment
/// whose `$n` are its own parameters.
fn matching(org_id: Uuid, filter: Option<SqlWhere>) -> Condition {
    let org = Condition::all().add(Expr::col("org_id").eq(org_id));
    match filter {
        Some(w) => org.add(Expr::cust_with_values(w.sql, w.params)),
        None => org,
    }
}

/// Sorts `q` by the `sortBy` key in `dir`, nulls last, then by id in `dir`.
fn sorted(q: &mut SelectStatement, key: Option<&str>, dir: &Order) {
    if let Some(key) = key {
        q.order_by_expr_with_nulls(Expr::cust(key.to_owned()), dir.clone(), NullOrdering::Last);
    }
    q.order_by("id", dir.clone());
}

/// `n`: how many rows match.
fn count(table: &'static str, matching: Condition) -> SelectStatement {
    Query::select()
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from(table)
        .cond_where(matching)
        .to_owned()
}

/// The page that follows the row `last` in id order.
fn seek(
    table: &'static str,
    matching: Condition,
    dir: Order,
    last: Uuid,
    limit: u64,
) -> SelectStatement {
    let past = match dir {
        Order::Desc => Expr::col("id").lt(last),
        _ => Expr::col("id").gt(last),
    };
    let mut q = Query::select()
        .column(Asterisk)
        .from(table)
        .cond_where(matching.add(past))
        .limit(limit)
        .to_owned();
    sorted(&mut q, None, &dir);
    q
}

/// The page at `offset`: its ids chosen first (an index-only scan skips the rows before
/// it), then its rows by id.
fn window(
    table: &'static str,
    matching: Condition,
    key: Option<&str>,
    dir: Order,
    limit: u64,
    offset: u64,
) -> SelectStatement {
    let mut ids = Query::select()
        .column("id")
        .from(table)
        .cond_where(matching)
        .limit(limit)
        .offset(offset)
        .to_owned();
    sorted(&mut ids, key, &dir);
    let mut q = Query::select()
        .column(Asterisk)
        .from(table)
        .and_where(Expr::col("id").in_subquery(ids))
        .to_owned();
    sorted(&mut q, key, &dir);
    q
}

/// Where a page in id order starts: the list (table, org, filter, direction) and the
/// `startIndex`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct PageKey {
    table: &'static str,
    org_id: Uuid,
    filter: Option<String>,
    descending: bool,
    start_index: u64,
}

/// How many page continuations one process remembers, and for how long: enough for
/// every org importing at once, each holding one (a served page replaces the key it
/// continued from only by a new one, so a sequential import holds one entry).
const CONTINUATION_CAPACITY: u64 = 4096;
const CONTINUATION_TTL: Duration = Duration::from_secs(600);

/// The last id of recently served pages, under the key of the page that follows.
static CONTINUATIONS: LazyLock<Continuations> =
    LazyLock::new(|| Continuations::new(CONTINUATION_CAPACITY, CONTINUATION_TTL));

/// A bounded map (`moka`) from the start of the next page to the last id before it.
/// Taking an entry removes it (an import moves on); entries expire after the TTL, and
/// when full the least recently used (an entry is never read without being taken, so the
/// oldest) goes first.
struct Continuations {
    ttl: Duration,
    /// The id, and when it was stored: `take` checks the age itself, because moka's
    /// `remove` may still hand back an entry that has expired but not yet been evicted.
    cache: Cache<PageKey, (Uuid, Instant)>,
}

impl Continuations {
    fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
        }
    }

    fn take(&self, key: &PageKey) -> Option<Uuid> {
        let (id, at) = self.cache.remove(key)?;
        (at.elapsed() < self.ttl).then_some(id)
    }

    fn put(&self, key: PageKey, last: Uuid) {
        self.cache.insert(key, (last, Instant::now()));
    }
}

#[cfg(test)]
mod tests;
