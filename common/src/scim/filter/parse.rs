//! Reading a filter: the tokenizer and a recursive-descent parser with bounded depth.

use super::{AttrPath, CompValue, CompareOp, Filter, MAX_FILTER_DEPTH, MAX_FILTER_LEN};
use crate::scim::ScimError;
use serde_json::Number;

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
