//! LogQL's parser: log queries in full; in metric queries the range aggregations, with
//! the rest handed to PromQL's parser (LogQL's vector aggregations, binary operations
//! and functions are PromQL's).

use regex::Regex;
use triad_model::metric::{MatchOp, Matcher};

use super::ast::*;
use super::lex::{Tok, Token, lex};
use super::template;

/// Parses a LogQL query.
pub fn parse(text: &str) -> Result<Query, String> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err("empty query".into());
    }
    // Where the range aggregations are, and the PromQL text around them.
    let mut promql = String::new();
    let mut ranges = Vec::new();
    let mut copied_to = 0;
    let mut i = 0;
    let mut selector_outside = false;
    while i < tokens.len() {
        match &tokens[i].kind {
            Tok::Ident(name)
                if RangeFn::of(name).is_some()
                    && tokens.get(i + 1).map(|t| &t.kind) == Some(&Tok::Op("(")) =>
            {
                let mut p = Parser {
                    text,
                    tokens: &tokens,
                    pos: i,
                };
                let agg = p.range_agg()?;
                promql.push_str(&text[copied_to..tokens[i].start]);
                promql.push_str(&format!("__logql_{}", ranges.len()));
                ranges.push(agg);
                copied_to = tokens[p.pos - 1].end;
                i = p.pos;
            }
            Tok::Op("{") => {
                selector_outside = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if ranges.is_empty() {
        let first = tokens.iter().find(|t| t.kind != Tok::Op("("));
        if first.map(|t| &t.kind) == Some(&Tok::Op("{")) {
            let mut p = Parser {
                text,
                tokens: &tokens,
                pos: 0,
            };
            let mut parens = 0;
            while p.eat_op("(") {
                parens += 1;
            }
            let log = p.log_expr()?;
            for _ in 0..parens {
                p.expect_op(")")?;
            }
            p.end()?;
            return Ok(Query::Log(log));
        }
    } else if selector_outside {
        return Err(
            "a stream selector is only valid in a log query or inside a range aggregation such as count_over_time({…}[5m])".into(),
        );
    }
    promql.push_str(&text[copied_to..]);
    Ok(Query::Metric(MetricQuery { promql, ranges }))
}

struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, n: usize) -> Option<&'a Tok> {
        self.tokens.get(self.pos + n).map(|t| &t.kind)
    }

    fn here(&self) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!("at position {} ({:?})", t.start, &self.text[t.start..t.end]),
            None => "at the end of the query".into(),
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("syntax error {}: {what}", self.here()))
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.err(&format!("expected {op:?}"))
        }
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                Ok(w.clone())
            }
            _ => self.err("expected a label name"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => self.err("expected a quoted string"),
        }
    }

    fn end(&self) -> Result<(), String> {
        if self.pos < self.tokens.len() {
            self.err("unexpected text after the query")
        } else {
            Ok(())
        }
    }

    /// `{a="b", …}` and its stages.
    fn log_expr(&mut self) -> Result<LogExpr, String> {
        let matchers = self.selector()?;
        let stages = self.stages()?;
        Ok(LogExpr { matchers, stages })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, String> {
        self.expect_op("{")?;
        let mut matchers = Vec::new();
        if !self.eat_op("}") {
            loop {
                let name = self.ident()?;
                let op = match self.peek() {
                    Some(Tok::Op("=")) => MatchOp::Equal,
                    Some(Tok::Op("!=")) => MatchOp::NotEqual,
                    Some(Tok::Op("=~")) => MatchOp::Regex,
                    Some(Tok::Op("!~")) => MatchOp::NotRegex,
                    _ => return self.err("expected =, !=, =~ or !~"),
                };
                self.pos += 1;
                let value = self.string()?;
                matchers.push(Matcher::new(op, name, value).map_err(|e| e.to_string())?);
                if self.eat_op("}") {
                    break;
                }
                self.expect_op(",")?;
            }
        }
        if !matchers.iter().any(|m| !m.matches_empty()) {
            return Err("queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".into());
        }
        Ok(matchers)
    }

    fn stages(&mut self) -> Result<Vec<Stage>, String> {
        let mut stages = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Tok::Op("|=")) => LineOp::Contains,
                Some(Tok::Op("!=")) => LineOp::NotContains,
                Some(Tok::Op("|~")) => LineOp::Regex,
                Some(Tok::Op("!~")) => LineOp::NotRegex,
                Some(Tok::Op("|>")) => LineOp::Pattern,
                Some(Tok::Op("!>")) => LineOp::NotPattern,
                Some(Tok::Op("|")) => {
                    self.pos += 1;
                    stages.push(self.stage()?);
                    continue;
                }
                _ => return Ok(stages),
            };
            self.pos += 1;
            stages.push(self.line_filter(op)?);
        }
    }

    fn line_filter(&mut self, op: LineOp) -> Result<Stage, String> {
        let mut texts = vec![self.string()?];
        while self.eat_ident("or") {
            texts.push(self.string()?);
        }
        let needles = texts
            .iter()
            .map(|t| {
                Ok(match op {
                    LineOp::Contains | LineOp::NotContains => LineNeedle::Text(t.clone()),
                    LineOp::Regex | LineOp::NotRegex => LineNeedle::Regex(
                        Regex::new(t)
                            .map_err(|e| format!("invalid regular expression {t:?}: {e}"))?,
                    ),
                    LineOp::Pattern | LineOp::NotPattern => LineNeedle::Pattern(pattern(t)?),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Stage::Line { op, needles, texts })
    }

    fn stage(&mut self) -> Result<Stage, String> {
        let word = match self.peek() {
            Some(Tok::Ident(w)) => w.as_str(),
            Some(Tok::Op("(")) => return Ok(Stage::Filter(self.filter_or()?)),
            _ => return self.err("expected a parser, a label filter or a format stage after |"),
        };
        // A label filter starts with a name and a comparison; the keywords below do not.
        if matches!(
            self.peek_at(1),
            Some(Tok::Op(
                "=" | "!=" | "=~" | "!~" | "==" | ">" | ">=" | "<" | "<="
            ))
        ) {
            return Ok(Stage::Filter(self.filter_or()?));
        }
        self.pos += 1;
        Ok(match word {
            "json" => Stage::Json(
                self.params()?
                    .into_iter()
                    .map(|(label, path)| Ok((label, json_path(&path)?)))
                    .collect::<Result<_, String>>()?,
            ),
            "logfmt" => {
                let (mut strict, mut keep_empty) = (false, false);
                while self.eat_op("-") {
                    self.expect_op("-")?;
                    match self.ident()?.as_str() {
                        "strict" => strict = true,
                        "keep_empty" => keep_empty = true,
                        "keep" if self.eat_op("-") && self.eat_ident("empty") => keep_empty = true,
                        other => return Err(format!("unknown logfmt flag --{other}")),
                    }
                }
                Stage::Logfmt {
                    params: self.params()?,
                    strict,
                    keep_empty,
                }
            }
            "regexp" => {
                let re = self.string()?;
                let re = Regex::new(&re)
                    .map_err(|e| format!("invalid regular expression {re:?}: {e}"))?;
                if re.capture_names().flatten().next().is_none() {
                    return Err(
                        "the regexp parser needs at least one named group, as (?P<name>…)".into(),
                    );
                }
                Stage::Regexp(re)
            }
            "pattern" => Stage::PatternParser(pattern(&self.string()?)?),
            "unpack" => Stage::Unpack,
            "decolorize" => Stage::Decolorize,
            "line_format" => Stage::LineFormat(template::compile(&self.string()?)?),
            "label_format" => {
                let mut out = Vec::new();
                loop {
                    let name = self.ident()?;
                    self.expect_op("=")?;
                    let fmt = match self.peek() {
                        Some(Tok::Ident(src)) => {
                            self.pos += 1;
                            LabelFmt::Rename(src.clone())
                        }
                        Some(Tok::Str(t)) => {
                            self.pos += 1;
                            LabelFmt::Template(template::compile(t)?)
                        }
                        _ => return self.err("expected a label name or a template"),
                    };
                    out.push((name, fmt));
                    if !self.eat_op(",") {
                        break;
                    }
                }
                Stage::LabelFormat(out)
            }
            "drop" | "keep" => {
                let mut out = Vec::new();
                loop {
                    let name = self.ident()?;
                    let op = match self.peek() {
                        Some(Tok::Op("=")) => Some(MatchOp::Equal),
                        Some(Tok::Op("!=")) => Some(MatchOp::NotEqual),
                        Some(Tok::Op("=~")) => Some(MatchOp::Regex),
                        Some(Tok::Op("!~")) => Some(MatchOp::NotRegex),
                        _ => None,
                    };
                    out.push(match op {
                        Some(op) => {
                            self.pos += 1;
                            let v = self.string()?;
                            NameOrMatcher::Matcher(
                                Matcher::new(op, name, v).map_err(|e| e.to_string())?,
                            )
                        }
                        None => NameOrMatcher::Name(name),
                    });
                    if !self.eat_op(",") {
                        break;
                    }
                }
                if word == "drop" {
                    Stage::Drop(out)
                } else {
                    Stage::Keep(out)
                }
            }
            "unwrap" => {
                let first = self.ident()?;
                if self.eat_op("(") {
                    let conv = match first.as_str() {
                        "bytes" => Conversion::Bytes,
                        "duration" | "duration_seconds" => Conversion::Duration,
                        other => {
                            return Err(format!(
                                "unknown unwrap conversion {other}: use bytes, duration or duration_seconds"
                            ));
                        }
                    };
                    let label = self.ident()?;
                    self.expect_op(")")?;
                    Stage::Unwrap { label, conv }
                } else {
                    Stage::Unwrap {
                        label: first,
                        conv: Conversion::Float,
                    }
                }
            }
            _ => {
                self.pos -= 1;
                return self.err("expected json, logfmt, regexp, pattern, unpack, decolorize, line_format, label_format, drop, keep, unwrap or a label filter");
            }
        })
    }

    /// `a, b="path", …` after `json` or `logfmt` (label, key or path).
    fn params(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        while let Some(Tok::Ident(name)) = self.peek() {
            self.pos += 1;
            if self.eat_op("=") {
                out.push((name.clone(), self.string()?));
            } else {
                out.push((name.clone(), name.clone()));
            }
            if !self.eat_op(",") {
                break;
            }
        }
        Ok(out)
    }

    fn filter_or(&mut self) -> Result<LabelFilter, String> {
        let mut left = self.filter_and()?;
        while self.eat_ident("or") {
            let right = self.filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn filter_and(&mut self) -> Result<LabelFilter, String> {
        let mut left = self.filter_primary()?;
        while self.eat_ident("and") || self.eat_op(",") {
            let right = self.filter_primary()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn filter_primary(&mut self) -> Result<LabelFilter, String> {
        if self.eat_op("(") {
            let f = self.filter_or()?;
            self.expect_op(")")?;
            return Ok(f);
        }
        let name = self.ident()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => return self.err("expected a comparison"),
        };
        self.pos += 1;
        match self.peek() {
            Some(Tok::Str(v)) => {
                self.pos += 1;
                let op = match op {
                    "=" | "==" => MatchOp::Equal,
                    "!=" => MatchOp::NotEqual,
                    "=~" => MatchOp::Regex,
                    "!~" => MatchOp::NotRegex,
                    _ => {
                        return Err(format!(
                            "{op} compares numbers, durations or sizes; a quoted value takes =, !=, =~ or !~"
                        ));
                    }
                };
                Ok(LabelFilter::Str(
                    Matcher::new(op, name, v.clone()).map_err(|e| e.to_string())?,
                ))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                let op = match op {
                    "=" | "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    ">" => CmpOp::Gt,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    _ => return Err(format!("{op} does not compare numbers")),
                };
                let (value, conv) = number_value(n)?;
                Ok(LabelFilter::Num {
                    name,
                    op,
                    value,
                    conv,
                })
            }
            _ => self.err("expected a quoted string, a number, a duration or a size"),
        }
    }

    /// `fn([φ,] {…} … [range] [offset d]) [by|without (…)]`.
    fn range_agg(&mut self) -> Result<RangeAgg, String> {
        let name = self.ident()?;
        let func = RangeFn::of(&name).ok_or_else(|| format!("unknown function {name}"))?;
        self.expect_op("(")?;
        let param = if func == RangeFn::Quantile {
            let p = match self.peek() {
                Some(Tok::Num(n)) => n
                    .parse::<f64>()
                    .map_err(|_| format!("invalid quantile {n}"))?,
                _ => return self.err("quantile_over_time takes a quantile first"),
            };
            self.pos += 1;
            self.expect_op(",")?;
            Some(p)
        } else {
            None
        };
        let mut log = if self.eat_op("(") {
            let l = self.log_expr()?;
            self.expect_op(")")?;
            l
        } else {
            self.log_expr()?
        };
        self.expect_op("[")?;
        let range_ns = self.duration()?;
        self.expect_op("]")?;
        // Loki also takes the pipeline after the range: `{…}[5m] | json`.
        log.stages.extend(self.stages()?);
        let offset_ns = if self.eat_ident("offset") {
            self.duration()?
        } else {
            0
        };
        self.expect_op(")")?;
        let grouping = self.grouping()?;
        let unwraps = log
            .stages
            .iter()
            .filter(|s| matches!(s, Stage::Unwrap { .. }))
            .count();
        if func.needs_unwrap() && unwraps == 0 {
            return Err(format!(
                "{name} needs an unwrapped label: {name}({{…}} | unwrap latency [5m])"
            ));
        }
        if !func.needs_unwrap() && unwraps > 0 && func != RangeFn::Rate {
            return Err(format!("{name} counts lines and takes no unwrap"));
        }
        if unwraps > 1 {
            return Err("only one unwrap per range aggregation".into());
        }
        if grouping.is_some() && !func.needs_unwrap() && unwraps == 0 {
            return Err(format!(
                "grouping not allowed for {name} aggregation: wrap it in sum by (…) instead"
            ));
        }
        Ok(RangeAgg {
            func,
            param,
            log,
            range_ns,
            offset_ns,
            grouping,
        })
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, String> {
        let by = if self.eat_ident("by") {
            true
        } else if self.eat_ident("without") {
            false
        } else {
            return Ok(None);
        };
        self.expect_op("(")?;
        let mut names = Vec::new();
        if !self.eat_op(")") {
            loop {
                names.push(self.ident()?);
                if self.eat_op(")") {
                    break;
                }
                self.expect_op(",")?;
            }
        }
        Ok(Some(if by {
            Grouping::By(names)
        } else {
            Grouping::Without(names)
        }))
    }

    fn duration(&mut self) -> Result<i64, String> {
        match self.peek() {
            Some(Tok::Num(d)) => {
                self.pos += 1;
                duration_ns(d).ok_or_else(|| format!("invalid duration {d:?}"))
            }
            _ => self.err("expected a duration such as 5m"),
        }
    }
}

/// A number literal as a value to compare with: plain, a duration (in seconds) or a
/// size (in bytes).
fn number_value(text: &str) -> Result<(f64, Conversion), String> {
    if let Ok(v) = text.parse::<f64>() {
        return Ok((v, Conversion::Float));
    }
    if let Some(ns) = duration_ns(text) {
        return Ok((ns as f64 / 1e9, Conversion::Duration));
    }
    if let Some(b) = bytes(text) {
        return Ok((b, Conversion::Bytes));
    }
    Err(format!("{text:?} is not a number, a duration or a size"))
}

/// A duration as Go and Prometheus write them (`1h30m`, `1.5s`, `250ms`, `2d`), in ns.
pub fn duration_ns(text: &str) -> Option<i64> {
    let (neg, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "y" => 31_536_000e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * unit;
    }
    let ns = if neg { -total } else { total };
    (ns.abs() < 9.2e18).then_some(ns as i64)
}

/// A size as `go-humanize` reads it (`5KB`, `1.5MiB`, `42`, `3 kb`), in bytes.
pub fn bytes(text: &str) -> Option<f64> {
    let t = text.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..num_len].parse().ok()?;
    let unit = t[num_len..].trim().to_ascii_lowercase();
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return None,
    };
    Some(value * mult)
}

/// `a.b[0]["c d"]` → parts.
fn json_path(text: &str) -> Result<Vec<PathPart>, String> {
    let bad = || format!("invalid JSON path {text:?}");
    let mut parts = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'[' => {
                let close = text[i..].find(']').ok_or_else(bad)? + i;
                let inner = text[i + 1..close].trim();
                if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    parts.push(PathPart::Key(q.to_string()));
                } else {
                    parts.push(PathPart::Index(inner.parse().map_err(|_| bad())?));
                }
                i = close + 1;
            }
            _ => {
                let end = text[i..]
                    .find(['.', '['])
                    .map(|o| o + i)
                    .unwrap_or(text.len());
                parts.push(PathPart::Key(text[i..end].to_string()));
                i = end;
            }
        }
    }
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(parts)
}

/// `<ip> - <_> "<method> <path>"` → parts. Two captures may not touch: the parser could
/// not tell where one ends.
pub fn pattern(text: &str) -> Result<Pattern, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('<') {
            Some(open) => {
                let close = rest[open..].find('>').map(|c| c + open);
                let name = close.map(|c| &rest[open + 1..c]);
                match (close, name) {
                    (Some(close), Some(name))
                        if !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        if open > 0 {
                            parts.push(PatternPart::Literal(rest[..open].to_string()));
                        }
                        if matches!(parts.last(), Some(PatternPart::Capture(_))) {
                            return Err(format!(
                                "pattern {text:?}: captures must be separated by text"
                            ));
                        }
                        parts.push(PatternPart::Capture(
                            (name != "_").then(|| name.to_string()),
                        ));
                        rest = &rest[close + 1..];
                    }
                    _ => {
                        parts.push(PatternPart::Literal(rest[..open + 1].to_string()));
                        rest = &rest[open + 1..];
                    }
                }
            }
            None => {
                parts.push(PatternPart::Literal(rest.to_string()));
                rest = "";
            }
        }
    }
    // Adjacent literals (from a lone '<') become one.
    let mut merged: Vec<PatternPart> = Vec::new();
    for p in parts {
        match (merged.last_mut(), p) {
            (Some(PatternPart::Literal(a)), PatternPart::Literal(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    if !merged.iter().any(|p| matches!(p, PatternPart::Capture(_))) {
        return Err(format!(
            "pattern {text:?} has no capture such as <name> or <_>"
        ));
    }
    Ok(Pattern { parts: merged })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration_ns("5m"), Some(300_000_000_000));
        assert_eq!(duration_ns("1h30m"), Some(5_400_000_000_000));
        assert_eq!(duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(duration_ns("250ms"), Some(250_000_000));
        assert_eq!(duration_ns("5x"), None);
        assert_eq!(duration_ns(""), None);
        assert_eq!(bytes("5KB"), Some(5000.0));
        assert_eq!(bytes("1KiB"), Some(1024.0));
        assert_eq!(bytes("42"), Some(42.0));
        assert_eq!(bytes("1.5 mb"), Some(1.5e6));
        assert_eq!(bytes("3 parsecs"), None);
    }

    #[test]
    fn log_and_metric_queries_parse() {
        let Query::Log(l) = parse(r#"{service_name="api", level=~"error|warn"} |= "timeout" or "refused" != "health" | json | status >= 500 and duration > 1.5s | line_format "{{.status}}""#).unwrap() else {
            panic!("log query expected")
        };
        assert_eq!(l.matchers.len(), 2);
        assert_eq!(l.stages.len(), 5);
        let Query::Metric(m) = parse(r#"sum by (service_name) (rate({service_name=~".+"} |= "x" [5m])) / on() group_left sum(count_over_time({a="b"}[1m] offset 1h))"#).unwrap() else {
            panic!("metric query expected")
        };
        assert_eq!(
            m.promql,
            "sum by (service_name) (__logql_0) / on() group_left sum(__logql_1)"
        );
        assert_eq!(m.ranges[1].offset_ns, 3_600_000_000_000);
        let Query::Metric(m) = parse(r#"quantile_over_time(0.99, {a="b"} | logfmt | unwrap duration(took) | __error__="" [1m]) by (path)"#).unwrap() else {
            panic!()
        };
        assert_eq!(m.ranges[0].param, Some(0.99));
        assert_eq!(
            m.ranges[0].grouping,
            Some(Grouping::By(vec!["path".into()]))
        );
        assert!(
            matches!(parse("vector(1)+vector(1)").unwrap(), Query::Metric(m) if m.ranges.is_empty())
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (q, want) in [
            (r#"{}"#, "at least one"),
            (r#"{a=~".*"}"#, "at least one"),
            (r#"{a="b"} |= "x" |"#, "expected a parser"),
            (r#"sum_over_time({a="b"}[5m])"#, "needs an unwrapped label"),
            (
                r#"count_over_time({a="b"}[5m]) by (x)"#,
                "grouping not allowed",
            ),
            (r#"count_over_time({a="b"}[5x])"#, "invalid duration"),
            (r#"{a="b"} | regexp "(\d+)""#, "named group"),
            (r#"{a="b"} | pattern "<a><b>""#, "separated"),
            (
                r#"{a="b"} + count_over_time({a="b"}[1m])"#,
                "stream selector",
            ),
            (r#"{a="b"} | status > "x""#, "quoted value"),
            (r#"{a="b"} | line_format "{{.a""#, "not closed"),
        ] {
            let e = parse(q).err().unwrap_or_else(|| panic!("{q} parsed"));
            assert!(e.contains(want), "{q}: {e}");
        }
    }

    proptest::proptest! {
        /// Any text: a query or an error, never a panic (the fuzz target
        /// `fuzz/fuzz_targets/logql.rs` runs the same longer, with the pipeline, on
        /// nightly).
        #[test]
        fn any_text_parses_or_fails_cleanly(text in r#"[{}()\[\]|!=~<>"`a-z_ 0-9.,:-]{0,48}"#) {
            let _ = parse(&text);
        }
    }

    #[test]
    fn patterns_and_paths() {
        let p = pattern(r#"<ip> - <_> "<method> <path> <_>""#).unwrap();
        assert_eq!(p.parts[0], PatternPart::Capture(Some("ip".into())));
        assert_eq!(p.parts[1], PatternPart::Literal(" - ".into()));
        assert_eq!(
            json_path(r#"a.b[0]["c d"]"#).unwrap(),
            vec![
                PathPart::Key("a".into()),
                PathPart::Key("b".into()),
                PathPart::Index(0),
                PathPart::Key("c d".into())
            ]
        );
    }
}
