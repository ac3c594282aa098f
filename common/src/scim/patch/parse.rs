//! Parsing a PATCH request and its paths into [`PatchOp`]s.

use super::{AttrTarget, MAX_OPERATIONS, OpKind, PatchOp, PatchPath, invalid_path, no_target};
use crate::scim::{
    ScimError, filter,
    schema::{self, Schema},
};
use serde_json::Value;

/// Parses a PATCH request body (`{"schemas":[PatchOp],"Operations":[…]}`).
pub fn parse_request(body: &Value, core: &'static Schema) -> Result<Vec<PatchOp>, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs \"Operations\""))?;
    let Value::Array(ops) = ops else {
        return Err(ScimError::invalid_syntax("\"Operations\" must be an array"));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("\"Operations\" is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "at most {MAX_OPERATIONS} operations per request"
        )));
    }
    ops.iter().map(|op| parse_op(op, core)).collect()
}

fn parse_op(op: &Value, core: &'static Schema) -> Result<PatchOp, ScimError> {
    let Value::Object(o) = op else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let field = |name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let kind = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => OpKind::Add,
        Some("replace") => OpKind::Replace,
        Some("remove") => OpKind::Remove,
        Some(other) => return Err(ScimError::invalid_syntax(format!("unknown op {other:?}"))),
        None => return Err(ScimError::invalid_syntax("each operation needs an \"op\"")),
    };
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(parse_path(p.trim(), core)?),
        Some(_) => return Err(invalid_path("\"path\" must be a string")),
    };
    let value = field("value").cloned();
    match (kind, &path, &value) {
        (OpKind::Remove, None, _) => Err(no_target("remove needs a path")),
        (OpKind::Add | OpKind::Replace, None, Some(Value::Object(_))) => Ok(()),
        (OpKind::Add | OpKind::Replace, None, _) => Err(ScimError::invalid_value(
            "an operation without a path needs an object value",
        )),
        (OpKind::Add, Some(_), None) => Err(ScimError::invalid_value("add needs a value")),
        _ => Ok(()),
    }?;
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

/// Parses a PATCH path against `core` and the User extensions.
pub fn parse_path(text: &str, core: &'static Schema) -> Result<PatchPath, ScimError> {
    if text.len() > filter::MAX_FILTER_LEN {
        return Err(invalid_path("path too long"));
    }
    if let Some(ext) = schema::user_extension(text) {
        return Ok(PatchPath::Extension(ext));
    }
    // Split `head[filter]tail`.
    let (head, filter, tail) = match text.find('[') {
        Some(open) => {
            let close = text
                .rfind(']')
                .filter(|c| *c > open)
                .ok_or_else(|| invalid_path("unclosed '['"))?;
            let inner =
                filter::parse(&text[open + 1..close]).map_err(|e| invalid_path(e.detail))?;
            (&text[..open], Some(inner), &text[close + 1..])
        }
        None => (text, None, ""),
    };
    let (extension, rest) = split_urn(head, core)?;
    let (attr, mut sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s.to_owned())),
        None => (rest, None),
    };
    if !tail.is_empty() {
        let s = tail
            .strip_prefix('.')
            .ok_or_else(|| invalid_path(format!("unexpected {tail:?}")))?;
        if filter.is_none() || sub.is_some() {
            return Err(invalid_path(format!("unexpected {tail:?}")));
        }
        sub = Some(s.to_owned());
    }
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !valid(attr) || sub.as_deref().is_some_and(|s| !valid(s)) {
        return Err(invalid_path(format!("{text:?} is not a valid path")));
    }
    Ok(PatchPath::Attr(AttrTarget {
        extension,
        attr: attr.to_owned(),
        filter,
        sub,
    }))
}

/// Splits a URN prefix off an attribute path: the core schema's URN is dropped, a known
/// extension's is returned; an unknown URN is an error.
fn split_urn<'a>(
    head: &'a str,
    core: &'static Schema,
) -> Result<(Option<&'static Schema>, &'a str), ScimError> {
    if !head.to_ascii_lowercase().starts_with("urn:") {
        return Ok((None, head));
    }
    let i = head.rfind(':').ok_or_else(|| invalid_path("bad URN"))?;
    let (urn, rest) = (&head[..i], &head[i + 1..]);
    if urn.eq_ignore_ascii_case(core.id) {
        return Ok((None, rest));
    }
    match schema::user_extension(urn) {
        Some(ext) if core.id == schema::USER.id => Ok((Some(ext), rest)),
        _ => Err(invalid_path(format!("unknown schema {urn:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER;
    use serde_json::json;

    #[test]
    fn malformed_requests_are_refused() {
        for (body, scim_type) in [
            (json!({}), "invalidSyntax"),
            (json!({"Operations": []}), "invalidSyntax"),
            (
                json!({"Operations": [{"op": "explode", "path": "a"}]}),
                "invalidSyntax",
            ),
            (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
            (
                json!({"Operations": [{"op": "add", "value": 3}]}),
                "invalidValue",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "emails[type eq", "value": 3}]}),
                "invalidPath",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "urn:x:y:z:attr", "value": 3}]}),
                "invalidPath",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "a b", "value": 3}]}),
                "invalidPath",
            ),
        ] {
            let err = parse_request(&body, &USER).expect_err(&body.to_string());
            assert_eq!(err.scim_type.as_deref(), Some(scim_type), "{body}");
        }
    }

    #[test]
    fn paths_parse_into_targets() {
        let p = parse_path(
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
            &USER,
        )
        .expect("ok");
        assert_eq!(
            p,
            PatchPath::Attr(AttrTarget {
                extension: None,
                attr: "name".into(),
                filter: None,
                sub: Some("givenName".into())
            })
        );
        match parse_path("emails[type eq \"work\"].value", &USER).expect("ok") {
            PatchPath::Attr(t) => {
                assert_eq!(t.attr, "emails");
                assert_eq!(t.sub.as_deref(), Some("value"));
                assert!(t.filter.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_path(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                &USER
            ),
            Ok(PatchPath::Extension(_))
        ));
    }

    mod properties {
        use super::super::*;
        use crate::scim::schema::USER;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_path_parses_or_is_refused_without_panicking(text in ".{0,200}") {
                if let Err(e) = parse_path(&text, &USER) {
                    prop_assert!(e.status == 400);
                }
            }

            #[test]
            fn simple_paths_round_trip(attr in "[a-zA-Z][a-zA-Z0-9]{0,10}", sub in prop::option::of("[a-zA-Z][a-zA-Z0-9]{0,10}")) {
                let text = match &sub { Some(s) => format!("{attr}.{s}"), None => attr.clone() };
                match parse_path(&text, &USER).expect("valid") {
                    PatchPath::Attr(t) => {
                        prop_assert_eq!(t.attr, attr);
                        prop_assert_eq!(t.sub, sub);
                        prop_assert!(t.filter.is_none() && t.extension.is_none());
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }

        }
    }
}
