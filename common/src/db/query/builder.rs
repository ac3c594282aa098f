//! Writing the SQL of a filter: comparisons, `pr`, `and`/`or`/`not` and value paths, with
//! bound parameters.

use super::{
    Resolver,
    targets::{Target, core_uri, sub_key},
};
use crate::scim::{
    ScimError,
    filter::{AttrPath, CompValue, CompareOp, Filter},
    schema::{self, Attr},
};
use sea_orm::Value;

pub(super) struct Builder {
    pub(super) params: Vec<Value>,
    pub(super) resolve: Resolver,
    /// Whether `attr[filter]` over the stored JSON applies (Users).
    pub(super) value_paths: bool,
}

impl Builder {
    fn bind(&mut self, v: Value) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }

    pub(super) fn filter(&mut self, f: &Filter) -> Result<String, ScimError> {
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

pub(super) fn exists(array: &str, cond: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} ELSE '[]'::jsonb END) AS e WHERE {cond})"
    )
}

pub(super) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
