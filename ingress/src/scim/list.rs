//! Query parameters shared by every list (RFC 7644 §3.4.2): `filter`, `startIndex`,
//! `count`, `sortBy`, `sortOrder`, `attributes`, `excludedAttributes` — from a query string
//! (`GET`) or a SearchRequest body (`POST /.search`, §3.4.3) — and the ListResponse.

use super::scim_json;
use crate::error::ScimApiError;
use crate::store::page::{self, PageError, PageRequest};
use axum::{http::StatusCode, response::Response};
use common::scim::{LIST_RESPONSE_SCHEMA, ScimError, projection::AttrList};
use sea_orm::{DatabaseConnection, FromQueryResult};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::store::page::Table;

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
}

/// One page of the org's rows matching `params`, and the exact total (`store::page`).
pub async fn fetch_page<M: FromQueryResult>(
    db: &DatabaseConnection,
    table: &Table,
    org_id: Uuid,
    params: &ListParams,
) -> Result<(i64, Vec<M>), ScimApiError> {
    let req = PageRequest {
        filter: params.filter.as_deref(),
        sort_by: params.sort_by.as_deref(),
        descending: params.descending,
        start_index: params.start_index,
        count: params.count,
    };
    page::fetch_page(db, table, org_id, &req)
        .await
        .map_err(|e| match e {
            PageError::Scim(e) => e.into(),
            PageError::Db(e) => e.into(),
        })
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
}
