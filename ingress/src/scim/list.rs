//! Query parameters shared by every list (RFC 7644 §3.4.2): `filter`, `startIndex`,
//! `count`, `sortBy`, `sortOrder`, `attributes`, `excludedAttributes` — from a query string
//! (`GET`) or a SearchRequest body (`POST /.search`, §3.4.3) — and the ListResponse.

use super::scim_json;
use crate::error::ScimApiError;
use axum::{http::StatusCode, response::Response};
use common::{
    db::{query::SqlWhere, stmt},
    scim::{LIST_RESPONSE_SCHEMA, ScimError, filter, projection::AttrList},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Value as SqlValue};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};
use uuid::Uuid;

/// Largest page a list returns (advertised in ServiceProviderConfig).
pub const MAX_PAGE: u64 = 200;
/// The page size when a client does not say.
pub const DEFAULT_PAGE: u64 = 100;

#[derive(Debug, Default, PartialEq)]
pub struct ListParams {
    pub filter: Option<String>,
    pub start_index: u64,
    pub count: u64,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub attributes: AttrList,
    pub excluded: AttrList,
}

impl ListParams {
    fn new() -> Self {
        Self {
            start_index: 1,
            count: DEFAULT_PAGE,
            ..Self::default()
        }
    }

    /// From a query string; parameter names are case-insensitive.
    pub fn from_query(query: Option<&str>) -> Result<Self, ScimError> {
        let mut p = Self::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            p.set(&k, Value::String(v.into_owned()))?;
        }
        Ok(p)
    }

    /// From a SearchRequest body.
    pub fn from_search(body: &Value) -> Result<Self, ScimError> {
        let Value::Object(obj) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let mut p = Self::new();
        for (k, v) in obj {
            if !k.eq_ignore_ascii_case("schemas") {
                p.set(k, v.clone())?;
            }
        }
        Ok(p)
    }

    /// `attributes` and `excludedAttributes`: a comma-separated string or an array.
    fn attr_list(name: &str, v: &Value) -> Result<AttrList, ScimError> {
        match v {
            Value::String(s) => Ok(AttrList::parse(s)),
            Value::Array(items) => {
                let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                names.map(|n| AttrList::parse(&n.join(","))).ok_or_else(|| {
                    ScimError::invalid_value(format!("{name} must list attribute names"))
                })
            }
            _ => Err(ScimError::invalid_value(format!(
                "{name} must list attribute names"
            ))),
        }
    }

    fn set(&mut self, key: &str, v: Value) -> Result<(), ScimError> {
        let number = |v: &Value| -> Result<i64, ScimError> {
            match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| ScimError::invalid_value(format!("{key} must be an integer")))
        };
        let text = |v: Value| -> Result<String, ScimError> {
            match v {
                Value::String(s) => Ok(s),
                _ => Err(ScimError::invalid_value(format!("{key} must be a string"))),
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "filter" => self.filter = Some(text(v)?).filter(|f| !f.trim().is_empty()),
            // RFC 7644 §3.4.2.4: below 1 is read as 1; a negative count as 0.
            "startindex" => self.start_index = number(&v)?.max(1).unsigned_abs(),
            "count" => self.count = number(&v)?.max(0).unsigned_abs().min(MAX_PAGE),
            "sortby" => self.sort_by = Some(text(v)?),
            "sortorder" => {
                self.descending = match text(v)?.to_ascii_lowercase().as_str() {
                    "ascending" | "" => false,
                    "descending" => true,
                    other => {
                        return Err(ScimError::invalid_value(format!(
                            "sortOrder must be ascending or descending, not {other:?}"
                        )));
                    }
                }
            }
            "attributes" => self.attributes = Self::attr_list(key, &v)?,
            "excludedattributes" => self.excluded = Self::attr_list(key, &v)?,
            _ => {}
        }
        Ok(())
    }

    /// The OFFSET of the page.
    pub fn offset(&self) -> i64 {
        i64::try_from(self.start_index - 1).unwrap_or(i64::MAX)
    }
}

/// How one resource table is queried: its name, and its filter and sort translations.
pub struct Table {
    pub name: &'static str,
    pub filter: fn(&filter::Filter, usize) -> Result<SqlWhere, ScimError>,
    pub order: fn(Option<&str>, bool) -> Result<String, ScimError>,
}

/// One page of an org's rows matching `params`, and the exact total. Filtering, sorting
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
    params: &ListParams,
) -> Result<(i64, Vec<M>), ScimApiError> {
    let mut values: Vec<SqlValue> = vec![org_id.into()];
    let mut where_sql = "org_id = $1".to_owned();
    if let Some(f) = params.filter.as_deref() {
        let w = (table.filter)(&filter::parse(f)?, values.len())?;
        where_sql = format!("{where_sql} AND {}", w.sql);
        values.extend(w.params);
    }
    let order = (table.order)(params.sort_by.as_deref(), params.descending)?;
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
    if params.count == 0 || params.offset() >= total {
        return Ok((total, Vec::new()));
    }
    // Only the id order can be continued by a seek on the id alone.
    let by_id = order == "id ASC" || order == "id DESC";
    let at = |start_index: u64| PageKey {
        table: name,
        org_id,
        filter: params.filter.clone(),
        descending: params.descending,
        start_index,
    };
    let after = if by_id {
        CONTINUATIONS.get(&at(params.start_index))
    } else {
        None
    };
    let n = values.len();
    values.push(i64::try_from(params.count).unwrap_or(i64::MAX).into());
    let sql = match after {
        Some(last) => {
            values.push(last.into());
            let cmp = if params.descending { "<" } else { ">" };
            format!(
                "SELECT * FROM {name} WHERE {where_sql} AND id {cmp} ${} ORDER BY {order} LIMIT ${}",
                n + 2,
                n + 1
            )
        }
        None => {
            values.push(params.offset().into());
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
        let next = params.start_index + rows.len() as u64;
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
const CONTINUATION_CAPACITY: usize = 4096;
const CONTINUATION_TTL: Duration = Duration::from_secs(600);

/// The last id of recently served pages, under the key of the page that follows.
static CONTINUATIONS: Continuations = Continuations::new(CONTINUATION_CAPACITY, CONTINUATION_TTL);

/// A small bounded map from the start of the next page to the last id before it. Taking
/// an entry removes it (an import moves on); when full, expired entries go first, then
/// the oldest.
struct Continuations {
    capacity: usize,
    ttl: Duration,
    map: Mutex<Option<HashMap<PageKey, (Uuid, Instant)>>>,
}

impl Continuations {
    const fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            map: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<PageKey, (Uuid, Instant)>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &PageKey) -> Option<Uuid> {
        let mut map = self.lock();
        let (id, at) = map.as_mut()?.remove(key)?;
        (at.elapsed() < self.ttl).then_some(id)
    }

    fn put(&self, key: PageKey, last: Uuid) {
        let mut guard = self.lock();
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, (_, at)| at.elapsed() < self.ttl);
            if map.len() >= self.capacity
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key, (last, Instant::now()));
    }
}

/// A ListResponse with `itemsPerPage` equal to what it holds.
pub fn list_response(total: i64, start_index: u64, resources: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_paging_parameters() {
        let p = ListParams::from_query(Some(
            "filter=userName%20eq%20%22a%40b.c%22&startIndex=1&count=100",
        ))
        .expect("ok");
        assert_eq!(p.filter.as_deref(), Some("userName eq \"a@b.c\""));
        assert_eq!((p.start_index, p.count), (1, 100));
    }

    #[test]
    fn entra_plus_encoding_and_clamping() {
        let p =
            ListParams::from_query(Some("filter=userName+eq+%22x%22&StartIndex=0&Count=100000"))
                .expect("ok");
        assert_eq!(p.filter.as_deref(), Some("userName eq \"x\""));
        assert_eq!((p.start_index, p.count), (1, MAX_PAGE));
        assert_eq!(
            ListParams::from_query(Some("count=-5")).expect("ok").count,
            0
        );
        assert!(ListParams::from_query(Some("count=ten")).is_err());
        assert!(ListParams::from_query(Some("sortOrder=sideways")).is_err());
        assert_eq!(
            ListParams::from_query(None).expect("ok").count,
            DEFAULT_PAGE
        );
    }

    #[test]
    fn search_requests_read_the_same() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "userName sw \"a\"", "startIndex": 3, "count": 7,
            "sortBy": "userName", "sortOrder": "descending",
            "attributes": ["userName", "name.givenName"], "excludedAttributes": "emails"
        });
        let p = ListParams::from_search(&body).expect("ok");
        assert_eq!((p.start_index, p.count, p.descending), (3, 7, true));
        assert_eq!(p.sort_by.as_deref(), Some("userName"));
        assert_eq!(p.attributes, AttrList::parse("userName,name.givenName"));
        assert_eq!(p.excluded, AttrList::parse("emails"));
    }

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
        assert_eq!(c.get(&key(101)), Some(a));
        assert_eq!(c.get(&key(101)), None, "taken");
        c.put(key(101), a);
        c.put(key(201), b);
        c.put(key(301), d);
        assert_eq!(c.get(&key(101)), None, "evicted, the oldest");
        assert_eq!((c.get(&key(201)), c.get(&key(301))), (Some(b), Some(d)));
        let other_filter = PageKey {
            filter: Some("active eq true".into()),
            ..key(201)
        };
        c.put(key(201), b);
        assert_eq!(c.get(&other_filter), None, "another list");
    }

    #[test]
    fn an_expired_continuation_is_not_used() {
        let c = Continuations::new(4, Duration::ZERO);
        c.put(key(101), Uuid::new_v4());
        assert_eq!(c.get(&key(101)), None);
    }
}
