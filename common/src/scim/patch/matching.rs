//! A value filter (`emails[type eq "work"]`) evaluated against one element of a
//! multi-valued attribute.

use crate::scim::filter::{CompValue, CompareOp, Filter};
use serde_json::Value;

/// Evaluates a value filter against one element of a multi-valued attribute.
pub fn element_matches(element: &Value, f: &Filter) -> bool {
    match f {
        Filter::And(a, b) => element_matches(element, a) && element_matches(element, b),
        Filter::Or(a, b) => element_matches(element, a) || element_matches(element, b),
        Filter::Not(a) => !element_matches(element, a),
        Filter::ValuePath { .. } => false,
        Filter::Present(p) => {
            field(element, &p.name).is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        }
        Filter::Compare { path, op, value } => {
            let Some(actual) = field(element, &path.name) else {
                return *op == CompareOp::Ne;
            };
            compare(actual, *op, value)
        }
    }
}

fn field<'a>(element: &'a Value, name: &str) -> Option<&'a Value> {
    element
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compare(actual: &Value, op: CompareOp, expected: &CompValue) -> bool {
    match (actual, expected) {
        (Value::String(a), CompValue::Str(e)) => {
            let (a, e) = (a.to_lowercase(), e.to_lowercase());
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
            }
        }
        (Value::Bool(a), CompValue::Bool(e)) => match op {
            CompareOp::Eq => a == e,
            CompareOp::Ne => a != e,
            _ => false,
        },
        (Value::String(a), CompValue::Bool(e)) => {
            crate::scim::model::parse_bool(&Value::String(a.clone()))
                .is_some_and(|b| (b == *e) == (op == CompareOp::Eq))
        }
        (Value::Number(a), CompValue::Num(e)) => {
            let (Some(a), Some(e)) = (a.as_f64(), e.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
                _ => false,
            }
        }
        (Value::Null, CompValue::Null) => op == CompareOp::Eq,
        _ => op == CompareOp::Ne,
    }
}
