//! One page of a SCIM list (`GET /Users`, `GET /Groups`, `.search`). The measured hot
//! path of an import (docs/performance.md), so its SQL stays hand-written: the filter
//! translation (`common::db::query`) yields a `WHERE` with bound `$n` parameters, and the
//! page is chosen by ids on an index-only scan, which a query builder would not let us
//! state more plainly.

use common::{
    db::{query::SqlWhere, stmt},
    scim::{ScimError, filter},
};
use moka::{policy::EvictionPolicy, sync::Cache};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, Value as SqlValue};
use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};
use uuid::Uuid;

/// How one resource table is queried: its name, and its filter and sort translations.
pub struct Table {
    pub name: &'static str,
    pub filter: fn(&filter::Filter, usize) -> Result<SqlWhere, ScimError>,
    pub order: fn(Option<&str>, bool) -> Result<String, ScimError>,
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
    let mut values: Vec<SqlValue> = vec![org_id.into()];
    let mut where_sql = "org_id = $1".to_owned();
    if let Some(f) = req.filter {
        let w = (table.filter)(&filter::parse(f)?, values.len())?;
        where_sql = format!("{where_sql} AND {}", w.sql);
        values.extend(w.params);
    }
    let order = (table.order)(req.sort_by, req.descending)?;
    let name = table.name;
    let total: i64 = db
        .query_one_raw(stmt(
            &format!("SELECT count(*) AS n FROM {name} WHERE {where_sql}"),
            values.clone(),
        ))
        .await?
        .map(|r| r.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    if req.count == 0 || req.offset() >= total {
        return Ok((total, Vec::new()));
    }
    // Only the id order can be continued by a seek on the id alone.
    let by_id = order == "id ASC" || order == "id DESC";
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
    let n = values.len();
    values.push(i64::try_from(req.count).unwrap_or(i64::MAX).into());
    let sql = match after {
        Some(last) => {
            values.push(last.into());
            let cmp = if req.descending { "<" } else { ">" };
            format!(
                "SELECT * FROM {name} WHERE {where_sql} AND id {cmp} ${} ORDER BY {order} LIMIT ${}",
                n + 2,
                n + 1
            )
        }
        None => {
            values.push(req.offset().into());
            format!(
                "SELECT * FROM {name} WHERE id IN (SELECT id FROM {name} WHERE {where_sql} \
                 ORDER BY {order} LIMIT ${} OFFSET ${}) ORDER BY {order}",
                n + 1,
                n + 2
            )
        }
    };
    let rows = db.query_all_raw(stmt(&sql, values)).await?;
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
mod tests {
    use super::*;

    fn key(start_index: u64) -> PageKey {
        PageKey {
            table: "users",
            org_id: Uuid::nil(),
            filter: None,
            descending: false,
            start_index,
        }
    }

    #[test]
    fn a_continuation_is_taken_once_and_the_oldest_goes_first() {
        let c = Continuations::new(2, Duration::from_secs(60));
        let (a, b, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        c.put(key(101), a);
        assert_eq!(c.take(&key(101)), Some(a));
        assert_eq!(c.take(&key(101)), None, "taken");
        c.put(key(101), a);
        c.put(key(201), b);
        c.cache.run_pending_tasks();
        c.put(key(301), d);
        c.cache.run_pending_tasks();
        assert_eq!(c.take(&key(101)), None, "evicted, the oldest");
        assert_eq!((c.take(&key(201)), c.take(&key(301))), (Some(b), Some(d)));
        let other_filter = PageKey {
            filter: Some("active eq true".into()),
            ..key(201)
        };
        c.put(key(201), b);
        assert_eq!(c.take(&other_filter), None, "another list");
    }

    #[test]
    fn an_expired_continuation_is_not_used() {
        let c = Continuations::new(4, Duration::from_millis(1));
        c.put(key(101), Uuid::new_v4());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.take(&key(101)), None);
    }
}
