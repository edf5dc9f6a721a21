//! Parser of the Prometheus text exposition format (0.0.4) and of OpenMetrics 1.0 text,
//! the two formats a scrape target answers with.
//!
//! Written here rather than taken from `prometheus-parse`, which drops metric names with
//! colons, cuts label values at commas, loses exemplars and skips bad lines silently
//! (see `DEPENDENCIES.md`). Like Prometheus, a malformed line fails the whole scrape,
//! with the line number and what was expected.
//!
//! What it returns is what ingestion needs: samples (name, labels, value, optional
//! timestamp in milliseconds, optional exemplar) and per-family metadata (type, help,
//! unit). OpenMetrics timestamps are seconds and are converted; `# EOF` must end an
//! OpenMetrics body and nothing may follow it.

use std::collections::BTreeMap;

/// The type a `# TYPE` line declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
    /// `untyped` (text format) or `unknown` (OpenMetrics).
    Unknown,
}

impl MetricType {
    fn parse(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "untyped" | "unknown" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// The name Prometheus' metadata API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// An exemplar attached to a sample (OpenMetrics): labels such as `trace_id`, a value,
/// and an optional timestamp in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Exemplar labels, e.g. `trace_id`.
    pub labels: Vec<(String, String)>,
    /// The observed value.
    pub value: f64,
    /// When it was observed, in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written (`http_requests_total`, `job:rate5m`, `x_bucket`).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value (may be NaN or ±Inf).
    pub value: f64,
    /// Timestamp in milliseconds since the epoch, if the line had one.
    pub timestamp_ms: Option<i64>,
    /// Exemplar, if any.
    pub exemplar: Option<Exemplar>,
    /// Byte range of the series part (`name{labels}`) in the parsed text: a key for
    /// caches of known series (a scraper sees the same text every scrape).
    pub series: std::ops::Range<usize>,
}

/// Metadata of a metric family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Declared type.
    pub metric_type: Option<MetricType>,
    /// `# HELP` text, unescaped.
    pub help: Option<String>,
    /// `# UNIT` (OpenMetrics).
    pub unit: Option<String>,
}

/// A parsed body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Samples in the order written.
    pub samples: Vec<Sample>,
    /// Metadata by family name.
    pub metadata: BTreeMap<String, Metadata>,
}

/// Why a body did not parse: the line (1-based) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected or found.
    pub message: String,
}

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text`.
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header announces (Prometheus text when unknown, as
    /// Prometheus falls back).
    pub fn from_content_type(ct: &str) -> Format {
        if ct.trim_start().starts_with("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Parses a scrape body.
pub fn parse(text: &str, format: Format) -> Result<Exposition, ParseError> {
    parse_with(text, format, |_| false)
}

/// Parses a scrape body; for a sample whose series text (`name{labels}`) `known`
/// accepts, the name and labels are not built (`name` is empty, `labels` too): the
/// caller has them from an earlier scrape of the same bytes, which were checked then.
/// This is the scraper's fast path: most of a scrape repeats the previous one.
pub fn parse_with(
    text: &str,
    format: Format,
    mut known: impl FnMut(&str) -> bool,
) -> Result<Exposition, ParseError> {
    let mut out = Exposition {
        // About a sample per line: one allocation instead of a dozen growing copies.
        samples: Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1),
        ..Exposition::default()
    };
    let mut eof = false;
    // A final newline ends the last line; it does not start an empty one.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = 0;
    for (i, raw) in body.split('\n').enumerate() {
        if body.is_empty() {
            break;
        }
        let line_no = i + 1;
        lines = line_no;
        let err = |message: String| ParseError {
            line: line_no,
            message,
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if eof {
            return Err(err("data after # EOF".into()));
        }
        if line.trim().is_empty() {
            if format == Format::OpenMetrics {
                return Err(err("empty line (not allowed in OpenMetrics)".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            if format == Format::OpenMetrics && rest == " EOF" {
                eof = true;
                continue;
            }
            parse_comment(rest, format, &mut out).map_err(err)?;
            continue;
        }
        let mut sample = parse_sample(line, format, &mut known).map_err(err)?;
        let offset = line.as_ptr() as usize - text.as_ptr() as usize;
        sample.series = offset + sample.series.start..offset + sample.series.end;
        out.samples.push(sample);
    }
    if format == Format::OpenMetrics && !eof {
        return Err(ParseError {
            line: lines + 1,
            message: "OpenMetrics body does not end with # EOF".into(),
        });
    }
    Ok(out)
}

fn parse_comment(rest: &str, format: Format, out: &mut Exposition) -> Result<(), String> {
    let mut parts = rest.trim_start().splitn(3, [' ', '\t']);
    let keyword = parts.next().unwrap_or("");
    let (name, value) = (parts.next(), parts.next());
    match keyword {
        "HELP" | "TYPE" | "UNIT" => {}
        // Any other comment is ignored in the text format.
        _ if format == Format::Prometheus => return Ok(()),
        _ => return Err(format!("unknown comment {keyword:?}")),
    }
    let Some(name) = name.filter(|n| is_metric_name(n)) else {
        return Err(format!("# {keyword} needs a valid metric name"));
    };
    let meta = out.metadata.entry(name.to_string()).or_default();
    match keyword {
        "HELP" => meta.help = Some(unescape(value.unwrap_or(""), false)?),
        "TYPE" => {
            let t = value.unwrap_or("").trim();
            let parsed =
                MetricType::parse(t).ok_or_else(|| format!("invalid metric type {t:?}"))?;
            if meta.metric_type.is_some() {
                return Err(format!("second # TYPE for {name}"));
            }
            meta.metric_type = Some(parsed);
        }
        _ => meta.unit = Some(value.unwrap_or("").trim().to_string()),
    }
    Ok(())
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Undoes `\\`, `\n` and (in label values) `\"`.
fn unescape(s: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            // The text format keeps unknown escapes as they are.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

/// A cursor over one sample line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_blanks(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start_matches([' ', '\t']).len();
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let r = self.rest();
        let n = r.find(|c: char| !f(c)).unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }

    /// `{name="value",...}`; the opening brace is already consumed.
    fn labels(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut labels = Vec::new();
        loop {
            self.skip_blanks();
            if self.eat('}') {
                return Ok(labels);
            }
            let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "expected a label name at {:?}",
                    excerpt(self.rest())
                ));
            }
            self.skip_blanks();
            if !self.eat('=') {
                return Err(format!("expected '=' after label {name:?}"));
            }
            self.skip_blanks();
            if !self.eat('"') {
                return Err(format!(
                    "expected '\"' to start the value of label {name:?}"
                ));
            }
            let start = self.pos;
            let mut escaped = false;
            let mut end = None;
            for (i, c) in self.rest().char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(len) = end else {
                return Err(format!("unterminated value of label {name:?}"));
            };
            let value = unescape(&self.s[start..start + len], true)?;
            self.pos = start + len + 1;
            if labels.iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate label {name:?}"));
            }
            labels.push((name.to_string(), value));
            self.skip_blanks();
            if self.eat(',') {
                continue;
            }
            if self.eat('}') {
                return Ok(labels);
            }
            return Err(format!("expected ',' or '}}' after label {name:?}"));
        }
    }

    fn token(&mut self) -> &'a str {
        self.skip_blanks();
        self.take_while(|c| c != ' ' && c != '\t')
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(32).collect()
}

fn parse_value(s: &str) -> Result<f64, String> {
    // Go's ParseFloat, which Prometheus uses, takes these spellings of the specials.
    match s {
        "NaN" | "nan" => return Ok(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => return Ok(f64::INFINITY),
        "-Inf" | "-inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    if s.is_empty() || s.eq_ignore_ascii_case("infinity") || s.contains(['i', 'I', 'n', 'N']) {
        return Err(format!("invalid value {:?}", excerpt(s)));
    }
    s.parse::<f64>()
        .map_err(|_| format!("invalid value {:?}", excerpt(s)))
}

fn parse_timestamp(s: &str, format: Format) -> Result<i64, String> {
    match format {
        Format::Prometheus => s
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {:?} (milliseconds expected)", excerpt(s))),
        Format::OpenMetrics => {
            let secs = s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("invalid timestamp {:?} (seconds expected)", excerpt(s)))?;
            Ok((secs * 1000.0).round() as i64)
        }
    }
}

/// The end of a `{…}` label block starting at `start` (the index after its closing
/// brace), skipping quoted values with their escapes; `None` when it does not close.
fn label_block_end(line: &str, start: usize) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = start + 1;
    let mut quoted = false;
    while i < b.len() {
        match (quoted, b[i]) {
            (true, b'\\') => i += 1,
            (_, b'"') => quoted = !quoted,
            (false, b'}') => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_sample(
    line: &str,
    format: Format,
    known: &mut impl FnMut(&str) -> bool,
) -> Result<Sample, String> {
    let mut c = Cursor { s: line, pos: 0 };
    let name_len = line
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b':'))
        .unwrap_or(line.len());
    c.pos = name_len;
    let name = &line[..name_len];
    // The characters are checked by the scan; a name only may not start with a digit.
    if name.as_bytes().first().is_none_or(u8::is_ascii_digit) {
        return Err(format!("expected a metric name at {:?}", excerpt(line)));
    }
    let series_end = if c.rest().starts_with('{') {
        label_block_end(line, c.pos)
    } else {
        Some(c.pos)
    };
    let (name, labels) = match series_end {
        // Bytes seen before were fully checked then; only the value part is new.
        Some(end) if known(&line[..end]) => {
            c.pos = end;
            (String::new(), Vec::new())
        }
        _ => {
            let labels = if c.eat('{') { c.labels()? } else { Vec::new() };
            (name.to_string(), labels)
        }
    };
    let series_end = c.pos;
    let value_text = c.token();
    if value_text.is_empty() {
        return Err(format!("{name}: missing value"));
    }
    let value = parse_value(value_text)?;
    let mut timestamp_ms = None;
    let mut exemplar = None;
    let next = c.token();
    if next == "#" && format == Format::OpenMetrics {
        exemplar = Some(parse_exemplar(&mut c)?);
    } else if !next.is_empty() {
        timestamp_ms = Some(parse_timestamp(next, format)?);
        let after = c.token();
        if after == "#" && format == Format::OpenMetrics {
            exemplar = Some(parse_exemplar(&mut c)?);
        } else if !after.is_empty() {
            return Err(format!(
                "unexpected {:?} after the timestamp",
                excerpt(after)
            ));
        }
    }
    c.skip_blanks();
    if !c.rest().is_empty() {
        return Err(format!(
            "unexpected {:?} at the end of the line",
            excerpt(c.rest())
        ));
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
        series: 0..series_end,
        exemplar,
    })
}

fn parse_exemplar(c: &mut Cursor<'_>) -> Result<Exemplar, String> {
    c.skip_blanks();
    if !c.eat('{') {
        return Err("expected '{' to start the exemplar's labels".into());
    }
    let labels = c.labels()?;
    let runes: usize = labels
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if runes > 128 {
        return Err(format!(
            "exemplar labels have {runes} characters, more than 128"
        ));
    }
    let value = parse_value(c.token())?;
    let ts = c.token();
    let timestamp_ms = if ts.is_empty() {
        None
    } else {
        Some(parse_timestamp(ts, Format::OpenMetrics)?)
    };
    Ok(Exemplar {
        labels,
        value,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &Sample) -> Vec<(&str, &str)> {
        s.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn prometheus_text_with_what_prometheus_parse_gets_wrong() {
        let body = "# HELP http_requests_total The total number of HTTP requests.\n\
                    # TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                    # A comment\n\
                    job:http_requests:rate5m{path=\"/a,b\",q=\"say \\\"hi\\\"\\n\\\\\"} 0.5\n\
                    metric_without_timestamp_and_labels 12.47\n\
                    something_weird{problem=\"division by zero\"} +Inf -3982045\n\
                    nan_metric NaN\n\
                    \n\
                    # HELP escapes Line one\\nline two \\\\ backslash\n\
                    # TYPE rpc_duration_seconds summary\n\
                    rpc_duration_seconds{quantile=\"0.99\",} 76656\n";
        let e = parse(body, Format::Prometheus).unwrap();
        assert_eq!(e.samples.len(), 7);
        let s = &e.samples[0];
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(labels(s), [("method", "post"), ("code", "200")]);
        assert_eq!((s.value, s.timestamp_ms), (1027.0, Some(1_395_066_363_000)));
        let colon = &e.samples[2];
        assert_eq!(colon.name, "job:http_requests:rate5m");
        assert_eq!(labels(colon), [("path", "/a,b"), ("q", "say \"hi\"\n\\")]);
        assert_eq!(e.samples[4].value, f64::INFINITY);
        assert_eq!(e.samples[4].timestamp_ms, Some(-3_982_045));
        assert!(e.samples[5].value.is_nan());
        assert_eq!(
            labels(&e.samples[6]),
            [("quantile", "0.99")],
            "trailing comma"
        );
        assert_eq!(
            e.metadata["http_requests_total"].metric_type,
            Some(MetricType::Counter)
        );
        assert_eq!(
            e.metadata["escapes"].help.as_deref(),
            Some("Line one\nline two \\ backslash")
        );
    }

    #[test]
    fn openmetrics_with_units_exemplars_and_eof() {
        let body = "# TYPE foo histogram\n\
                    # UNIT foo seconds\n\
                    # HELP foo Request latency.\n\
                    foo_bucket{le=\"0.1\"} 8 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.054 1520879607.789\n\
                    foo_bucket{le=\"+Inf\"} 17 1520879607.5 # {trace_id=\"00f067aa0ba902b7\"} 1.5\n\
                    foo_count 17\n\
                    foo_sum 324789.3\n\
                    foo_created 1520430000.123\n\
                    # TYPE bar_total counter\n\
                    # EOF\n";
        let e = parse(body, Format::OpenMetrics).unwrap();
        assert_eq!(e.samples.len(), 5);
        let ex = e.samples[0].exemplar.as_ref().unwrap();
        assert_eq!(
            ex.labels[0],
            ("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into())
        );
        assert_eq!(
            (ex.value, ex.timestamp_ms),
            (0.054, Some(1_520_879_607_789))
        );
        assert_eq!(e.samples[1].timestamp_ms, Some(1_520_879_607_500));
        assert_eq!(e.samples[1].exemplar.as_ref().unwrap().timestamp_ms, None);
        assert_eq!(e.metadata["foo"].unit.as_deref(), Some("seconds"));
        assert_eq!(e.metadata["foo"].metric_type, Some(MetricType::Histogram));
    }

    #[test]
    fn malformed_input_fails_with_the_line() {
        let cases = [
            (
                "ok 1\nbad{a=\"1} 2\n",
                Format::Prometheus,
                2,
                "unterminated",
            ),
            (
                "m{a=\"1\" b=\"2\"} 1\n",
                Format::Prometheus,
                1,
                "expected ','",
            ),
            ("m 1 2 3\n", Format::Prometheus, 1, "after the timestamp"),
            ("m abc\n", Format::Prometheus, 1, "invalid value"),
            ("m 1 1.5\n", Format::Prometheus, 1, "milliseconds"),
            ("0m 1\n", Format::Prometheus, 1, "metric name"),
            (
                "m{a=\"1\",a=\"2\"} 1\n",
                Format::Prometheus,
                1,
                "duplicate label",
            ),
            (
                "# TYPE m countr\nm 1\n",
                Format::Prometheus,
                1,
                "invalid metric type",
            ),
            ("m\n", Format::Prometheus, 1, "missing value"),
            ("m 1\n", Format::OpenMetrics, 2, "# EOF"),
            ("m 1\n# EOF\nm 2\n", Format::OpenMetrics, 3, "after # EOF"),
            (
                "m 1 # {a=\"1\"}\n# EOF\n",
                Format::OpenMetrics,
                1,
                "invalid value",
            ),
        ];
        for (body, format, line, want) in cases {
            let e = parse(body, format).unwrap_err();
            assert_eq!(e.line, line, "{body:?}: {e}");
            assert!(e.message.contains(want), "{body:?}: {e}");
        }
        assert!(parse("", Format::Prometheus).unwrap().samples.is_empty());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn escape(v: &str) -> String {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        }

        proptest! {
            #[test]
            fn written_samples_parse_back(
                name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
                labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "\\PC{0,20}", 0..5),
                value in any::<f64>(),
                ts in proptest::option::of(any::<i64>()),
            ) {
                let mut line = name.clone();
                if !labels.is_empty() {
                    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                    line.push_str(&format!("{{{}}}", parts.join(",")));
                }
                line.push_str(&format!(" {value:?}"));
                if let Some(t) = ts {
                    line.push_str(&format!(" {t}"));
                }
                let e = parse(&format!("{line}\n"), Format::Prometheus).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
                let s = &e.samples[0];
                prop_assert_eq!(&s.name, &name);
                let want: Vec<(String, String)> = labels.into_iter().collect();
                prop_assert_eq!(&s.labels, &want);
                prop_assert!(s.value == value || (s.value.is_nan() && value.is_nan()));
                prop_assert_eq!(s.timestamp_ms, ts);
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = parse(&text, Format::Prometheus);
                let _ = parse(&text, Format::OpenMetrics);
                let _ = parse_with(&text, Format::Prometheus, |_| true);
                let _ = parse_with(&text, Format::OpenMetrics, |_| true);
            }

            /// The scraper's fast path reads the same values, timestamps, exemplars and
            /// series ranges as a full parse, and accepts and refuses the same bodies.
            #[test]
            fn known_series_parse_the_same_without_labels(
                lines in proptest::collection::vec((
                    "[a-z_]{1,8}",
                    proptest::collection::btree_map("[a-z]{1,4}", "[ -~]{0,8}", 0..3),
                    any::<i32>(),
                    proptest::option::of("[{}\\\\ a-z=\",]{0,6}"),
                ), 1..8),
            ) {
                let mut body = String::new();
                for (name, labels, v, junk) in &lines {
                    body.push_str(name);
                    if !labels.is_empty() {
                        let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                        body.push_str(&format!("{{{}}}", parts.join(",")));
                    }
                    body.push_str(&junk.clone().unwrap_or_default());
                    body.push_str(&format!(" {v}\n"));
                }
                let full = parse(&body, Format::Prometheus);
                let known: std::collections::HashSet<String> = match &full {
                    Ok(e) => e.samples.iter().map(|s| body[s.series.clone()].to_string()).collect(),
                    Err(_) => Default::default(),
                };
                let fast = parse_with(&body, Format::Prometheus, |k| known.contains(k));
                match (full, fast) {
                    (Ok(a), Ok(b)) => {
                        prop_assert_eq!(a.samples.len(), b.samples.len());
                        for (x, y) in a.samples.iter().zip(&b.samples) {
                            prop_assert_eq!(x.value, y.value);
                            prop_assert_eq!(x.timestamp_ms, y.timestamp_ms);
                            prop_assert_eq!(&x.series, &y.series);
                            prop_assert!(y.name.is_empty() && y.labels.is_empty());
                        }
                    }
                    (Err(a), Err(b)) => prop_assert_eq!(a.line, b.line),
                    (a, b) => prop_assert!(false, "full {:?} vs fast {:?}", a.map(|e| e.samples.len()), b.map(|e| e.samples.len())),
                }
            }
        }
    }
}
