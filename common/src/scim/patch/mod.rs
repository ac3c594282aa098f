//! PATCH (RFC 7644 §3.5.2) as pure functions over a resource held as a JSON object: parse
//! the request (op names in any case, with or without `path`), parse paths (`name.givenName`,
//! `emails[type eq "work"].value`, `members[value eq "…"]`, URN-qualified extension paths),
//! and apply the operations. Lenient where identity providers are known to differ (Entra's
//! capitalised ops, `"False"` strings, `Add` to an empty value path, member removal by a
//! value list), strict where guessing could lose data (a `remove` needs a target).

//!
//! One idea a file: [`parse`] turns a request into [`PatchOp`]s, [`apply`] applies them to a
//! resource (with [`filtered`] for `attr[filter]` targets), [`matching`] evaluates a value
//! filter on one element, and [`write_only`] keeps passwords out of a published request.

mod apply;
mod filtered;
mod matching;
mod parse;
mod write_only;

pub use apply::apply;
pub use matching::element_matches;
pub use parse::{parse_path, parse_request};
pub use write_only::strip_write_only;

use super::{ScimError, filter::Filter, schema::Schema};
use serde_json::Value;

/// Most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Where an operation points.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchPath {
    /// A whole extension object, e.g. `urn:…:enterprise:2.0:User`.
    Extension(&'static Schema),
    Attr(AttrTarget),
}

/// `[urn:]attr[.sub]` or `[urn:]attr[filter][.sub]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrTarget {
    /// The extension the attribute lives in; `None` for the core schema.
    pub extension: Option<&'static Schema>,
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::new(400, Some("noTarget"), detail)
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::new(400, Some("invalidPath"), detail)
}

#[cfg(test)]
mod tests;
