//! The SCIM filter grammar (RFC 7644 §3.4.2.2) parsed into an AST: comparisons, `pr`,
//! `and`/`or`/`not`, parentheses and value paths, with case-insensitive keywords and
//! attribute names. Translating the AST to SQL is `db::query`'s job; anything it cannot
//! translate is `400 invalidFilter`, never an empty list.
//!
//! The AST is here; [`parse`](mod@parse) reads it from text, [`display`] writes it back.

mod display;
mod parse;

pub use parse::parse;

use super::ScimError;
use serde_json::Number;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: some element of the multi-valued `path` matches `filter`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// `[urn:…:]name[.sub]`, stored lower-cased (attribute names are case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        let lower = text.to_ascii_lowercase();
        let (uri, rest) = match lower.rfind(':') {
            Some(i) => (Some(lower[..i].to_owned()), &lower[i + 1..]),
            None => (None, lower.as_str()),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n.to_owned(), Some(s.to_owned())),
            None => (rest.to_owned(), None),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !valid(&name) || sub.as_deref().is_some_and(|s| !valid(s)) {
            return Err(ScimError::invalid_filter(format!(
                "{text:?} is not an attribute path"
            )));
        }
        Ok(Self { uri, name, sub })
    }

    /// `name` or `name.sub`, without the schema URI.
    pub fn dotted(&self) -> String {
        match &self.sub {
            Some(s) => format!("{}.{s}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(Number),
    Bool(bool),
    Null,
}

#[cfg(test)]
mod tests;
