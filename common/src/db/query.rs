//! SCIM filters translated to SQL over the `users` table, with bound parameters: filtering
//! happens in PostgreSQL, on indexed columns where Okta and Entra look users up. A filter
//! on an attribute Roster cannot translate is `400 invalidFilter`.

use crate::scim::{
    ScimError, USER_SCHEMA,
    filter::{AttrPath, CompValue, CompareOp, Filter},
    schema::{self, Attr},
};
use sea_orm::Value;

/// A SQL boolean expression and its parameters (`$n` numbered from `first_param`).
#[derive(Debug, PartialEq)]
pub struct SqlWhere {
    pub sql: String,
    pub params: Vec<Value>,
}

/// Translates a filter on Users; parameters are numbered after `params_before`.
pub fn users_where(filter: &Filter, params_before: usize) -> Result<SqlWhere, ScimError> {
    build(filter, params_before, user_target, true)
}

/// Translates a filter on Groups (`displayName`, `externalId`, `id`, `members.value`, `meta.*`).
pub fn groups_where(filter: &Filter, params_before: usize) -> Result<SqlWhere, ScimError> {
    build(filter, params_before, group_target, false)
}

fn build(
    filter: &Filter,
    params_before: usize,
    resolve: Resolver,
    value_paths: bool,
) -> Result<SqlWhere, ScimError> {
    let mut b = Builder {
        params: Vec::new(),
        offset: params_before,
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

struct Builder {
    params: Vec<Value>,
    offset: usize,
    resolve: Resolver,
    /// Whether `attr[filter]` over the stored JSON applies (Users).
    value_paths: bool,
}

/// What an attribute path refers to in the `users` table.
#[derive(Clone, Debug)]
enum Target {
    /// A text column; `true` when it compares case-insensitively.
    Text(String, bool),
    Bool(&'static str),
    IdText,
    /// A multi-valued complex attribute (JSON array expression) and the sub-attribute
    /// compared on each element.
    Multi {
        array: String,
        sub: &'static str,
        ci: bool,
    },
    /// `meta.created`, `meta.lastModified`.
    Time(&'static str),
    /// `meta.resourceType`, and the resource's type name.
    ResourceType(&'static str),
    /// A group's `members` (`members.value`): the membership table.
    Members,
}

impl Builder {
    fn bind(&mut self, v: Value) -> String {
        self.params.push(v);
        format!("${}", self.params.len() + self.offset)
    }

    fn filter(&mut self, f: &Filter) -> Result<String, ScimError> {
        Ok(match f {
            Filter::And(a, b) => format!("({} AND {})", self.filter(a)?, self.filter(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.filter(a)?, self.filter(b)?),
            Filter::Not(a) => format!("(NOT COALESCE({}, false))", self.filter(a)?),
            Filter::Present(path) => match (self.resolve)(path)? {
                Target::Text(c, _) => format!("({c} IS NOT NULL AND {c} <> '')"),
                Target::Bool(c) => format!("({c} IS NOT NULL)"),
                Target::IdText | Target::ResourceType(_) | Target::Time(_) => "true".to_owned(),
                Target::Multi { array, sub, .. } => exists(&array, &format!("(e->>'{sub}') <> ''")),
                Target::Members => {
                    "EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = groups.id)".to_owned()
                }
            },
            Filter::Compare { path, op, value } => {
                let t = (self.resolve)(path)?;
                self.compare(t, *op, value, path)?
            }
            Filter::ValuePath { path, filter } => self.value_path(path, filter)?,
        })
    }

    fn compare(
        &mut self,
        t: Target,
        op: CompareOp,
        value: &CompValue,
        path: &AttrPath,
    ) -> Result<String, ScimError> {
        let bad = || {
            ScimError::invalid_filter(format!(
                "cannot compare {} with {value:?} using {op:?}",
                path.dotted()
            ))
        };
        match (t, value) {
            (Target::Bool(c), CompValue::Bool(b))
                if matches!(op, CompareOp::Eq | CompareOp::Ne) =>
            {
                let p = self.bind(Value::from(*b));
                let sql_op = if op == CompareOp::Eq { "=" } else { "<>" };
                Ok(format!("({c} {sql_op} {p})"))
            }
            (Target::Text(c, ci), CompValue::Str(s)) => Ok(self.text_compare(&c, ci, op, s)),
            (Target::IdText, CompValue::Str(s)) => Ok(self.text_compare("id::text", true, op, s)),
            (Target::Multi { array, sub, ci }, CompValue::Str(s)) => {
                let cond = self.text_compare(&format!("(e->>'{sub}')"), ci, op, s);
                Ok(exists(&array, &cond))
            }
            (Target::Text(c, _), CompValue::Null) if op == CompareOp::Eq => {
                Ok(format!("({c} IS NULL)"))
            }
            (Target::Text(c, _), CompValue::Null) if op == CompareOp::Ne => {
                Ok(format!("({c} IS NOT NULL)"))
            }
            (Target::Time(c), CompValue::Str(s)) => {
                let at = chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| {
                        ScimError::invalid_filter(format!("{s:?} is not an RFC 3339 date-time"))
                    })?
                    .with_timezone(&chrono::Utc);
                let sql_op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::Ne => "<>",
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    CompareOp::Le => "<=",
                    _ => return Err(bad()),
                };
                let p = self.bind(Value::from(at));
                Ok(format!("({c} {sql_op} {p})"))
            }
            (Target::ResourceType(name), CompValue::Str(s)) if op == CompareOp::Eq => {
                Ok(if s.eq_ignore_ascii_case(name) {
                    "true"
                } else {
                    "false"
                }
                .to_owned())
            }
            (Target::Members, CompValue::Str(s)) if op == CompareOp::Eq => {
                let p = self.bind(Value::from(s.to_lowercase()));
                Ok(format!(
                    "EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = groups.id AND m.user_id::text = {p})"
                ))
            }
            _ => Err(bad()),
        }
    }

    fn text_compare(&mut self, c: &str, ci: bool, op: CompareOp, s: &str) -> String {
        let (lhs, rhs_value) = if ci {
            (format!("lower({c})"), s.to_lowercase())
        } else {
            (c.to_owned(), s.to_owned())
        };
        let like = |b: &mut Self, pattern: String| b.bind(Value::from(pattern));
        match op {
            CompareOp::Eq => format!("({lhs} = {})", self.bind(Value::from(rhs_value))),
            CompareOp::Ne => format!(
                "({lhs} IS DISTINCT FROM {})",
                self.bind(Value::from(rhs_value))
            ),
            CompareOp::Co => format!(
                "({lhs} LIKE {} ESCAPE '\\')",
                like(self, format!("%{}%", escape_like(&rhs_value)))
            ),
            CompareOp::Sw => format!(
                "({lhs} LIKE {} ESCAPE '\\')",
                like(self, format!("{}%", escape_like(&rhs_value)))
            ),
            CompareOp::Ew => format!(
                "({lhs} LIKE {} ESCAPE '\\')",
                like(self, format!("%{}", escape_like(&rhs_value)))
            ),
            CompareOp::Gt => format!("({lhs} > {})", self.bind(Value::from(rhs_value))),
            CompareOp::Ge => format!("({lhs} >= {})", self.bind(Value::from(rhs_value))),
            CompareOp::Lt => format!("({lhs} < {})", self.bind(Value::from(rhs_value))),
            CompareOp::Le => format!("({lhs} <= {})", self.bind(Value::from(rhs_value))),
        }
    }

    /// `emails[type eq "work" and value eq "x"]`: some element of the stored array matches.
    fn value_path(&mut self, path: &AttrPath, inner: &Filter) -> Result<String, ScimError> {
        let def = match (self.value_paths && core_uri(path), path.sub.is_none()) {
            (true, true) => schema::USER
                .attr(&path.name)
                .filter(|d| d.multi && !d.sub.is_empty()),
            _ => None,
        };
        let Some(def) = def.filter(|d| d.name != "groups") else {
            return Err(ScimError::invalid_filter(format!(
                "value filters are supported on multi-valued attributes such as emails, not {}",
                path.dotted()
            )));
        };
        let cond = self.element(inner, def)?;
        Ok(exists(&format!("resource->'{}'", def.name), &cond))
    }

    fn element(&mut self, f: &Filter, def: &'static Attr) -> Result<String, ScimError> {
        Ok(match f {
            Filter::And(a, b) => {
                format!("({} AND {})", self.element(a, def)?, self.element(b, def)?)
            }
            Filter::Or(a, b) => format!("({} OR {})", self.element(a, def)?, self.element(b, def)?),
            Filter::Not(a) => format!("(NOT COALESCE({}, false))", self.element(a, def)?),
            Filter::Present(p) => {
                let k = sub_key(p, def)?;
                format!("((e->>'{k}') <> '')")
            }
            Filter::Compare { path, op, value } => {
                let k = sub_key(path, def)?;
                match value {
                    CompValue::Bool(b) if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                        let p = self.bind(Value::from(b.to_string()));
                        let sql_op = if *op == CompareOp::Eq {
                            "="
                        } else {
                            "IS DISTINCT FROM"
                        };
                        format!("(lower(e->>'{k}') {sql_op} {p})")
                    }
                    CompValue::Str(s) => self.text_compare(&format!("(e->>'{k}')"), true, *op, s),
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "cannot compare {}.{k} with {value:?}",
                            def.name
                        )));
                    }
                }
            }
            Filter::ValuePath { .. } => {
                return Err(ScimError::invalid_filter(
                    "nested value filters are not allowed",
                ));
            }
        })
    }
}

fn exists(array: &str, cond: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} ELSE '[]'::jsonb END) AS e WHERE {cond})"
    )
}

/// A sub-attribute of a multi-valued attribute, by its canonical (schema) name.
fn sub_key(p: &AttrPath, def: &'static Attr) -> Result<&'static str, ScimError> {
    let sub = def
        .sub_attr(&p.name)
        .filter(|_| p.sub.is_none())
        .ok_or_else(|| {
            ScimError::invalid_filter(format!("{} has no sub-attribute {}", def.name, p.dotted()))
        })?;
    Ok(sub.name)
}

fn core_uri(p: &AttrPath) -> bool {
    p.uri
        .as_deref()
        .is_none_or(|u| u == USER_SCHEMA.to_ascii_lowercase())
}

/// Where a Group attribute is stored.
fn group_target(p: &AttrPath) -> Result<Target, ScimError> {
    let core = p
        .uri
        .as_deref()
        .is_none_or(|u| u == crate::scim::GROUP_SCHEMA.to_ascii_lowercase());
    Ok(match (core, p.dotted().as_str()) {
        (true, "displayname") => Target::Text("display_name".into(), true),
        (true, "externalid") => Target::Text("external_id".into(), false),
        (true, "id") => Target::IdText,
        (true, "members" | "members.value") => Target::Members,
        (true, "meta.created") => Target::Time("created_at"),
        (true, "meta.lastmodified") => Target::Time("updated_at"),
        (true, "meta.resourcetype") => Target::ResourceType("Group"),
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "filtering groups on {} is not supported",
                p.dotted()
            )));
        }
    })
}

/// Resolves a User attribute path to where it is stored. Names come from the static
/// schemas, never from the request, so they are safe to splice into SQL.
fn user_target(p: &AttrPath) -> Result<Target, ScimError> {
    let unsupported =
        || ScimError::invalid_filter(format!("filtering on {} is not supported", p.dotted()));
    if let Some(uri) = p.uri.as_deref().filter(|_| !core_uri(p)) {
        let ext = schema::user_extension(uri)
            .ok_or_else(|| ScimError::invalid_filter(format!("unknown schema {uri:?}")))?;
        let def = ext.attr(&p.name).ok_or_else(unsupported)?;
        return Ok(match (&p.sub, def.sub.is_empty()) {
            (None, true) => Target::Text(
                format!("(resource->'{}'->>'{}')", ext.id, def.name),
                !def.case_exact,
            ),
            (Some(s), false) => {
                let sub = def.sub_attr(s).ok_or_else(unsupported)?;
                Target::Text(
                    format!("(resource->'{}'->'{}'->>'{}')", ext.id, def.name, sub.name),
                    !sub.case_exact,
                )
            }
            // `manager eq "id"` means its value.
            (None, false) => Target::Text(
                format!("(resource->'{}'->'{}'->>'value')", ext.id, def.name),
                false,
            ),
            _ => return Err(unsupported()),
        });
    }
    // Indexed columns first: where Okta and Entra look users up.
    Ok(match p.dotted().as_str() {
        "username" => Target::Text("user_name".into(), true),
        "externalid" => Target::Text("external_id".into(), false),
        "id" => Target::IdText,
        "displayname" => Target::Text("display_name".into(), true),
        "name.givenname" => Target::Text("given_name".into(), true),
        "name.familyname" => Target::Text("family_name".into(), true),
        "emails" | "emails.value" => Target::Multi {
            array: "resource->'emails'".into(),
            sub: "value",
            ci: true,
        },
        "active" => Target::Bool("active"),
        "meta.created" => Target::Time("created_at"),
        "meta.lastmodified" => Target::Time("updated_at"),
        "meta.resourcetype" => Target::ResourceType("User"),
        _ => {
            let def = schema::USER
                .attr(&p.name)
                .filter(|d| d.name != "groups" && d.name != "password")
                .ok_or_else(unsupported)?;
            match (def.multi, &p.sub, def.sub.is_empty()) {
                (false, None, true) if def.ty != schema::Type::Boolean => {
                    Target::Text(format!("(resource->>'{}')", def.name), !def.case_exact)
                }
                (false, Some(s), false) => {
                    let sub = def.sub_attr(s).ok_or_else(unsupported)?;
                    Target::Text(
                        format!("(resource->'{}'->>'{}')", def.name, sub.name),
                        !sub.case_exact,
                    )
                }
                (true, sub, false) => {
                    let sub = match sub {
                        Some(s) => def.sub_attr(s).ok_or_else(unsupported)?,
                        None => def.sub_attr("value").ok_or_else(unsupported)?,
                    };
                    Target::Multi {
                        array: format!("resource->'{}'", def.name),
                        sub: sub.name,
                        ci: !sub.case_exact,
                    }
                }
                _ => return Err(unsupported()),
            }
        }
    })
}

/// The SQL to sort users by `sortBy` (RFC 7644 §3.4.2.3), ties broken by id.
pub fn users_order(sort_by: Option<&str>, descending: bool) -> Result<String, ScimError> {
    order(sort_by, descending, user_target)
}

/// The SQL to sort groups by `sortBy`, ties broken by id.
pub fn groups_order(sort_by: Option<&str>, descending: bool) -> Result<String, ScimError> {
    order(sort_by, descending, group_target)
}

fn order(sort_by: Option<&str>, descending: bool, resolve: Resolver) -> Result<String, ScimError> {
    let dir = if descending { "DESC" } else { "ASC" };
    let Some(sort_by) = sort_by.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(format!("id {dir}"));
    };
    let path = AttrPath::parse(sort_by).map_err(|e| ScimError::invalid_value(e.detail))?;
    let expr = match resolve(&path).map_err(|e| ScimError::invalid_value(e.detail))? {
        Target::Text(c, true) => format!("lower({c})"),
        Target::Text(c, false) => c,
        Target::Bool(c) | Target::Time(c) => c.to_owned(),
        Target::IdText | Target::ResourceType(_) | Target::Members => "id".to_owned(),
        Target::Multi { array, sub, .. } => format!("lower(({array})->0->>'{sub}')"),
    };
    Ok(format!("{expr} {dir} NULLS LAST, id {dir}"))
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;

    fn sql(f: &str) -> SqlWhere {
        users_where(&parse(f).expect("parses"), 1).expect("translates")
    }

    #[test]
    fn username_eq_is_case_insensitive_and_bound() {
        let w = sql(r#"userName eq "Jane@Example.com""#);
        assert_eq!(w.sql, "(lower(user_name) = $2)");
        assert_eq!(w.params, vec![Value::from("jane@example.com".to_owned())]);
    }

    #[test]
    fn external_id_is_case_exact() {
        let w = sql(r#"externalId eq "00uAbC""#);
        assert_eq!(w.sql, "(external_id = $2)");
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
            w.sql.contains("lower((resource->>'title')) LIKE $2"),
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
        assert_eq!(w.sql, "(updated_at > $2)");
    }

    #[test]
    fn group_filters() {
        let w = groups_where(&parse(r#"displayName eq "Eng""#).expect("parses"), 0).expect("ok");
        assert_eq!(w.sql, "(lower(display_name) = $1)");
        let w = groups_where(&parse(r#"members.value eq "ABC""#).expect("parses"), 0).expect("ok");
        assert!(w.sql.contains("group_members"));
        assert!(groups_where(&parse(r#"title eq "x""#).expect("parses"), 0).is_err());
        assert!(groups_where(&parse(r#"members[value eq "x"]"#).expect("parses"), 0).is_err());
    }

    #[test]
    fn sorting_by_attributes() {
        assert_eq!(users_order(None, false).expect("ok"), "id ASC");
        assert_eq!(
            users_order(Some("userName"), true).expect("ok"),
            "lower(user_name) DESC NULLS LAST, id DESC"
        );
        assert!(
            users_order(Some("title"), false)
                .expect("ok")
                .starts_with("lower((resource->>'title'))")
        );
        assert!(users_order(Some("bogus"), false).is_err());
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
            let err = users_where(&parse(f).expect("parses"), 0).expect_err(f);
            assert_eq!(err.scim_type.as_deref(), Some("invalidFilter"), "{f}");
        }
    }
}
