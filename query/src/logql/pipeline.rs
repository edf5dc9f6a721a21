//! A pipeline run over one log line: filters, parsers, formats, `unwrap`. Errors are
//! Loki's: a failing parser or conversion adds an `__error__` label and keeps the line
//! (label filters on `__error__` can drop it); metric queries refuse results that
//! still carry one.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value as J;

use super::ast::*;
use super::parse::{bytes, duration_ns};
use super::template;

/// A line on its way through a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When, ns.
    pub ts: i64,
    /// The line.
    pub line: String,
    /// Labels, sorted by name, names unique.
    pub labels: Vec<(String, String)>,
}

impl Entry {
    /// A label's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// Sets a label (an empty value removes it, as labels without value do not exist).
    pub fn set(&mut self, name: &str, value: String) {
        match self.labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(i, (name.to_string(), value)),
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(i) = self.labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.labels.remove(i);
        }
    }

    fn has_error(&self) -> bool {
        self.get(ERROR).is_some()
    }

    fn set_error(&mut self, kind: &str) {
        if !self.has_error() {
            self.set(ERROR, kind.to_string());
        }
    }

    /// Adds a label found by a parser: sanitized as Loki does, `_extracted` appended
    /// when the name is taken.
    fn extract(&mut self, key: &str, value: String, keep_empty: bool) {
        let mut name = sanitize(key);
        if name.is_empty() || (value.is_empty() && !keep_empty) {
            return;
        }
        if self.get(&name).is_some() {
            name.push_str("_extracted");
        }
        match self.labels.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.labels[i].1 = value,
            Err(i) => self.labels.insert(i, (name, value)),
        }
    }
}

/// The error label.
pub const ERROR: &str = "__error__";

/// A key as a label name: characters other than letters, digits and `_` become `_`, and
/// a leading digit gets a `_` in front.
pub fn sanitize(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// What a pipeline made of a line.
pub enum Outcome {
    /// Filtered out.
    Dropped,
    /// Kept, with the unwrapped sample where the pipeline has `unwrap`.
    Kept(Option<f64>),
}

/// Runs `stages` over `e`.
pub fn run(stages: &[Stage], e: &mut Entry) -> Outcome {
    let mut sample = None;
    for stage in stages {
        match stage {
            Stage::Line { op, needles, .. } => {
                let any = needles.iter().any(|n| match n {
                    LineNeedle::Text(t) => e.line.contains(t.as_str()),
                    LineNeedle::Regex(r) => r.is_match(&e.line),
                    LineNeedle::Pattern(p) => pattern_match(p, &e.line).is_some(),
                });
                let positive = matches!(op, LineOp::Contains | LineOp::Regex | LineOp::Pattern);
                if any != positive {
                    return Outcome::Dropped;
                }
            }
            Stage::Json(params) => json(e, params),
            Stage::Logfmt {
                params,
                strict,
                keep_empty,
            } => logfmt(e, params, *strict, *keep_empty),
            Stage::Regexp(re) => {
                if let Some(caps) = re.captures(&e.line) {
                    let found: Vec<(String, String)> = re
                        .capture_names()
                        .flatten()
                        .filter_map(|n| {
                            caps.name(n)
                                .map(|m| (n.to_string(), m.as_str().to_string()))
                        })
                        .collect();
                    for (k, v) in found {
                        e.extract(&k, v, false);
                    }
                }
            }
            Stage::PatternParser(p) => {
                if let Some(found) = pattern_match(p, &e.line) {
                    for (k, v) in found {
                        e.extract(&k, v, false);
                    }
                }
            }
            Stage::Unpack => unpack(e),
            Stage::Decolorize => {
                static ANSI: LazyLock<Option<Regex>> =
                    LazyLock::new(|| Regex::new(r"\x1b\[[0-9;]*[A-Za-z]").ok());
                if let Some(re) = ANSI.as_ref()
                    && e.line.contains('\x1b')
                {
                    e.line = re.replace_all(&e.line, "").into_owned();
                }
            }
            Stage::Filter(f) => {
                if !filter(f, e) {
                    return Outcome::Dropped;
                }
            }
            Stage::LineFormat(t) => match template::render(t, &e.labels, &e.line, e.ts) {
                Ok(l) => e.line = l,
                Err(_) => e.set_error("TemplateFormatErr"),
            },
            Stage::LabelFormat(assignments) => {
                // Every assignment sees the labels as they were before the stage.
                let before = e.labels.clone();
                for (name, fmt) in assignments {
                    match fmt {
                        LabelFmt::Rename(src) => {
                            let v = before
                                .iter()
                                .find(|(n, _)| n == src)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            e.remove(src);
                            e.set(name, v);
                        }
                        LabelFmt::Template(t) => {
                            match template::render(t, &before, &e.line, e.ts) {
                                Ok(v) => e.set(name, v),
                                Err(_) => e.set_error("TemplateFormatErr"),
                            }
                        }
                    }
                }
            }
            Stage::Drop(args) => {
                e.labels
                    .retain(|(n, v)| !args.iter().any(|a| named(a, n, v)));
            }
            Stage::Keep(args) => {
                e.labels
                    .retain(|(n, v)| args.iter().any(|a| named(a, n, v)));
            }
            Stage::Unwrap { label, conv } => {
                let value = e.get(label).map(str::to_string);
                e.remove(label);
                match value.as_deref().map(|v| convert(v, *conv)) {
                    Some(Some(v)) => sample = Some(v),
                    _ => {
                        e.set_error("SampleExtractionErr");
                        sample = Some(0.0);
                    }
                }
            }
        }
    }
    Outcome::Kept(sample)
}

fn named(a: &NameOrMatcher, name: &str, value: &str) -> bool {
    match a {
        NameOrMatcher::Name(n) => n == name,
        NameOrMatcher::Matcher(m) => m.name == name && m.matches(value),
    }
}

/// A label value read as a number, a duration (seconds) or a size (bytes).
fn convert(v: &str, conv: Conversion) -> Option<f64> {
    let v = v.trim();
    match conv {
        Conversion::Float => v.parse::<f64>().ok(),
        Conversion::Duration => duration_ns(v).map(|ns| ns as f64 / 1e9),
        Conversion::Bytes => bytes(v),
    }
}

fn filter(f: &LabelFilter, e: &mut Entry) -> bool {
    match f {
        LabelFilter::And(a, b) => filter(a, e) && filter(b, e),
        LabelFilter::Or(a, b) => filter(a, e) || filter(b, e),
        LabelFilter::Str(m) => m.matches(e.get(&m.name).unwrap_or("")),
        LabelFilter::Num {
            name,
            op,
            value,
            conv,
        } => {
            // As Loki: a line that already failed is kept for `__error__` filters; a
            // missing label fails the comparison; an unreadable one marks the line.
            if e.has_error() {
                return true;
            }
            let Some(v) = e.get(name) else {
                return false;
            };
            match convert(v, *conv) {
                Some(v) => op.holds(v, *value),
                None => {
                    e.set_error("LabelFilterErr");
                    true
                }
            }
        }
    }
}

fn json(e: &mut Entry, params: &[(String, Vec<PathPart>)]) {
    let Ok(doc) = serde_json::from_str::<J>(&e.line) else {
        e.set_error("JSONParserErr");
        return;
    };
    if !doc.is_object() {
        e.set_error("JSONParserErr");
        return;
    }
    if params.is_empty() {
        let mut found = Vec::new();
        flatten("", &doc, &mut found);
        for (k, v) in found {
            e.extract(&k, v, false);
        }
        return;
    }
    for (label, path) in params {
        let mut at = Some(&doc);
        for part in path {
            at = at.and_then(|v| match part {
                PathPart::Key(k) => v.get(k.as_str()),
                PathPart::Index(i) => v.get(*i),
            });
        }
        let value = match at {
            Some(J::String(s)) => s.clone(),
            Some(J::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        e.extract(label, value, false);
    }
}

/// Nested keys joined with `_`, arrays left out (as Loki's json parser).
fn flatten(prefix: &str, v: &J, out: &mut Vec<(String, String)>) {
    match v {
        J::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}_{k}")
                };
                flatten(&key, v, out);
            }
        }
        J::Array(_) | J::Null => {}
        J::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn unpack(e: &mut Entry) {
    let Ok(J::Object(m)) = serde_json::from_str::<J>(&e.line) else {
        e.set_error("JSONParserErr");
        return;
    };
    let mut line = None;
    for (k, v) in m {
        match v {
            J::String(s) if k == "_entry" => line = Some(s),
            J::String(s) => e.extract(&k, s, false),
            _ => {}
        }
    }
    if let Some(l) = line {
        e.line = l;
    }
}

fn logfmt(e: &mut Entry, params: &[(String, String)], strict: bool, keep_empty: bool) {
    let pairs = match logfmt_pairs(&e.line, strict) {
        Some(p) => p,
        None => {
            e.set_error("LogfmtParserErr");
            return;
        }
    };
    if params.is_empty() {
        for (k, v) in pairs {
            e.extract(&k, v, keep_empty);
        }
    } else {
        for (label, key) in params {
            if let Some((_, v)) = pairs.iter().rev().find(|(k, _)| k == key) {
                e.extract(label, v.clone(), keep_empty);
            }
        }
    }
}

/// Splits a logfmt line (`a=1 b="x y" c`) into pairs; with `strict`, any malformed
/// part fails the line (`None`), otherwise it is skipped.
pub fn logfmt_pairs(line: &str, strict: bool) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Some(out);
        };
        let mut key_end = line.len();
        let mut has_eq = false;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                key_end = i;
                has_eq = c == '=';
                chars.next();
                break;
            }
            if c == '"' && strict {
                return None;
            }
            chars.next();
        }
        let key = &line[start..key_end];
        if key.is_empty() {
            if strict {
                return None;
            }
            // Skip the value of a pair without key.
            while chars.next_if(|(_, c)| !c.is_whitespace()).is_some() {}
            continue;
        }
        if !has_eq {
            out.push((key.to_string(), String::new()));
            continue;
        }
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '"').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, c)) => value.push(c),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                if strict {
                    return None;
                }
                continue;
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key.to_string(), value));
    }
}

/// Matches a pattern against a line: the captures (`<_>` left out), or `None`. A
/// pattern that starts with text must match the line's start; a capture takes
/// everything up to the next text (or the line's end when it is last).
pub fn pattern_match(p: &Pattern, line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = line;
    let mut pending: Option<&Option<String>> = None;
    for (i, part) in p.parts.iter().enumerate() {
        match part {
            PatternPart::Literal(lit) => match pending.take() {
                None => {
                    if i == 0 {
                        rest = rest.strip_prefix(lit.as_str())?;
                    } else {
                        let at = rest.find(lit.as_str())?;
                        rest = &rest[at + lit.len()..];
                    }
                }
                Some(name) => {
                    let at = rest.find(lit.as_str())?;
                    if let Some(n) = name {
                        out.push((n.clone(), rest[..at].to_string()));
                    }
                    rest = &rest[at + lit.len()..];
                }
            },
            PatternPart::Capture(name) => pending = Some(name),
        }
    }
    if let Some(Some(n)) = pending {
        out.push((n.clone(), rest.to_string()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse, pattern};
    use super::*;

    fn pipe(q: &str, line: &str, labels: &[(&str, &str)]) -> Option<Entry> {
        let Ok(Query::Log(l)) = parse(q) else {
            panic!("{q} is not a log query")
        };
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        let mut e = Entry {
            ts: 0,
            line: line.into(),
            labels,
        };
        match run(&l.stages, &mut e) {
            Outcome::Dropped => None,
            Outcome::Kept(_) => Some(e),
        }
    }

    fn label(e: &Option<Entry>, n: &str) -> Option<String> {
        e.as_ref().and_then(|e| e.get(n).map(str::to_string))
    }

    #[test]
    fn line_filters_chain_and_alternate() {
        let q = r#"{a="b"} |= "GET" or "POST" != "health" |~ "status=[45]\\d\\d""#;
        assert!(pipe(q, "GET /x status=500", &[]).is_some());
        assert!(pipe(q, "POST /x status=404", &[]).is_some());
        assert!(pipe(q, "PUT /x status=500", &[]).is_none());
        assert!(pipe(q, "GET /health status=500", &[]).is_none());
        assert!(pipe(q, "GET /x status=200", &[]).is_none());
        assert!(pipe(r#"{a="b"} |> "<_> GET <_>""#, "1.2.3.4 GET /", &[]).is_some());
        assert!(pipe(r#"{a="b"} !> "<_> GET <_>""#, "1.2.3.4 GET /", &[]).is_none());
    }

    #[test]
    fn parsers_extract_labels() {
        let e = pipe(
            r#"{a="b"} | json"#,
            r#"{"status":500,"req":{"path":"/x","tags":["a"]},"a":"dup","ok":true,"n":null}"#,
            &[("a", "b")],
        );
        assert_eq!(label(&e, "status").as_deref(), Some("500"));
        assert_eq!(label(&e, "req_path").as_deref(), Some("/x"));
        assert_eq!(label(&e, "a_extracted").as_deref(), Some("dup"));
        assert_eq!(label(&e, "ok").as_deref(), Some("true"));
        assert_eq!(label(&e, "req_tags"), None);
        let e = pipe(
            r#"{a="b"} | json p="req.path", first="tags[0]""#,
            r#"{"req":{"path":"/y"},"tags":["t0"]}"#,
            &[],
        );
        assert_eq!(label(&e, "p").as_deref(), Some("/y"));
        assert_eq!(label(&e, "first").as_deref(), Some("t0"));
        let e = pipe(r#"{a="b"} | json"#, "not json", &[]);
        assert_eq!(label(&e, ERROR).as_deref(), Some("JSONParserErr"));
        let e = pipe(
            r#"{a="b"} | logfmt"#,
            r#"level=info msg="hello world" took=1.5s bare"#,
            &[],
        );
        assert_eq!(label(&e, "msg").as_deref(), Some("hello world"));
        assert_eq!(label(&e, "took").as_deref(), Some("1.5s"));
        assert_eq!(label(&e, "bare"), None);
        let e = pipe(r#"{a="b"} | logfmt --strict"#, r#"a="unterminated"#, &[]);
        assert_eq!(label(&e, ERROR).as_deref(), Some("LogfmtParserErr"));
        let e = pipe(r#"{a="b"} | logfmt --keep-empty"#, "bare x=1", &[]);
        assert_eq!(label(&e, "bare").as_deref(), Some(""));
        let e = pipe(
            r#"{a="b"} | regexp "(?P<method>\\w+) (?P<path>\\S+)""#,
            "GET /a/b HTTP",
            &[],
        );
        assert_eq!(label(&e, "path").as_deref(), Some("/a/b"));
        let e = pipe(
            r#"{a="b"} | pattern "<ip> - <_> \"<method> <path> <_>\" <status>""#,
            r#"10.0.0.1 - - "GET /x HTTP/1.1" 200"#,
            &[],
        );
        assert_eq!(label(&e, "ip").as_deref(), Some("10.0.0.1"));
        assert_eq!(label(&e, "path").as_deref(), Some("/x"));
        assert_eq!(label(&e, "status").as_deref(), Some("200"));
        let e = pipe(
            r#"{a="b"} | unpack"#,
            r#"{"_entry":"the line","pod":"p1"}"#,
            &[],
        );
        assert_eq!(e.as_ref().map(|e| e.line.as_str()), Some("the line"));
        assert_eq!(label(&e, "pod").as_deref(), Some("p1"));
    }

    #[test]
    fn label_filters_compare_by_type() {
        let q = r#"{a="b"} | logfmt | status >= 500 and took > 1s or level="fatal""#;
        assert!(pipe(q, "status=503 took=1.5s", &[]).is_some());
        assert!(pipe(q, "status=503 took=500ms", &[]).is_none());
        assert!(pipe(q, "status=200 took=5s level=fatal", &[]).is_some());
        assert!(
            pipe(q, "took=5s", &[]).is_none(),
            "a missing label fails a comparison"
        );
        let e = pipe(r#"{a="b"} | logfmt | status > 1"#, "status=abc", &[]);
        assert_eq!(label(&e, ERROR).as_deref(), Some("LabelFilterErr"));
        assert!(
            pipe(
                r#"{a="b"} | logfmt | status > 1 | __error__="""#,
                "status=abc",
                &[]
            )
            .is_none()
        );
        assert!(pipe(r#"{a="b"} | logfmt | size > 1KB"#, "size=2kB", &[]).is_some());
        assert!(pipe(r#"{a="b"} | logfmt | size > 1KB"#, "size=200", &[]).is_none());
        assert!(
            pipe(
                r#"{a="b"} | logfmt | (x="1", y=~"a.*") or z!="""#,
                "x=1 y=abc",
                &[]
            )
            .is_some()
        );
    }

    #[test]
    fn formats_drop_keep_and_unwrap() {
        let e = pipe(
            r#"{a="b"} | logfmt | line_format "{{.method}} {{.path | ToUpper}}" | label_format verb=method, where="{{.path}}!""#,
            "method=GET path=/x",
            &[],
        );
        let e = e.unwrap();
        assert_eq!(e.line, "GET /X");
        assert_eq!(e.get("verb"), Some("GET"));
        assert_eq!(e.get("method"), None);
        assert_eq!(e.get("where"), Some("/x!"));
        let e = pipe(r#"{a="b"} | logfmt | drop x, y="2""#, "x=1 y=2 z=3", &[]).unwrap();
        assert_eq!(e.labels, vec![("z".to_string(), "3".to_string())]);
        let e = pipe(r#"{a="b"} | logfmt | keep x, z"#, "x=1 y=2 z=3", &[]).unwrap();
        assert_eq!(e.labels.len(), 2);
        let Ok(Query::Metric(m)) =
            parse(r#"sum_over_time({a="b"} | logfmt | unwrap duration(took) [1m])"#)
        else {
            panic!()
        };
        let mut e = Entry {
            ts: 0,
            line: "took=1m30s".into(),
            labels: vec![],
        };
        assert!(
            matches!(run(&m.ranges[0].log.stages, &mut e), Outcome::Kept(Some(v)) if v == 90.0)
        );
        assert_eq!(
            e.get("took"),
            None,
            "the unwrapped label is not a series label"
        );
        let mut e = Entry {
            ts: 0,
            line: "took=soon".into(),
            labels: vec![],
        };
        run(&m.ranges[0].log.stages, &mut e);
        assert_eq!(e.get(ERROR), Some("SampleExtractionErr"));
        let e = pipe(r#"{a="b"} | decolorize"#, "\x1b[31mred\x1b[0m", &[]).unwrap();
        assert_eq!(e.line, "red");
    }

    #[test]
    fn pattern_edges() {
        let p = pattern("<a> <b>").unwrap();
        assert_eq!(
            pattern_match(&p, "x y z"),
            Some(vec![("a".into(), "x".into()), ("b".into(), "y z".into())])
        );
        let p = pattern("GET <path> ").unwrap();
        assert_eq!(pattern_match(&p, "POST /x "), None);
        assert_eq!(
            pattern_match(&p, "GET /x y"),
            Some(vec![("path".into(), "/x".into())])
        );
        assert_eq!(sanitize("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(sanitize("1a"), "_1a");
    }
}
