//! SCIM filters translated to SQL over the `users` table, with bound parameters: filtering
//! happens in PostgreSQL, on indexed columns where Okta and Entra look users up. A filter
//! on an attribute Roster cannot translate is `400 invalidFilter`.

use crate::scim::{
    ScimError, USER_SCHEMA,
    filter::{AttrPath, CompValue, CompareOp, Filter},
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
    let mut b = Builder {
        params: Vec::new(),
        offset: params_before,
    };
    let sql = b.filter(filter)?;
    Ok(SqlWhere {
        sql,
        params: b.params,
    })
}

struct Builder {
    params: Vec<Value>,
    offset: usize,
}

/// How a column compares: case-insensitively (lower both sides) or exactly.
#[derive(Clone, Copy)]
enum Col {
    Text(&'static str, bool),
    Bool(&'static str),
    IdText,
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
            Filter::Present(path) => match column(path)? {
                Col::Text(c, _) => format!("({c} IS NOT NULL AND {c} <> '')"),
                Col::Bool(c) => format!("({c} IS NOT NULL)"),
                Col::IdText => "true".to_owned(),
            },
            Filter::Compare { path, op, value } => self.compare(column(path)?, *op, value, path)?,
            Filter::ValuePath { path, filter } => self.value_path(path, filter)?,
        })
    }

    fn compare(
        &mut self,
        col: Col,
        op: CompareOp,
        value: &CompValue,
        path: &AttrPath,
    ) -> Result<String, ScimError> {
        match (col, value) {
            (Col::Bool(c), CompValue::Bool(b)) if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                let p = self.bind(Value::from(*b));
                let sql_op = if op == CompareOp::Eq { "=" } else { "<>" };
                Ok(format!("({c} {sql_op} {p})"))
            }
            (Col::Text(c, ci), CompValue::Str(s)) => Ok(self.text_compare(c, ci, op, s)),
            (Col::IdText, CompValue::Str(s)) => Ok(self.text_compare("id::text", true, op, s)),
            (Col::Text(c, _), CompValue::Null) if op == CompareOp::Eq => {
                Ok(format!("({c} IS NULL)"))
            }
            (Col::Text(c, _), CompValue::Null) if op == CompareOp::Ne => {
                Ok(format!("({c} IS NOT NULL)"))
            }
            _ => Err(ScimError::invalid_filter(format!(
                "cannot compare {} with {value:?} using {op:?}",
                path.dotted()
            ))),
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
        if path.name != "emails" || path.sub.is_some() || !core_uri(path) {
            return Err(ScimError::invalid_filter(format!(
                "value filters are supported on emails, not {}",
                path.dotted()
            )));
        }
        let cond = self.element(inner)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(resource->'emails') = 'array' THEN resource->'emails' ELSE '[]'::jsonb END) AS e WHERE {cond})"
        ))
    }

    fn element(&mut self, f: &Filter) -> Result<String, ScimError> {
        Ok(match f {
            Filter::And(a, b) => format!("({} AND {})", self.element(a)?, self.element(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.element(a)?, self.element(b)?),
            Filter::Not(a) => format!("(NOT COALESCE({}, false))", self.element(a)?),
            Filter::Present(p) => {
                let k = sub_key(p)?;
                format!("(e ? '{k}')")
            }
            Filter::Compare { path, op, value } => {
                let k = sub_key(path)?;
                match (k, value) {
                    ("primary", CompValue::Bool(b)) if *op == CompareOp::Eq => {
                        let p = self.bind(Value::from(b.to_string()));
                        format!("(lower(e->>'primary') = {p})")
                    }
                    ("value" | "type" | "display", CompValue::Str(s)) => {
                        let col = format!("e->>'{k}'");
                        self.text_compare(&col, true, *op, s)
                    }
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "cannot compare emails.{k} with {value:?}"
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

fn sub_key(p: &AttrPath) -> Result<&'static str, ScimError> {
    match (p.name.as_str(), &p.sub) {
        ("value", None) => Ok("value"),
        ("type", None) => Ok("type"),
        ("primary", None) => Ok("primary"),
        ("display", None) => Ok("display"),
        _ => Err(ScimError::invalid_filter(format!(
            "emails has no sub-attribute {}",
            p.dotted()
        ))),
    }
}

fn core_uri(p: &AttrPath) -> bool {
    p.uri
        .as_deref()
        .is_none_or(|u| u == USER_SCHEMA.to_ascii_lowercase())
}

fn column(p: &AttrPath) -> Result<Col, ScimError> {
    if !core_uri(p) {
        return Err(ScimError::invalid_filter(format!(
            "filtering on {}:{} is not supported",
            p.uri.as_deref().unwrap_or_default(),
            p.dotted()
        )));
    }
    Ok(match p.dotted().as_str() {
        // caseExact=false attributes compare case-insensitively (RFC 7643 §4.1.1).
        "username" => Col::Text("user_name", true),
        "externalid" => Col::Text("external_id", false),
        "id" => Col::IdText,
        "displayname" => Col::Text("display_name", true),
        "name.givenname" => Col::Text("given_name", true),
        "name.familyname" => Col::Text("family_name", true),
        "emails" | "emails.value" => Col::Text("email", true),
        "active" => Col::Bool("active"),
        other => {
            return Err(ScimError::invalid_filter(format!(
                "filtering on {other} is not supported"
            )));
        }
    })
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
            r#"nickName eq "x""#,
            r#"urn:x:y:foo eq "1""#,
            r#"groups[value eq "1"]"#,
            "active gt 3",
        ] {
            let err = users_where(&parse(f).expect("parses"), 0).expect_err(f);
            assert_eq!(err.scim_type.as_deref(), Some("invalidFilter"), "{f}");
        }
    }
}
