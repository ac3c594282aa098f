//! The SCIM filter grammar (RFC 7644 §3.4.2.2) parsed into an AST: comparisons, `pr`,
//! `and`/`or`/`not`, parentheses and value paths, with case-insensitive keywords and
//! attribute names. Translating the AST to SQL is `db::query`'s job; anything it cannot
//! translate is `400 invalidFilter`, never an empty list.

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

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Str(String),
    Word(String),
}

fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let mut out = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '[' => {
                out.push(Token::OpenBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::CloseBracket);
                i += 1;
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(ScimError::invalid_filter("unterminated string"));
                }
                i += 1;
                let raw: String = chars[start..i].iter().collect();
                let s: String = serde_json::from_str(&raw)
                    .map_err(|_| ScimError::invalid_filter(format!("bad string {raw}")))?;
                out.push(Token::Str(s));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '[' | ']' | '"')
                {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

/// Parses a filter expression.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "filter longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(ScimError::invalid_filter("empty filter"));
    }
    let mut p = Parser { tokens, pos: 0 };
    let f = p.or(0)?;
    if p.pos != p.tokens.len() {
        return Err(ScimError::invalid_filter(format!(
            "unexpected {:?} in filter",
            p.tokens[p.pos]
        )));
    }
    Ok(f)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, kw: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: Token, what: &str) -> Result<(), ScimError> {
        match self.next() {
            Some(got) if got == t => Ok(()),
            _ => Err(ScimError::invalid_filter(format!("expected {what}"))),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut left = self.and(depth)?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut left = self.unary(depth)?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, ScimError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(ScimError::invalid_filter("filter nested too deeply"));
        }
        if self.peek_word("not") && matches!(self.tokens.get(self.pos + 1), Some(Token::Open)) {
            self.pos += 2;
            let inner = self.or(depth + 1)?;
            self.expect(Token::Close, "')'")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or(depth + 1)?;
                self.expect(Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::Word(w)) => self.attr_expr(&w, depth),
            other => Err(ScimError::invalid_filter(format!(
                "expected an attribute, got {other:?}"
            ))),
        }
    }

    fn attr_expr(&mut self, word: &str, depth: usize) -> Result<Filter, ScimError> {
        let path = AttrPath::parse(word)?;
        if matches!(self.tokens.get(self.pos), Some(Token::OpenBracket)) {
            self.pos += 1;
            let inner = self.or(depth + 1)?;
            self.expect(Token::CloseBracket, "']'")?;
            let mut filter = inner;
            // `emails[type eq "work"].value eq "x"` (Entra's shape): the sub-attribute
            // condition joins the bracketed one on the same element.
            if let Some(Token::Word(w)) = self.tokens.get(self.pos).cloned()
                && let Some(sub) = w.strip_prefix('.')
            {
                self.pos += 1;
                let sub_path = AttrPath::parse(sub)?;
                let cond = self.comparison(sub_path)?;
                filter = Filter::And(Box::new(filter), Box::new(cond));
            }
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(filter),
            });
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let op_word = match self.next() {
            Some(Token::Word(w)) => w,
            _ => return Err(ScimError::invalid_filter("expected an operator")),
        };
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&op_word)
            .ok_or_else(|| ScimError::invalid_filter(format!("unknown operator {op_word:?}")))?;
        let value = match self.next() {
            Some(Token::Str(s)) => CompValue::Str(s),
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => CompValue::Bool(true),
                "false" => CompValue::Bool(false),
                "null" => CompValue::Null,
                _ => CompValue::Num(
                    parse_number(&w)
                        .ok_or_else(|| ScimError::invalid_filter(format!("bad value {w:?}")))?,
                ),
            },
            _ => return Err(ScimError::invalid_filter("expected a value")),
        };
        Ok(Filter::Compare { path, op, value })
    }
}

/// A JSON number, fractions rounded correctly: `serde_json` without its `float_roundtrip`
/// feature may read one unit off in the last place, and a rendered filter would then not
/// read back as the same number.
fn parse_number(word: &str) -> Option<Number> {
    let n = word.parse::<Number>().ok()?;
    if n.is_f64() {
        return Number::from_f64(word.parse::<f64>().ok()?);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(name: &str, op: CompareOp, v: &str) -> Filter {
        Filter::Compare {
            path: AttrPath::parse(name).expect("path"),
            op,
            value: CompValue::Str(v.into()),
        }
    }

    #[test]
    fn okta_username_lookup() {
        assert_eq!(
            parse(r#"userName eq "jane@example.com""#).expect("parses"),
            cmp("username", CompareOp::Eq, "jane@example.com")
        );
        assert_eq!(
            parse(r#"USERNAME EQ "a\"b""#).expect("parses"),
            cmp("username", CompareOp::Eq, "a\"b")
        );
    }

    #[test]
    fn precedence_and_grouping() {
        let f = parse(r#"a eq "1" or b eq "2" and not (c pr)"#).expect("parses");
        let expected = Filter::Or(
            Box::new(cmp("a", CompareOp::Eq, "1")),
            Box::new(Filter::And(
                Box::new(cmp("b", CompareOp::Eq, "2")),
                Box::new(Filter::Not(Box::new(Filter::Present(
                    AttrPath::parse("c").expect("path"),
                )))),
            )),
        );
        assert_eq!(f, expected);
    }

    #[test]
    fn value_paths_and_urns() {
        let f = parse(r#"emails[type eq "work"].value eq "x@y""#).expect("parses");
        match f {
            Filter::ValuePath { path, .. } => assert_eq!(path.name, "emails"),
            other => panic!("{other:?}"),
        }
        let f = parse(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#,
        )
        .expect("parses");
        match f {
            Filter::Compare { path, .. } => {
                assert_eq!(
                    path.uri.as_deref(),
                    Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user")
                );
                assert_eq!(path.name, "employeenumber");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "a"#,
            r#"(userName eq "a""#,
            r#"userName eq "a" junk"#,
            "1abc eq 2",
            &"(".repeat(40),
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.scim_type.as_deref(), Some("invalidFilter"), "{bad}");
        }
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
    }

    #[test]
    fn numbers_read_back_exactly() {
        // Found by the `filter` fuzz target: read one unit off in the last place, this
        // rendered as 18.446748147409526, which read back as a different number.
        for text in [
            "x le 18.446748147409525809",
            "x gt 1e-7",
            "x eq 18446744073709551616",
        ] {
            let f = parse(text).expect("parses");
            assert_eq!(parse(&f.to_string()).expect("parses again"), f, "{text}");
        }
        let Filter::Compare {
            value: CompValue::Num(n),
            ..
        } = parse("x le 18.446748147409525809").expect("parses")
        else {
            panic!("a comparison")
        };
        assert_eq!(n.as_f64(), "18.446748147409525809".parse::<f64>().ok());
        assert!(parse("x eq 1e400").is_err());
        assert!(parse("x eq +1").is_err());
    }

    #[test]
    fn long_chains_render_flat_and_parse_back() {
        // Rendered with a pair of parentheses per `and`, this came back "nested too deeply".
        let text = vec!["a pr"; 40].join(" and ");
        let f = parse(&text).expect("parses");
        assert_eq!(f.to_string(), text);
        let grouped = r#"(a pr or b pr) and not (c pr) and (d pr and (e pr or f pr))"#;
        let f = parse(grouped).expect("parses");
        assert_eq!(f.to_string(), grouped);
        assert_eq!(parse(&f.to_string()).expect("parses again"), f);
    }

    #[test]
    fn entra_value_paths_render_without_extra_nesting() {
        let text = r#"emails[type eq "work" or type eq "home"].value eq "x@y""#;
        let f = parse(text).expect("parses");
        assert_eq!(f.to_string(), text);
        let text = r#"emails[type eq "work"].value eq "x@y""#;
        let f = parse(text).expect("parses");
        assert_eq!(
            f.to_string(),
            r#"emails[type eq "work" and value eq "x@y"]"#
        );
        assert_eq!(parse(&f.to_string()).expect("parses again"), f);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn attr_path() -> impl Strategy<Value = AttrPath> {
            let name = "[a-z][a-z0-9_]{0,8}";
            (
                prop::option::of(prop::sample::select(vec![
                    "urn:ietf:params:scim:schemas:core:2.0:user".to_owned(),
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user".to_owned(),
                ])),
                name,
                prop::option::of(name),
            )
                .prop_map(|(uri, name, sub)| AttrPath { uri, name, sub })
        }

        fn comp_value() -> impl Strategy<Value = CompValue> {
            prop_oneof![
                any::<String>().prop_map(CompValue::Str),
                any::<i64>().prop_map(|n| CompValue::Num(n.into())),
                any::<bool>().prop_map(CompValue::Bool),
                Just(CompValue::Null),
            ]
        }

        fn op() -> impl Strategy<Value = CompareOp> {
            prop::sample::select(vec![
                CompareOp::Eq,
                CompareOp::Ne,
                CompareOp::Co,
                CompareOp::Sw,
                CompareOp::Ew,
                CompareOp::Gt,
                CompareOp::Ge,
                CompareOp::Lt,
                CompareOp::Le,
            ])
        }

        fn filter() -> impl Strategy<Value = Filter> {
            let leaf =
                prop_oneof![
                    (attr_path(), op(), comp_value())
                        .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
                    attr_path().prop_map(Filter::Present),
                ];
            leaf.prop_recursive(4, 24, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                    inner.clone().prop_map(|a| Filter::Not(Box::new(a))),
                    (attr_path(), inner).prop_map(|(path, f)| Filter::ValuePath {
                        path: AttrPath { sub: None, ..path },
                        filter: Box::new(f)
                    }),
                ]
            })
        }

        proptest! {
            #[test]
            fn rendering_and_parsing_round_trip(f in filter()) {
                let text = f.to_string();
                prop_assert_eq!(parse(&text).expect("a rendered filter parses"), f, "{}", text);
            }

            #[test]
            fn keywords_are_case_insensitive(f in filter()) {
                let upper = f.to_string().replace(" and ", " AND ").replace(" or ", " Or ").replace(" eq ", " EQ ");
                prop_assert_eq!(parse(&upper).is_ok(), true);
            }

            #[test]
            fn any_text_parses_or_is_refused_without_panicking(text in ".{0,300}") {
                if let Err(e) = parse(&text) {
                    prop_assert_eq!(e.scim_type.as_deref(), Some("invalidFilter"));
                }
            }

            #[test]
            fn filter_shaped_noise_never_panics(
                tokens in prop::collection::vec(
                    prop::sample::select(vec!["(", ")", "[", "]", "and", "or", "not", "eq", "pr", "\"x\"", "a", "b.c", "1", "true", " "]),
                    0..60,
                )
            ) {
                let text = tokens.join(" ");
                let _ = parse(&text);
            }

            #[test]
            fn translation_to_sql_never_panics(f in filter()) {
                if let Err(e) = crate::db::query::users_where(&f, 1) {
                    prop_assert_eq!(e.scim_type.as_deref(), Some("invalidFilter"));
                }
                let _ = crate::db::query::groups_where(&f, 0);
            }
        }
    }
}
