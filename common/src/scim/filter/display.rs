//! A filter written back as text: the canonical form `parse` reads back to the same AST.

use super::{AttrPath, CompValue, CompareOp, Filter};

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.dotted())
    }
}

/// The canonical text of a filter: `parse(&f.to_string()) == f` whenever the text fits
/// `MAX_FILTER_LEN`. Parentheses only where precedence needs them, so the text is never
/// nested deeper than the filter it was parsed from (a long `and` chain stays flat).
impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            // `and` binds tighter than `or`, and both group to the left.
            Filter::And(a, b) => write!(f, "{} and {}", Operand(a, 1), Operand(b, 2)),
            Filter::Or(a, b) => write!(f, "{} or {}", Operand(a, 0), Operand(b, 1)),
            Filter::Not(a) => write!(f, "not ({a})"),
            // Entra's `emails[type eq "work" or …].value eq "x"`, which would otherwise need
            // parentheses inside the brackets.
            Filter::ValuePath { path, filter } => match filter.as_ref() {
                Filter::And(a, cond)
                    if matches!(a.as_ref(), Filter::Or(..))
                        && matches!(cond.as_ref(), Filter::Compare { .. } | Filter::Present(_)) =>
                {
                    write!(f, "{path}[{a}].{cond}")
                }
                inner => write!(f, "{path}[{inner}]"),
            },
        }
    }
}

/// A filter as the operand of `and`/`or`, in parentheses unless it binds at least as
/// tightly as `.1` (0: an `or`, 1: an `and`, 2: a single term).
struct Operand<'a>(&'a Filter, u8);

impl std::fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let binds = match self.0 {
            Filter::Or(..) => 0,
            Filter::And(..) => 1,
            _ => 2,
        };
        if binds < self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl std::fmt::Display for CompareOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        })
    }
}

impl std::fmt::Display for CompValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompValue::Str(s) => {
                f.write_str(&serde_json::to_string(s).map_err(|_| std::fmt::Error)?)
            }
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}
