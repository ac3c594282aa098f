//! SCIM filters translated to SQL over the `users` table, with bound parameters: filtering
//! happens in PostgreSQL, on indexed columns where Okta and Entra look users up. A filter
//! on an attribute Roster cannot translate is `400 invalidFilter`.
//!
//! [`targets`] says where each attribute is stored, [`builder`] writes the SQL. The SQL is
//! built by hand, its `$n` placeholders numbered from 1, and a caller puts it into its
//! statement as a sea-query fragment, which numbers them after its own: it is the SCIM
//! search path, and what it writes (JSON paths, `EXISTS` over array elements, `ILIKE`
//! escapes) is beyond what sea-query expresses without raw fragments anyway.

mod builder;
mod targets;

use crate::scim::{
    ScimError,
    filter::{AttrPath, Filter},
};
use builder::Builder;
use sea_orm::Value;
use targets::{Target, group_target, user_target};

/// A SQL boolean expression and its parameters (`$1`, `$2`, … in order).
#[derive(Debug, PartialEq)]
pub struct SqlWhere {
    pub sql: String,
    pub params: Vec<Value>,
}

/// Translates a filter on Users.
pub fn users_where(filter: &Filter) -> Result<SqlWhere, ScimError> {
    build(filter, user_target, true)
}

/// Translates a filter on Groups (`displayName`, `externalId`, `id`, `members.value`, `meta.*`).
pub fn groups_where(filter: &Filter) -> Result<SqlWhere, ScimError> {
    build(filter, group_target, false)
}

fn build(filter: &Filter, resolve: Resolver, value_paths: bool) -> Result<SqlWhere, ScimError> {
    let mut b = Builder {
        params: Vec::new(),
        resolve,
        value_paths,
    };
    let sql = b.filter(filter)?;
    Ok(SqlWhere {
        sql,
        params: b.params,
    })
}

type Resolver = fn(&AttrPath) -> Result<Target, ScimError>;

/// What users are sorted by for `sortBy` (RFC 7644 §3.4.2.3): the key's SQL, or `None`
/// when none is asked (the id alone). The caller sorts by the key in the asked direction,
/// nulls last, then by id.
pub fn users_sort_key(sort_by: Option<&str>) -> Result<Option<String>, ScimError> {
    sort_key(sort_by, user_target)
}

/// What groups are sorted by for `sortBy` (see [`users_sort_key`]).
pub fn groups_sort_key(sort_by: Option<&str>) -> Result<Option<String>, ScimError> {
    sort_key(sort_by, group_target)
}

fn sort_key(sort_by: Option<&str>, resolve: Resolver) -> Result<Option<String>, ScimError> {
    let Some(sort_by) = sort_by.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let path = AttrPath::parse(sort_by).map_err(|e| ScimError::invalid_value(e.detail))?;
    let key = match resolve(&path).map_err(|e| ScimError::invalid_value(e.detail))? {
        Target::Text(c, true) => format!("lower({c})"),
        Target::Text(c, false) => c,
        Target::Bool(c) | Target::Time(c) => c.to_owned(),
        Target::IdText | Target::ResourceType(_) | Target::Members => "id".to_owned(),
        Target::Multi { array, sub, .. } => format!("lower(({array})->0->>'{sub}')"),
    };
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;

    fn sql(f: &str) -> SqlWhere {
        users_where(&parse(f).expect("parses")).expect("translates")
    }

    #[test]
    fn username_eq_is_case_insensitive_and_bound() {
        let w = sql(r#"userName eq "Jane@Example.com""#);
        assert_eq!(w.sql, "(lower(user_name) = $1)");
        assert_eq!(w.params, vec![Value::from("jane@example.com".to_owned())]);
    }

    #[test]
    fn external_id_is_case_exact() {
        let w = sql(r#"externalId eq "00uAbC""#);
        assert_eq!(w.sql, "(external_id = $1)");
        assert_eq!(w.params, vec![Value::from("00uAbC".to_owned())]);
    }

    #[test]
    fn like_patterns_are_escaped() {
        let w = sql(r#"userName sw "a_b%""#);
        assert_eq!(w.params, vec![Value::from("a\\_b\\%%".to_owned())]);
    }

    #[test]
    fn other_attributes_are_found_in_the_stored_resource() {
        let w = sql(r#"title co "eng" and nickName pr"#);
        assert!(
            w.sql.contains("lower((resource->>'title')) LIKE $1"),
            "{}",
            w.sql
        );
        assert!(
            w.sql.contains("(resource->>'nickName') IS NOT NULL"),
            "{}",
            w.sql
        );
        let w = sql(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#,
        );
        assert!(w.sql.contains("resource->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->>'employeeNumber'"));
        let w = sql(r#"phoneNumbers.value sw "+1""#);
        assert!(w.sql.contains("jsonb_array_elements"), "{}", w.sql);
        let w = sql(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#);
        assert_eq!(w.sql, "(updated_at > $1)");
    }

    #[test]
    fn group_filters() {
        let w = groups_where(&parse(r#"displayName eq "Eng""#).expect("parses")).expect("ok");
        assert_eq!(w.sql, "(lower(display_name) = $1)");
        let w = groups_where(&parse(r#"members.value eq "ABC""#).expect("parses")).expect("ok");
        assert!(w.sql.contains("group_members"));
        assert!(groups_where(&parse(r#"title eq "x""#).expect("parses")).is_err());
        assert!(groups_where(&parse(r#"members[value eq "x"]"#).expect("parses")).is_err());
    }

    #[test]
    fn sorting_by_attributes() {
        assert_eq!(users_sort_key(None).expect("ok"), None);
        assert_eq!(
            users_sort_key(Some("userName")).expect("ok").as_deref(),
            Some("lower(user_name)")
        );
        assert!(
            users_sort_key(Some("title"))
                .expect("ok")
                .expect("a key")
                .starts_with("lower((resource->>'title'))")
        );
        assert_eq!(
            users_sort_key(Some("id")).expect("ok").as_deref(),
            Some("id")
        );
        assert!(users_sort_key(Some("bogus")).is_err());
    }

    #[test]
    fn logic_and_value_paths_compose() {
        let w = sql(
            r#"(userName eq "a" or emails[type eq "work" and value co "x"]) and active eq true"#,
        );
        assert!(
            w.sql
                .contains(" OR EXISTS (SELECT 1 FROM jsonb_array_elements"),
            "{}",
            w.sql
        );
        assert_eq!(w.params.len(), 4);
    }

    #[test]
    fn unsupported_attributes_are_invalid_filter_not_empty() {
        for f in [
            r#"foo eq "x""#,
            r#"name.nope eq "x""#,
            r#"password eq "x""#,
            r#"urn:x:y:foo eq "1""#,
            r#"groups[value eq "1"]"#,
            "active gt 3",
            r#"meta.created gt "yesterday""#,
            r#"emails[nope eq "x"]"#,
        ] {
            let err = users_where(&parse(f).expect("parses")).expect_err(f);
            assert_eq!(err.scim_type.as_deref(), Some("invalidFilter"), "{f}");
        }
    }
}
