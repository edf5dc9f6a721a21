//! A TraceQL subset, as Grafana's Tempo data source and its query builder write it:
//!
//! ```text
//! { resource.service.name = "checkout" && span.http.status_code >= 500 }
//! { duration > 200ms && status = error } && { name =~ "SELECT.*" }
//! { kind = server } || { .error = true } | select(span.http.route)
//! ```
//!
//! - spanset filters `{ … }` (empty: every span) combined with `&&` (the trace has
//!   spans matching both) and `||`, parenthesised;
//! - inside a filter: comparisons `= != > >= < <= =~ !~` joined by `&&`, `||`, `!` and
//!   parentheses; attributes `span.x`, `resource.x` and unscoped `.x` (span, then
//!   resource), quoted names (`span."a b"`); intrinsics `name`, `duration`, `status`,
//!   `statusMessage`, `kind`, `rootName`, `rootServiceName`, `traceDuration`; values:
//!   strings, integers, floats, durations (`200ms`, `1.5s`), `true`/`false`, `nil`,
//!   status (`error`, `ok`, `unset`) and kind (`server`, `client`, …) names;
//! - one pipeline stage, `| select(attribute, …)`, adding attributes to the answer.
//!
//! Comparisons follow Tempo: a missing attribute matches only `= nil`, values of
//! different types never match, regular expressions are fully anchored.
//! [`Query::prefilter`] gives the conditions an index can check for a candidate span,
//! so a search reads only traces that may match; [`Query::matches`] decides exactly.

use std::collections::BTreeSet;

use triad_model::{KeyValue, Span, SpanKind, StatusCode, Value};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The spanset expression.
    pub spansets: SpansetExpr,
    /// Attributes `| select(…)` adds to the answer.
    pub select: Vec<Attribute>,
}

/// Spanset filters and how they combine.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ … }`; `None` for `{}`.
    Filter(Option<FieldExpr>),
    /// Both match (spans of both).
    And(Box<SpansetExpr>, Box<SpansetExpr>),
    /// Either matches.
    Or(Box<SpansetExpr>, Box<SpansetExpr>),
}

/// A condition on one span.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// Both hold.
    And(Box<FieldExpr>, Box<FieldExpr>),
    /// Either holds.
    Or(Box<FieldExpr>, Box<FieldExpr>),
    /// It does not hold.
    Not(Box<FieldExpr>),
    /// A comparison.
    Cmp(Operand, Op, Operand),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `.x`: the span's, else the resource's.
    Any,
}

/// An attribute reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Its scope.
    pub scope: Scope,
    /// Its name.
    pub name: String,
}

/// Built-in fields of spans and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// Span name.
    Name,
    /// Span duration.
    Duration,
    /// Span status.
    Status,
    /// Span status message.
    StatusMessage,
    /// Span kind.
    Kind,
    /// The root span's name.
    RootName,
    /// The root span's service.
    RootServiceName,
    /// The trace's duration.
    TraceDuration,
}

/// A value written in the query.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// `"text"`
    Str(String),
    /// `42`
    Int(i64),
    /// `0.5`
    Float(f64),
    /// `200ms`, in ns.
    Duration(i64),
    /// `true`, `false`
    Bool(bool),
    /// `error`, `ok`, `unset`
    Status(StatusCode),
    /// `server`, `client`, …
    Kind(SpanKind),
    /// `nil`
    Nil,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// An attribute.
    Attr(Attribute),
    /// An intrinsic.
    Intrinsic(Intrinsic),
    /// A value.
    Static(Static),
}

/// What an index can check of a candidate span (see [`Query::prefilter`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefilter {
    /// `service.name` of the span's resource.
    pub service: Option<String>,
    /// Span name.
    pub name: Option<String>,
    /// `key=value` terms of attributes (span or resource), `error=true`, `span.kind=…`.
    pub tags: Vec<(String, String)>,
    /// Shortest span duration, ns.
    pub min_duration_ns: Option<i64>,
    /// Longest span duration, ns.
    pub max_duration_ns: Option<i64>,
}

// ---------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    And,
    Or,
    Not,
    Pipe,
    Comma,
    Op(Op),
    Str(String),
    Num(String),
    /// A word: intrinsic, keyword, enum value, or an attribute (`span.x`, `.x`).
    Word(String),
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        let two = text.get(i..i + 2).unwrap_or("");
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '{' => (out.push(Tok::LBrace), i += 1).1,
            '}' => (out.push(Tok::RBrace), i += 1).1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '&' if two == "&&" => (out.push(Tok::And), i += 2).1,
            '|' if two == "||" => (out.push(Tok::Or), i += 2).1,
            '|' => (out.push(Tok::Pipe), i += 1).1,
            '!' if two == "!=" => (out.push(Tok::Op(Op::Ne)), i += 2).1,
            '!' if two == "!~" => (out.push(Tok::Op(Op::NotRe)), i += 2).1,
            '!' => (out.push(Tok::Not), i += 1).1,
            '=' if two == "=~" => (out.push(Tok::Op(Op::Re)), i += 2).1,
            '=' => (out.push(Tok::Op(Op::Eq)), i += 1).1,
            '>' if two == ">=" => (out.push(Tok::Op(Op::Ge)), i += 2).1,
            '>' => (out.push(Tok::Op(Op::Gt)), i += 1).1,
            '<' if two == "<=" => (out.push(Tok::Op(Op::Le)), i += 2).1,
            '<' => (out.push(Tok::Op(Op::Lt)), i += 1).1,
            '"' | '`' => {
                let (s, next) = string(text, i)?;
                out.push(Tok::Str(s));
                i = next;
            }
            '-' | '0'..='9' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                out.push(Tok::Num(text[start..i].to_string()));
            }
            c if c == '.' || c == '_' || c.is_ascii_alphabetic() => {
                let mut word = String::new();
                while i < b.len() {
                    let ch = b[i] as char;
                    if ch == '"' && word.ends_with('.') {
                        // span."name with spaces"
                        let (quoted, next) = string(text, i)?;
                        word.push_str(&quoted);
                        i = next;
                        break;
                    }
                    if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | ':' | '/') {
                        word.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(word));
            }
            other => return Err(format!("unexpected {other:?} at {i}")),
        }
    }
    Ok(out)
}

/// A quoted string at `i` (`"…"` with escapes, or `` `…` `` raw); its end.
fn string(text: &str, i: usize) -> Result<(String, usize), String> {
    let quote = text.as_bytes()[i] as char;
    let mut out = String::new();
    let mut chars = text[i + 1..].char_indices();
    while let Some((j, c)) = chars.next() {
        match c {
            '\\' if quote == '"' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e)) => out.push(e),
                None => break,
            },
            c if c == quote => return Ok((out, i + 1 + j + 1)),
            c => out.push(c),
        }
    }
    Err(format!("unterminated string at {i}"))
}

// ---------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            Some(t) => Err(format!("expected {what}, found {t:?}")),
            None => Err(format!("expected {what} at the end")),
        }
    }

    fn query(&mut self) -> Result<Query, String> {
        let spansets = self.spanset_or()?;
        let mut select = Vec::new();
        while self.peek() == Some(&Tok::Pipe) {
            self.next();
            match self.next() {
                Some(Tok::Word(w)) if w == "select" => {}
                Some(t) => return Err(format!("unsupported pipeline stage {t:?}: only select(…)")),
                None => return Err("expected a pipeline stage after |".into()),
            }
            self.expect(&Tok::LParen, "(")?;
            loop {
                match self.next() {
                    Some(Tok::Word(w)) => match operand_of_word(&w)? {
                        Operand::Attr(a) => select.push(a),
                        _ => return Err(format!("select takes attributes, not {w:?}")),
                    },
                    other => {
                        return Err(format!("expected an attribute in select, found {other:?}"));
                    }
                }
                match self.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::RParen) => break,
                    other => return Err(format!("expected , or ) in select, found {other:?}")),
                }
            }
        }
        if let Some(t) = self.peek() {
            return Err(format!("unexpected {t:?} after the query"));
        }
        Ok(Query { spansets, select })
    }

    fn spanset_or(&mut self) -> Result<SpansetExpr, String> {
        let mut left = self.spanset_and()?;
        while self.peek() == Some(&Tok::Or) {
            self.next();
            let right = self.spanset_and()?;
            left = SpansetExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn spanset_and(&mut self) -> Result<SpansetExpr, String> {
        let mut left = self.spanset_atom()?;
        while self.peek() == Some(&Tok::And) {
            self.next();
            let right = self.spanset_atom()?;
            left = SpansetExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn spanset_atom(&mut self) -> Result<SpansetExpr, String> {
        match self.next() {
            Some(Tok::LBrace) => {
                if self.peek() == Some(&Tok::RBrace) {
                    self.next();
                    return Ok(SpansetExpr::Filter(None));
                }
                let e = self.field_or()?;
                self.expect(&Tok::RBrace, "}")?;
                Ok(SpansetExpr::Filter(Some(e)))
            }
            Some(Tok::LParen) => {
                let e = self.spanset_or()?;
                self.expect(&Tok::RParen, ")")?;
                Ok(e)
            }
            Some(t) => Err(format!("expected {{ or (, found {t:?}")),
            None => Err("expected a spanset filter { … }".into()),
        }
    }

    fn field_or(&mut self) -> Result<FieldExpr, String> {
        let mut left = self.field_and()?;
        while self.peek() == Some(&Tok::Or) {
            self.next();
            let right = self.field_and()?;
            left = FieldExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn field_and(&mut self) -> Result<FieldExpr, String> {
        let mut left = self.field_unary()?;
        while self.peek() == Some(&Tok::And) {
            self.next();
            let right = self.field_unary()?;
            left = FieldExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn field_unary(&mut self) -> Result<FieldExpr, String> {
        match self.peek() {
            Some(Tok::Not) => {
                self.next();
                Ok(FieldExpr::Not(Box::new(self.field_unary()?)))
            }
            Some(Tok::LParen) => {
                self.next();
                let e = self.field_or()?;
                self.expect(&Tok::RParen, ")")?;
                Ok(e)
            }
            _ => {
                let left = self.operand()?;
                let op = match self.next() {
                    Some(Tok::Op(op)) => op,
                    other => {
                        return Err(format!(
                            "expected a comparison (=, !=, >, >=, <, <=, =~, !~), found {other:?}"
                        ));
                    }
                };
                let right = self.operand()?;
                if matches!(op, Op::Re | Op::NotRe) {
                    match &right {
                        Operand::Static(Static::Str(re)) => {
                            regex::Regex::new(&format!("^(?:{re})$"))
                                .map_err(|e| format!("invalid regular expression: {e}"))?;
                        }
                        _ => return Err("=~ and !~ take a string on the right".into()),
                    }
                }
                Ok(FieldExpr::Cmp(left, op, right))
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Operand::Static(Static::Str(s))),
            Some(Tok::Num(n)) => Ok(Operand::Static(number(&n)?)),
            Some(Tok::Word(w)) => operand_of_word(&w),
            other => Err(format!("expected a value or an attribute, found {other:?}")),
        }
    }
}

fn number(n: &str) -> Result<Static, String> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Static::Int(i));
    }
    if let Ok(f) = n.parse::<f64>() {
        return Ok(Static::Float(f));
    }
    crate::time::parse_go_duration_ns(n)
        .map(Static::Duration)
        .map_err(|_| format!("{n:?} is not a number or a duration"))
}

fn operand_of_word(w: &str) -> Result<Operand, String> {
    let attr = |scope, name: &str| {
        if name.is_empty() {
            Err(format!("{w:?} names no attribute"))
        } else {
            Ok(Operand::Attr(Attribute {
                scope,
                name: name.to_string(),
            }))
        }
    };
    if let Some(name) = w.strip_prefix("span.") {
        return attr(Scope::Span, name);
    }
    if let Some(name) = w.strip_prefix("resource.") {
        return attr(Scope::Resource, name);
    }
    if let Some(name) = w.strip_prefix('.') {
        return attr(Scope::Any, name);
    }
    let w = w.strip_prefix("span:").unwrap_or(w);
    let w = w.strip_prefix("trace:").unwrap_or(w);
    Ok(match w {
        "name" => Operand::Intrinsic(Intrinsic::Name),
        "duration" => Operand::Intrinsic(Intrinsic::Duration),
        "status" => Operand::Intrinsic(Intrinsic::Status),
        "statusMessage" => Operand::Intrinsic(Intrinsic::StatusMessage),
        "kind" => Operand::Intrinsic(Intrinsic::Kind),
        "rootName" => Operand::Intrinsic(Intrinsic::RootName),
        "rootServiceName" | "rootService" => Operand::Intrinsic(Intrinsic::RootServiceName),
        "traceDuration" => Operand::Intrinsic(Intrinsic::TraceDuration),
        "true" => Operand::Static(Static::Bool(true)),
        "false" => Operand::Static(Static::Bool(false)),
        "nil" => Operand::Static(Static::Nil),
        "error" => Operand::Static(Static::Status(StatusCode::Error)),
        "ok" => Operand::Static(Static::Status(StatusCode::Ok)),
        "unset" => Operand::Static(Static::Status(StatusCode::Unset)),
        "server" | "client" | "producer" | "consumer" | "internal" | "unspecified" => {
            Operand::Static(Static::Kind(
                SpanKind::parse(w).unwrap_or(SpanKind::Unspecified),
            ))
        }
        other => {
            return Err(format!(
                "unknown word {other:?}: attributes start with span., resource. or ."
            ));
        }
    })
}

/// Parses a TraceQL query of the supported subset.
pub fn parse(text: &str) -> Result<Query, String> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err("empty query".into());
    }
    Parser { toks, pos: 0 }.query()
}

// ---------------------------------------------------------------------------------
// Evaluation

/// A value as compared.
#[derive(Debug, Clone, PartialEq)]
enum V<'a> {
    Str(&'a str),
    Num(f64),
    Dur(i64),
    Bool(bool),
    Status(StatusCode),
    Kind(SpanKind),
    Nil,
}

/// What a trace knows beyond its spans.
struct TraceInfo<'a> {
    root_name: &'a str,
    root_service: &'a str,
    duration_ns: i64,
}

fn attr_value<'a>(kvs: &'a [KeyValue], name: &str) -> Option<V<'a>> {
    kvs.iter()
        .find(|kv| kv.key == name)
        .map(|kv| match &kv.value {
            Value::Str(s) => V::Str(s),
            Value::Int(i) => V::Num(*i as f64),
            Value::Double(d) => V::Num(*d),
            Value::Bool(b) => V::Bool(*b),
            _ => V::Nil,
        })
}

fn resource_value<'a>(s: &'a Span, name: &str) -> Option<V<'a>> {
    if name == "service.name" {
        return Some(V::Str(&s.service));
    }
    attr_value(&s.resource, name)
}

fn value<'a>(o: &'a Operand, s: &'a Span, t: &TraceInfo<'a>) -> V<'a> {
    match o {
        Operand::Static(st) => match st {
            Static::Str(x) => V::Str(x),
            Static::Int(i) => V::Num(*i as f64),
            Static::Float(f) => V::Num(*f),
            Static::Duration(d) => V::Dur(*d),
            Static::Bool(b) => V::Bool(*b),
            Static::Status(c) => V::Status(*c),
            Static::Kind(k) => V::Kind(*k),
            Static::Nil => V::Nil,
        },
        Operand::Intrinsic(i) => match i {
            Intrinsic::Name => V::Str(&s.name),
            Intrinsic::Duration => V::Dur(s.duration_ns()),
            Intrinsic::Status => V::Status(s.status_code),
            Intrinsic::StatusMessage => V::Str(&s.status_message),
            Intrinsic::Kind => V::Kind(s.kind),
            Intrinsic::RootName => V::Str(t.root_name),
            Intrinsic::RootServiceName => V::Str(t.root_service),
            Intrinsic::TraceDuration => V::Dur(t.duration_ns),
        },
        Operand::Attr(a) => match a.scope {
            Scope::Span => attr_value(&s.attributes, &a.name),
            Scope::Resource => resource_value(s, &a.name),
            Scope::Any => attr_value(&s.attributes, &a.name).or_else(|| resource_value(s, &a.name)),
        }
        .unwrap_or(V::Nil),
    }
}

fn compare(l: &V, op: Op, r: &V) -> bool {
    use std::cmp::Ordering;
    let ord = |o: Option<Ordering>| match (o, op) {
        (None, Op::Ne) => true,
        (None, _) => false,
        (Some(o), Op::Eq) => o == Ordering::Equal,
        (Some(o), Op::Ne) => o != Ordering::Equal,
        (Some(o), Op::Gt) => o == Ordering::Greater,
        (Some(o), Op::Ge) => o != Ordering::Less,
        (Some(o), Op::Lt) => o == Ordering::Less,
        (Some(o), Op::Le) => o != Ordering::Greater,
        (Some(_), Op::Re | Op::NotRe) => false,
    };
    match (l, r) {
        (V::Nil, V::Nil) => op == Op::Eq,
        // A missing attribute matches nothing but `= nil`; a present one `!= nil`.
        (V::Nil, _) => false,
        (_, V::Nil) => op == Op::Ne,
        (V::Str(a), V::Str(b)) => match op {
            Op::Re | Op::NotRe => {
                let m = regex::Regex::new(&format!("^(?:{b})$")).is_ok_and(|re| re.is_match(a));
                m == (op == Op::Re)
            }
            _ => ord(Some(a.cmp(b))),
        },
        (V::Num(a), V::Num(b)) => ord(a.partial_cmp(b)),
        (V::Dur(a), V::Dur(b)) => ord(Some(a.cmp(b))),
        (V::Bool(a), V::Bool(b)) => matches!(op, Op::Eq | Op::Ne) && ord(Some(a.cmp(b))),
        (V::Status(a), V::Status(b)) => {
            matches!(op, Op::Eq | Op::Ne) && ((a == b) == (op == Op::Eq))
        }
        (V::Kind(a), V::Kind(b)) => matches!(op, Op::Eq | Op::Ne) && ((a == b) == (op == Op::Eq)),
        _ => false,
    }
}

fn holds(e: &FieldExpr, s: &Span, t: &TraceInfo) -> bool {
    match e {
        FieldExpr::And(a, b) => holds(a, s, t) && holds(b, s, t),
        FieldExpr::Or(a, b) => holds(a, s, t) || holds(b, s, t),
        FieldExpr::Not(a) => !holds(a, s, t),
        FieldExpr::Cmp(l, op, r) => compare(&value(l, s, t), *op, &value(r, s, t)),
    }
}

fn spanset(e: &SpansetExpr, spans: &[Span], t: &TraceInfo) -> BTreeSet<usize> {
    match e {
        SpansetExpr::Filter(None) => (0..spans.len()).collect(),
        SpansetExpr::Filter(Some(f)) => (0..spans.len())
            .filter(|&i| holds(f, &spans[i], t))
            .collect(),
        SpansetExpr::And(a, b) => {
            let (x, y) = (spanset(a, spans, t), spanset(b, spans, t));
            if x.is_empty() || y.is_empty() {
                BTreeSet::new()
            } else {
                x.union(&y).copied().collect()
            }
        }
        SpansetExpr::Or(a, b) => spanset(a, spans, t)
            .union(&spanset(b, spans, t))
            .copied()
            .collect(),
    }
}

/// The root span of a trace: the one without a parent in it (the earliest if several).
pub fn root(spans: &[Span]) -> Option<&Span> {
    let ids: BTreeSet<_> = spans.iter().map(|s| s.span_id).collect();
    spans
        .iter()
        .filter(|s| s.parent_span_id.is_none_or(|p| !ids.contains(&p)))
        .min_by_key(|s| (s.parent_span_id.is_some(), s.start_ns))
}

impl Query {
    /// Indexes into `spans` (one trace's) of the spans the query matches; empty when the
    /// trace does not match.
    pub fn matches(&self, spans: &[Span]) -> Vec<usize> {
        let r = root(spans);
        let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        let t = TraceInfo {
            root_name: r.map_or("", |s| s.name.as_str()),
            root_service: r.map_or("", |s| s.service.as_str()),
            duration_ns: end - start,
        };
        spanset(&self.spansets, spans, &t).into_iter().collect()
    }

    /// Conditions one span of every matching trace satisfies, for an index to find
    /// candidates: those of the first filter that has any, when the whole query needs
    /// that filter (no `||` above it). Empty when the query pins nothing.
    pub fn prefilter(&self) -> Prefilter {
        fn required(e: &SpansetExpr) -> Vec<&FieldExpr> {
            match e {
                SpansetExpr::Filter(Some(f)) => vec![f],
                SpansetExpr::Filter(None) | SpansetExpr::Or(..) => Vec::new(),
                SpansetExpr::And(a, b) => {
                    let mut v = required(a);
                    v.extend(required(b));
                    v
                }
            }
        }
        required(&self.spansets)
            .into_iter()
            .map(prefilter_of)
            .find(|p| *p != Prefilter::default())
            .unwrap_or_default()
    }
}

fn prefilter_of(f: &FieldExpr) -> Prefilter {
    let mut p = Prefilter::default();
    let mut conj = Vec::new();
    fn flatten<'a>(e: &'a FieldExpr, out: &mut Vec<&'a FieldExpr>) {
        match e {
            FieldExpr::And(a, b) => {
                flatten(a, out);
                flatten(b, out);
            }
            other => out.push(other),
        }
    }
    flatten(f, &mut conj);
    for c in conj {
        let FieldExpr::Cmp(l, op, r) = c else {
            continue;
        };
        // Attribute or intrinsic on the left, value on the right (or the mirror).
        let (field, op, st) = match (l, r) {
            (Operand::Static(st), other) => (other, mirror(*op), st),
            (other, Operand::Static(st)) => (other, *op, st),
            _ => continue,
        };
        match (field, op, st) {
            (Operand::Intrinsic(Intrinsic::Name), Op::Eq, Static::Str(s)) => {
                p.name = Some(s.clone())
            }
            (Operand::Intrinsic(Intrinsic::Duration), Op::Gt | Op::Ge, Static::Duration(d)) => {
                p.min_duration_ns = Some(p.min_duration_ns.map_or(*d, |m| m.max(*d)))
            }
            (Operand::Intrinsic(Intrinsic::Duration), Op::Lt | Op::Le, Static::Duration(d)) => {
                p.max_duration_ns = Some(p.max_duration_ns.map_or(*d, |m| m.min(*d)))
            }
            (Operand::Intrinsic(Intrinsic::Status), Op::Eq, Static::Status(StatusCode::Error)) => {
                p.tags.push(("error".into(), "true".into()))
            }
            (Operand::Intrinsic(Intrinsic::Kind), Op::Eq, Static::Kind(k))
                if *k != SpanKind::Unspecified =>
            {
                p.tags.push(("span.kind".into(), k.as_str().into()))
            }
            (Operand::Attr(a), Op::Eq, Static::Str(name))
                if a.name == "service.name" && a.scope != Scope::Span =>
            {
                p.service = Some(name.clone())
            }
            (Operand::Attr(a), Op::Eq, st) => {
                let text = match st {
                    Static::Str(s) => s.clone(),
                    Static::Int(i) => i.to_string(),
                    Static::Bool(b) => b.to_string(),
                    _ => continue,
                };
                p.tags.push((a.name.clone(), text));
            }
            _ => {}
        }
    }
    p
}

fn mirror(op: Op) -> Op {
    match op {
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_model::{SpanId, TraceId};

    fn span(id: u8, parent: Option<u8>, service: &str, name: &str, dur_ms: i64) -> Span {
        Span {
            tenant: "default".into(),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            trace_state: String::new(),
            name: name.into(),
            kind: if parent.is_none() {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start_ns: 1_000_000_000 + id as i64,
            end_ns: 1_000_000_000 + id as i64 + dur_ms * 1_000_000,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            service: service.into(),
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            resource: vec![KeyValue {
                key: "deployment.environment".into(),
                value: Value::Str("prod".into()),
            }],
            scope_name: String::new(),
            scope_version: String::new(),
        }
    }

    fn trace() -> Vec<Span> {
        let mut root = span(1, None, "gateway", "GET /checkout", 300);
        root.attributes.push(KeyValue {
            key: "http.status_code".into(),
            value: Value::Int(502),
        });
        let mut db = span(2, Some(1), "checkout", "SELECT orders", 250);
        db.status_code = StatusCode::Error;
        db.attributes.push(KeyValue {
            key: "db.system".into(),
            value: Value::Str("postgresql".into()),
        });
        let cache = span(3, Some(1), "checkout", "GET cache", 2);
        vec![root, db, cache]
    }

    fn names(q: &str) -> Vec<String> {
        let t = trace();
        let q = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        q.matches(&t)
            .into_iter()
            .map(|i| t[i].name.clone())
            .collect()
    }

    #[test]
    fn filters_match_spans_as_tempo() {
        assert_eq!(names("{}").len(), 3);
        assert_eq!(
            names(r#"{ resource.service.name = "checkout" }"#),
            ["SELECT orders", "GET cache"]
        );
        assert_eq!(names("{ span.http.status_code >= 500 }"), ["GET /checkout"]);
        assert_eq!(
            names("{ .http.status_code = 502 && kind = server }"),
            ["GET /checkout"]
        );
        assert_eq!(
            names("{ duration > 200ms && status = error }"),
            ["SELECT orders"]
        );
        assert_eq!(
            names(r#"{ name =~ "GET.*" }"#),
            ["GET /checkout", "GET cache"]
        );
        assert_eq!(
            names(r#"{ name =~ "GET" }"#),
            Vec::<String>::new(),
            "anchored"
        );
        assert_eq!(names(r#"{ name !~ "GET.*" }"#), ["SELECT orders"]);
        assert_eq!(
            names(r#"{ span.db.system = nil }"#),
            ["GET /checkout", "GET cache"]
        );
        assert_eq!(names(r#"{ span.db.system != nil }"#), ["SELECT orders"]);
        assert_eq!(
            names(r#"{ span.db.system != "mysql" }"#),
            ["SELECT orders"],
            "missing never matches but = nil"
        );
        assert_eq!(
            names(r#"{ span.http.status_code = "502" }"#),
            Vec::<String>::new(),
            "types differ"
        );
        assert_eq!(
            names(r#"{ resource.deployment.environment = "prod" && !(kind = client) }"#),
            ["GET /checkout"]
        );
        assert_eq!(
            names(r#"{ rootServiceName = "gateway" && duration < 10ms }"#),
            ["GET cache"]
        );
        assert_eq!(
            names("{ traceDuration > 250ms && kind = server }"),
            ["GET /checkout"]
        );
        assert_eq!(
            names("{ status = error || duration < 5ms }"),
            ["SELECT orders", "GET cache"]
        );
    }

    #[test]
    fn spansets_combine() {
        assert_eq!(
            names(r#"{ status = error } && { resource.service.name = "gateway" }"#),
            ["GET /checkout", "SELECT orders"]
        );
        assert!(names(r#"{ status = error } && { name = "nothing" }"#).is_empty());
        assert_eq!(
            names(r#"({ name = "nothing" }) || { kind = client && duration > 100ms }"#),
            ["SELECT orders"]
        );
        let q =
            parse(r#"{ status = error } | select(span.db.system, resource.service.name)"#).unwrap();
        assert_eq!(q.select.len(), 2);
        assert_eq!(q.select[0].scope, Scope::Span);
    }

    #[test]
    fn prefilters_what_an_index_can_check() {
        let p = parse(r#"{ resource.service.name = "checkout" && span.http.status_code = 500 && duration > 200ms && duration <= 1s && status = error && name = "x" }"#)
            .unwrap()
            .prefilter();
        assert_eq!(p.service.as_deref(), Some("checkout"));
        assert_eq!(p.name.as_deref(), Some("x"));
        assert_eq!(p.min_duration_ns, Some(200_000_000));
        assert_eq!(p.max_duration_ns, Some(1_000_000_000));
        assert_eq!(
            p.tags,
            [
                ("http.status_code".into(), "500".into()),
                ("error".into(), "true".into())
            ]
        );
        assert_eq!(
            parse("{ a.b = 1 } || { .c = 2 }").map(|q| q.prefilter()),
            Err("unknown word \"a.b\": attributes start with span., resource. or .".into())
        );
        assert_eq!(
            parse("{ .b = 1 } || { .c = 2 }").unwrap().prefilter(),
            Prefilter::default()
        );
        assert_eq!(
            parse("{} && { kind = server }").unwrap().prefilter().tags,
            [("span.kind".to_string(), "server".to_string())]
        );
    }

    proptest::proptest! {
        /// Any text: an answer or an error, never a panic (the fuzz target
        /// `fuzz/fuzz_targets/traceql.rs` runs the same longer on nightly).
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "[{}()&|!=~<>\"a-z. 0-9_:-]{0,40}") {
            if let Ok(q) = parse(&text) {
                let _ = q.matches(&trace());
                let _ = q.prefilter();
            }
        }
    }

    /// Every query of the fixture (which the e2e tests also check with Grafana's own
    /// TraceQL grammar) parses.
    #[test]
    fn the_fixture_queries_parse() {
        let text = include_str!("../tests/fixtures/traceql.txt");
        for q in text.lines().filter(|l| !l.trim().is_empty()) {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        for (q, why) in [
            ("", "empty"),
            ("{ name = }", "expected a value"),
            ("{ name = \"x\" ", "expected }"),
            ("{ name \"x\" }", "expected a comparison"),
            ("{ name =~ \"(\" }", "invalid regular expression"),
            ("{ foo = 1 }", "unknown word"),
            ("{ .a = 1 } | count() > 2", "unsupported pipeline stage"),
            ("{ .a = \"x }", "unterminated"),
            ("{ .a = 1 } }", "unexpected"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains(why), "{q:?}: {e}");
        }
    }
}
