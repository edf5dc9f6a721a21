//! Evaluation of LogQL over any [`LogRead`].
//!
//! Lines are fetched through the log index with a prefilter made from the query (the
//! stream selector's exact values, the whole words of line filters), in pages walking
//! the time range, and every stage then runs exactly on each line: the index narrows,
//! the pipeline decides. Metric queries compute each range aggregation into series with
//! one value per step and hand the rest of the query to Triad's PromQL engine, which
//! reads them as the series `__logql_<i>`.

use std::collections::HashMap;
use std::time::Instant;

use triad_model::LogRecord;
use triad_model::metric::{Labels, MatchOp, Matcher, SeriesSamples, stale_nan};
use triad_model::store::{
    LOG_LONG_WORD, LOG_WORD_MAX_BYTES, LogQuery, LogRead, MetricRead, StoreError, StoreResult,
};
use triad_promql::{Engine, EvalError, Limits, QueryValue};

use super::ast::*;
use super::pipeline::{self, ERROR, Entry, Outcome, sanitize};

/// First page of lines fetched from the store; pages grow to [`MAX_PAGE`].
const FIRST_PAGE: usize = 1_000;
/// Largest page of lines fetched at once.
const MAX_PAGE: usize = 50_000;

/// Why a LogQL query failed.
#[derive(Debug, thiserror::Error)]
pub enum LogqlError {
    /// The query is not valid (`bad_data`, 400).
    #[error("{0}")]
    BadQuery(String),
    /// Evaluation failed or hit a limit (400, as Loki).
    #[error("{0}")]
    Execution(String),
    /// Storage failed (500).
    #[error("{0}")]
    Storage(String),
}

impl From<StoreError> for LogqlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidQuery(m) => LogqlError::BadQuery(m),
            StoreError::Internal(m) => LogqlError::Storage(m),
        }
    }
}

impl From<EvalError> for LogqlError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::BadData(m) => LogqlError::BadQuery(m),
            EvalError::Storage(m) => LogqlError::Storage(m),
            other => LogqlError::Execution(other.to_string()),
        }
    }
}

/// What a query read, for Loki's `stats`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Lines read from the store (after the index, before the pipeline).
    pub lines: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Pages fetched.
    pub pages: u64,
    /// Sources that did not answer.
    pub warnings: Vec<String>,
}

/// A line's labels, sorted by name.
pub type LabelSet = Vec<(String, String)>;

/// Lines grouped into streams by their labels, streams in the order of their first
/// line, lines in the order given.
pub fn group_streams(lines: impl IntoIterator<Item = (LabelSet, i64, String)>) -> Vec<Stream> {
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut out: Vec<Stream> = Vec::new();
    for (labels, ts, line) in lines {
        match index.get(&labels) {
            Some(&i) => out[i].entries.push((ts, line)),
            None => {
                index.insert(labels.clone(), out.len());
                out.push(Stream {
                    labels,
                    entries: vec![(ts, line)],
                });
            }
        }
    }
    out
}

/// One stream of a log query's answer: labels and `(ts ns, line)` in query order.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The labels.
    pub labels: Vec<(String, String)>,
    /// The lines.
    pub entries: Vec<(i64, String)>,
}

/// A log query's parameters.
#[derive(Debug, Clone, Copy)]
pub struct LogParams {
    /// Inclusive start, ns.
    pub start_ns: i64,
    /// Exclusive end, ns.
    pub end_ns: i64,
    /// Most lines.
    pub limit: usize,
    /// Oldest first (`direction=forward`).
    pub forward: bool,
}

/// The evaluator.
pub struct Evaluator<'a> {
    /// Where lines come from.
    pub logs: &'a dyn LogRead,
    /// Whose.
    pub tenant: &'a str,
    /// PromQL limits for the metric part (samples, timeout).
    pub limits: Limits,
    /// Most series a metric query may build.
    pub max_series: usize,
}

/// The labels a stored record has in LogQL: `service_name`, `level`, `host`, `source`,
/// `trace_id`, `span_id` and its attributes (names sanitized; a name taken by one of the
/// former keeps the former).
pub fn record_labels(r: &LogRecord) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = Vec::with_capacity(6 + r.attributes.len());
    let mut push = |k: &str, v: String| {
        if !v.is_empty() && !labels.iter().any(|(n, _)| n == k) {
            labels.push((k.to_string(), v));
        }
    };
    push("service_name", r.service.clone());
    push("level", r.level());
    push("host", r.host.clone());
    push("source", r.source.clone());
    if let Some(t) = r.trace_id {
        push("trace_id", t.to_hex());
    }
    if let Some(s) = r.span_id {
        push("span_id", s.to_hex());
    }
    for kv in &r.attributes {
        push(&sanitize(&kv.key), kv.value.to_text());
    }
    labels.sort();
    labels
}

/// Whether a line's labels (before its pipeline) satisfy the stream selector: the
/// index only narrows, this decides.
pub fn selected(expr: &LogExpr, e: &Entry) -> bool {
    expr.matchers
        .iter()
        .all(|m| m.matches(e.get(&m.name).unwrap_or("")))
}

/// A stored record as a line entering a pipeline: its LogQL labels and its body.
pub fn entry_of(r: LogRecord) -> Entry {
    Entry {
        ts: r.timestamp_ns,
        labels: record_labels(&r),
        line: r.body,
    }
}

/// The stream selector, then the pipeline: what `expr` makes of a line.
pub fn apply(expr: &LogExpr, e: &mut Entry) -> Outcome {
    if selected(expr, e) {
        pipeline::run(&expr.stages, e)
    } else {
        Outcome::Dropped
    }
}

/// The tantivy query that finds a superset of what `expr`'s selector and leading line
/// filters select (empty: everything).
pub fn prefilter(expr: &LogExpr) -> String {
    let mut clauses: Vec<String> = Vec::new();
    for m in &expr.matchers {
        let field = match m.name.as_str() {
            "service_name" => "service".to_string(),
            "level" => "level".into(),
            "host" => "host".into(),
            "source" => "source".into(),
            "trace_id" => "trace_id".into(),
            // Only `env` can be the attribute `env`; `k8s_pod` may be `k8s.pod`.
            n if n.chars().all(|c| c.is_ascii_alphanumeric()) => format!("attributes.{n}"),
            _ => continue,
        };
        let attribute = field.starts_with("attributes.");
        let values: Vec<&str> = match m.op {
            MatchOp::Equal if !m.value.is_empty() => vec![m.value.as_str()],
            // `a|b|c` of plain words: any of them.
            MatchOp::Regex
                if !m.value.is_empty()
                    && m.value.split('|').all(|v| {
                        !v.is_empty()
                            && v.chars()
                                .all(|c| c.is_alphanumeric() || "_-.:/".contains(c))
                    }) =>
            {
                if m.value.contains('.') {
                    continue;
                }
                m.value.split('|').collect()
            }
            _ => continue,
        };
        let usable = values.iter().all(|v| {
            !v.contains(['"', '\\'])
                && (field != "trace_id"
                    || (v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit())))
                // Attribute numbers, booleans and dates are not text terms.
                && (!attribute
                    || (v.starts_with(|c: char| c.is_alphabetic())
                        && v.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                        && !matches!(v.to_ascii_lowercase().as_str(), "true" | "false")))
        });
        if !usable {
            continue;
        }
        let terms: Vec<String> = values
            .iter()
            .map(|v| {
                if field == "trace_id" {
                    format!("trace_id:{v}")
                } else {
                    format!("{field}:\"{v}\"")
                }
            })
            .collect();
        clauses.push(if terms.len() == 1 {
            terms[0].clone()
        } else {
            format!("({})", terms.join(" OR "))
        });
    }
    for stage in &expr.stages {
        match stage {
            Stage::Line { op, texts, .. } => {
                let substrings: Option<Vec<String>> = match op {
                    LineOp::Contains => Some(texts.clone()),
                    LineOp::Regex => texts.iter().map(|t| literal_of_regex(t)).collect(),
                    _ => None,
                };
                let Some(subs) = substrings else { continue };
                // Every alternative must narrow, or the filter cannot.
                let Some(alts) = subs
                    .iter()
                    .map(|s| needle_query(s).map(|q| format!("({q})")))
                    .collect::<Option<Vec<String>>>()
                else {
                    continue;
                };
                clauses.push(if alts.len() == 1 {
                    alts[0].clone()
                } else {
                    format!("({})", alts.join(" OR "))
                });
            }
            // Filters and parsers leave the line as it is stored.
            Stage::Filter(_)
            | Stage::Json(_)
            | Stage::Logfmt { .. }
            | Stage::Regexp(_)
            | Stage::PatternParser(_)
            | Stage::Drop(_)
            | Stage::Keep(_)
            | Stage::LabelFormat(_) => {}
            // After these the line is no longer the stored one.
            Stage::LineFormat(_) | Stage::Decolorize | Stage::Unpack | Stage::Unwrap { .. } => {
                break;
            }
        }
    }
    clauses.join(" AND ")
}

/// The substring a regular expression stands for when it is plain text (optionally
/// case-insensitive: the index is lowercased anyway).
fn literal_of_regex(re: &str) -> Option<String> {
    let text = re.strip_prefix("(?i)").unwrap_or(re);
    (!text.is_empty() && !text.contains(|c: char| "\\.+*?()|[]{}^$".contains(c)))
        .then(|| text.to_string())
}

/// The index query a line containing `s` must match (`None` when the index cannot
/// narrow it): each word of `s` (as the log tokenizer splits and lowercases them) that
/// is whole in `s` as a term; a word touching an end of `s` may be part of a longer one,
/// so it matches the terms that end with it, start with it or contain it (a regular
/// expression over the term dictionary), or the term long words are indexed as.
fn needle_query(s: &str) -> Option<String> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (start, i < s.len() && is_word(c)) {
            (None, true) => start = Some(i),
            (Some(from), false) => {
                words.push((from, i));
                start = None;
            }
            _ => {}
        }
    }
    let long = format!("body:\"{LOG_LONG_WORD}\"");
    let mut clauses = Vec::new();
    for (from, to) in words {
        let w = s[from..to].to_lowercase();
        let (open_left, open_right) = (from == 0, to == s.len());
        if w.len() > LOG_WORD_MAX_BYTES {
            clauses.push(long.clone());
        } else if !open_left && !open_right {
            clauses.push(format!("body:\"{w}\""));
        } else if w.chars().count() >= 3 {
            // Words of alphanumerics and `_` need no escaping in a regular expression.
            let re = match (open_left, open_right) {
                (true, true) => format!(".*{w}.*"),
                (true, false) => format!(".*{w}"),
                _ => format!("{w}.*"),
            };
            clauses.push(format!("(body:/{re}/ OR {long})"));
        }
    }
    (!clauses.is_empty()).then(|| clauses.join(" AND "))
}

impl Evaluator<'_> {
    /// Walks the lines matching `prefilter` in `[start_ns, end_ns)` in time order
    /// (newest first unless `forward`), calling `visit` with each until it says stop.
    pub(crate) fn scan(
        &self,
        prefilter: &str,
        start_ns: i64,
        end_ns: i64,
        forward: bool,
        stats: &mut Stats,
        mut visit: impl FnMut(LogRecord) -> bool,
    ) -> Result<(), LogqlError> {
        let (mut lo, mut hi) = (start_ns, end_ns);
        let mut page = FIRST_PAGE;
        while lo < hi {
            let res = self.logs.search(&LogQuery {
                tenant: self.tenant.to_string(),
                query: prefilter.to_string(),
                start_ns: lo,
                end_ns: hi,
                limit: page,
                histogram_buckets: 0,
                oldest_first: forward,
            })?;
            stats.pages += 1;
            stats.warnings.extend(res.warnings);
            let full = res.hits.len() >= page;
            let mut hits = res.hits;
            // A full page may end inside a run of lines with the same timestamp: those
            // are read again, whole, with the next page.
            let boundary = hits.last().map(|h| h.timestamp_ns);
            if full {
                let b = boundary.unwrap_or(lo);
                hits.retain(|h| h.timestamp_ns != b);
                if hits.is_empty() {
                    // One timestamp fills the page: read it with a larger one.
                    page = page.saturating_mul(4);
                    continue;
                }
                if forward {
                    lo = b;
                } else {
                    hi = b + 1;
                }
            }
            for h in hits {
                stats.lines += 1;
                stats.bytes += h.body.len() as u64;
                if !visit(h) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            page = (page * 4).min(MAX_PAGE);
        }
        Ok(())
    }

    /// A log query: at most `p.limit` lines after the pipeline, grouped into streams.
    pub fn logs(
        &self,
        expr: &LogExpr,
        p: LogParams,
        stats: &mut Stats,
    ) -> Result<Vec<Stream>, LogqlError> {
        let mut kept: Vec<(LabelSet, i64, String)> = Vec::new();
        if p.limit == 0 {
            return Ok(Vec::new());
        }
        self.scan(
            &prefilter(expr),
            p.start_ns,
            p.end_ns,
            p.forward,
            stats,
            |r| {
                let mut e = entry_of(r);
                if let Outcome::Kept(_) = apply(expr, &mut e) {
                    kept.push((e.labels, e.ts, e.line));
                }
                kept.len() < p.limit
            },
        )?;
        Ok(group_streams(kept))
    }

    /// A metric query over the steps `start_ms + k * step_ms` up to `end_ms`; an instant
    /// query is one step (`start_ms == end_ms`).
    pub fn metric(
        &self,
        q: &MetricQuery,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        instant: bool,
        stats: &mut Stats,
    ) -> Result<QueryValue, LogqlError> {
        let started = Instant::now();
        let step_ms = step_ms.max(1);
        if end_ms < start_ms {
            return Err(LogqlError::BadQuery(
                "the end must not be before the start".into(),
            ));
        }
        let steps = ((end_ms - start_ms) / step_ms) as usize + 1;
        if steps > 11_000 {
            return Err(LogqlError::BadQuery(
                "exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter".into(),
            ));
        }
        let mut computed = Computed::default();
        let summed = summed_groupings(&q.promql);
        for (i, agg) in q.ranges.iter().enumerate() {
            let name = format!("__logql_{i}");
            let series = self.range_agg(agg, summed.get(&name), start_ms, step_ms, steps, stats)?;
            if started.elapsed() > self.limits.timeout {
                return Err(LogqlError::Execution("query timed out".into()));
            }
            computed.series.insert(name, series);
        }
        let engine = Engine::new(&computed, self.tenant, self.limits.clone());
        let value = if instant {
            engine.instant(&q.promql, start_ms)?
        } else {
            QueryValue::Matrix(engine.range(&q.promql, start_ms, end_ms, step_ms)?)
        };
        Ok(strip_names(value))
    }

    /// One range aggregation as series with a value (or a staleness marker) per step.
    fn range_agg(
        &self,
        agg: &RangeAgg,
        summed: Option<&Grouping>,
        start_ms: i64,
        step_ms: i64,
        steps: usize,
        stats: &mut Stats,
    ) -> Result<Vec<SeriesSamples>, LogqlError> {
        let step_ns = step_ms * 1_000_000;
        let first_t = start_ms * 1_000_000 - agg.offset_ns;
        let last_t = first_t + (steps as i64 - 1) * step_ns;
        // Windows are (t - range, t]: the store's range is [from, to).
        let from = first_t - agg.range_ns + 1;
        let to = last_t + 1;
        let mut series: HashMap<LabelSet, Vec<(i64, f64)>> = HashMap::new();
        // Under a `sum`, an additive function can count under the sum's labels only: the
        // same sums from far fewer series (every line's trace and span IDs are labels).
        let additive = matches!(
            agg.func,
            RangeFn::Count | RangeFn::Rate | RangeFn::Bytes | RangeFn::BytesRate | RangeFn::Sum
        );
        let mut all: Vec<i64> = Vec::new();
        let mut too_many = false;
        let mut error: Option<String> = None;
        self.scan(&prefilter(&agg.log), from, to, true, stats, |r| {
            let mut e = entry_of(r);
            let sample = match apply(&agg.log, &mut e) {
                Outcome::Dropped => return true,
                Outcome::Kept(s) => s,
            };
            if let Some(kind) = e.get(ERROR) {
                error = Some(kind.to_string());
                return false;
            }
            let value = match agg.func {
                RangeFn::Bytes | RangeFn::BytesRate => e.line.len() as f64,
                RangeFn::Count | RangeFn::Absent => 1.0,
                RangeFn::Rate => sample.unwrap_or(1.0),
                _ => sample.unwrap_or(0.0),
            };
            if agg.func == RangeFn::Absent {
                all.push(e.ts);
                return true;
            }
            let mut labels = group(e.labels, &agg.grouping);
            if additive {
                labels = group(labels, &summed.cloned());
            }
            match series.get_mut(&labels) {
                Some(s) => s.push((e.ts, value)),
                None => {
                    if series.len() >= self.max_series {
                        too_many = true;
                        return false;
                    }
                    series.insert(labels, vec![(e.ts, value)]);
                }
            }
            true
        })?;
        if let Some(kind) = error {
            return Err(LogqlError::Execution(format!(
                "pipeline error: '{kind}' for series: use a label filter to intentionally skip this error (e.g | __error__!=\"{kind}\"), or drop it (| drop __error__)"
            )));
        }
        if too_many {
            return Err(LogqlError::Execution(format!(
                "maximum of series ({}) reached for a single query",
                self.max_series
            )));
        }
        let range_s = agg.range_ns as f64 / 1e9;
        let name = |labels: Vec<(String, String)>| -> Labels {
            let mut pairs = labels;
            pairs.push(("__name__".into(), "__logql".into()));
            Labels::new(pairs)
        };
        let mut out = Vec::with_capacity(series.len().max(1));
        if agg.func == RangeFn::Absent {
            all.sort_unstable();
            let labels = agg
                .log
                .matchers
                .iter()
                .filter(|m| m.op == MatchOp::Equal)
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            let mut samples = Vec::with_capacity(steps);
            for k in 0..steps {
                let t = first_t + k as i64 * step_ns;
                let lo = all.partition_point(|&ts| ts <= t - agg.range_ns);
                let hi = all.partition_point(|&ts| ts <= t);
                let at = start_ms + k as i64 * step_ms;
                samples.push((at, if hi > lo { stale_nan() } else { 1.0 }));
            }
            out.push(SeriesSamples {
                labels: name(labels),
                samples,
            });
            return Ok(out);
        }
        for (labels, mut samples) in series {
            samples.sort_by_key(|s| s.0);
            let mut values = Vec::with_capacity(steps);
            let (mut lo, mut hi) = (0, 0);
            for k in 0..steps {
                let t = first_t + k as i64 * step_ns;
                while hi < samples.len() && samples[hi].0 <= t {
                    hi += 1;
                }
                while lo < hi && samples[lo].0 <= t - agg.range_ns {
                    lo += 1;
                }
                let w = &samples[lo..hi];
                let at = start_ms + k as i64 * step_ms;
                values.push((at, window_value(agg, w, range_s).unwrap_or_else(stale_nan)));
            }
            out.push(SeriesSamples {
                labels: name(labels),
                samples: values,
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// For each range aggregation that a `sum` aggregates directly (`sum by (a)
/// (__logql_0)`), the sum's grouping.
fn summed_groupings(promql: &str) -> HashMap<String, Grouping> {
    use promql_parser::parser::{Expr, LabelModifier};
    fn walk(e: &Expr, out: &mut HashMap<String, Grouping>) {
        match e {
            Expr::Aggregate(a) => {
                let mut inner: &Expr = &a.expr;
                while let Expr::Paren(p) = inner {
                    inner = &p.expr;
                }
                if a.op.to_string() == "sum"
                    && let Expr::VectorSelector(vs) = inner
                    && let Some(name) = vs.name.as_ref().filter(|n| n.starts_with("__logql_"))
                {
                    let g = match &a.modifier {
                        None => Grouping::By(Vec::new()),
                        Some(LabelModifier::Include(l)) => Grouping::By(l.labels.clone()),
                        Some(LabelModifier::Exclude(l)) => Grouping::Without(l.labels.clone()),
                    };
                    out.insert(name.clone(), g);
                }
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Subquery(q) => walk(&q.expr, out),
            Expr::Call(c) => {
                for a in &c.args.args {
                    walk(a, out);
                }
            }
            _ => {}
        }
    }
    let mut out = HashMap::new();
    if let Ok(e) = promql_parser::parser::parse(promql) {
        walk(&e, &mut out);
    }
    out
}

/// The labels a sample is counted under: all, or those `by`/`without` keeps.
fn group(labels: Vec<(String, String)>, g: &Option<Grouping>) -> Vec<(String, String)> {
    match g {
        None => labels,
        Some(Grouping::By(names)) => labels
            .into_iter()
            .filter(|(n, _)| names.contains(n))
            .collect(),
        Some(Grouping::Without(names)) => labels
            .into_iter()
            .filter(|(n, _)| !names.contains(n))
            .collect(),
    }
}

/// A range function over the samples of one window (none when it has none).
fn window_value(agg: &RangeAgg, w: &[(i64, f64)], range_s: f64) -> Option<f64> {
    if w.is_empty() {
        return None;
    }
    let n = w.len() as f64;
    let sum = || w.iter().map(|s| s.1).sum::<f64>();
    let variance = || {
        let mean = sum() / n;
        w.iter().map(|s| (s.1 - mean).powi(2)).sum::<f64>() / n
    };
    Some(match agg.func {
        RangeFn::Count => n,
        RangeFn::Rate | RangeFn::BytesRate => sum() / range_s,
        RangeFn::Bytes | RangeFn::Sum => sum(),
        RangeFn::Absent => return None,
        RangeFn::Avg => sum() / n,
        RangeFn::Min => w.iter().map(|s| s.1).fold(f64::INFINITY, f64::min),
        RangeFn::Max => w.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max),
        RangeFn::Stdvar => variance(),
        RangeFn::Stddev => variance().sqrt(),
        RangeFn::First => w[0].1,
        RangeFn::Last => w[w.len() - 1].1,
        RangeFn::Quantile => {
            let mut v: Vec<f64> = w.iter().map(|s| s.1).collect();
            quantile(agg.param.unwrap_or(0.5), &mut v)
        }
    })
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
fn quantile(q: f64, v: &mut [f64]) -> f64 {
    if v.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    let rank = q * (v.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(v.len() - 1);
    let weight = rank - rank.floor();
    v[lower] * (1.0 - weight) + v[upper] * weight
}

/// LogQL series have no metric name.
fn strip_names(v: QueryValue) -> QueryValue {
    let strip = |l: Labels| -> Labels {
        if l.get("__name__").is_none() {
            return l;
        }
        Labels::new(
            l.iter()
                .filter(|(n, _)| *n != "__name__")
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    };
    match v {
        QueryValue::Vector(s) => {
            QueryValue::Vector(s.into_iter().map(|(l, t, v)| (strip(l), t, v)).collect())
        }
        QueryValue::Matrix(s) => QueryValue::Matrix(
            s.into_iter()
                .map(|s| SeriesSamples {
                    labels: strip(s.labels),
                    samples: s.samples,
                })
                .collect(),
        ),
        other => other,
    }
}

/// The range aggregations' results, as a metric store the PromQL engine reads.
#[derive(Default)]
struct Computed {
    series: HashMap<String, Vec<SeriesSamples>>,
}

impl MetricRead for Computed {
    fn select(
        &self,
        _: &str,
        matchers: &[Matcher],
        _: i64,
        _: i64,
    ) -> StoreResult<Vec<SeriesSamples>> {
        let Some(name) = matchers
            .iter()
            .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
        else {
            return Err(StoreError::InvalidQuery(
                "a LogQL metric query reads logs through range aggregations such as count_over_time({…}[5m])".into(),
            ));
        };
        Ok(self
            .series
            .get(&name.value)
            .map(|all| {
                all.iter()
                    .filter(|s| {
                        matchers
                            .iter()
                            .filter(|m| m.name != "__name__")
                            .all(|m| m.matches_labels(&s.labels))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn series(&self, _: &str, _: &[Vec<Matcher>], _: i64, _: i64) -> StoreResult<Vec<Labels>> {
        Ok(Vec::new())
    }

    fn label_names(&self, _: &str, _: &[Vec<Matcher>], _: i64, _: i64) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }

    fn label_values(
        &self,
        _: &str,
        _: &str,
        _: &[Vec<Matcher>],
        _: i64,
        _: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }

    fn metadata(
        &self,
        _: &str,
        _: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, Vec<triad_model::metric::MetricMetadata>>>
    {
        Ok(Default::default())
    }

    fn exemplars(
        &self,
        _: &str,
        _: &[Vec<Matcher>],
        _: i64,
        _: i64,
    ) -> StoreResult<Vec<triad_model::metric::SeriesExemplars>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn log_expr(q: &str) -> LogExpr {
        match parse(q).unwrap() {
            Query::Log(l) => l,
            Query::Metric(_) => panic!("not a log query"),
        }
    }

    #[test]
    fn prefilters_narrow_only_where_exact_afterwards() {
        let long = format!("body:\"{LOG_LONG_WORD}\"");
        assert_eq!(
            needle_query("rror: connection refused").unwrap(),
            format!(
                "(body:/.*rror/ OR {long}) AND body:\"connection\" AND (body:/refused.*/ OR {long})"
            )
        );
        assert_eq!(needle_query(" Timeout ").unwrap(), "body:\"timeout\"");
        assert_eq!(
            needle_query("ETIMEDOUT").unwrap(),
            format!("(body:/.*etimedout.*/ OR {long})")
        );
        assert_eq!(needle_query("ab"), None, "too short to narrow");
        assert_eq!(needle_query(" = "), None);
        assert_eq!(
            needle_query(&format!(" {} ", "x".repeat(300))).unwrap(),
            long
        );
        assert_eq!(
            prefilter(&log_expr(
                r#"{service_name="api", level=~"error|warn", env="prod", k8s_pod="x"} |= " Timeout " |~ "(?i) refused " != " ok " | json | line_format "x" |= " y ""#
            )),
            r#"service:"api" AND (level:"error" OR level:"warn") AND attributes.env:"prod" AND (body:"timeout") AND (body:"refused")"#
        );
        assert_eq!(
            prefilter(&log_expr(r#"{service_name=~"api.*"} |= "x""#)),
            ""
        );
        assert_eq!(
            prefilter(&log_expr(r#"{env="500"}"#)),
            "",
            "numbers are not text terms"
        );
        assert_eq!(
            prefilter(&log_expr(r#"{job:x="a"}"#)),
            "",
            "not a field name tantivy reads"
        );
        assert_eq!(
            prefilter(&log_expr(r#"{host="a"} |= " b " or " c d ""#)),
            r#"host:"a" AND ((body:"b") OR (body:"c" AND body:"d"))"#
        );
    }

    #[test]
    fn sums_push_their_grouping_down() {
        let g = summed_groupings(
            "sum by (a, b) (__logql_0) / sum(rate_x) + sum without (c) ((__logql_1)) + max(__logql_2) + sum(abs(__logql_3))",
        );
        assert_eq!(
            g.get("__logql_0"),
            Some(&Grouping::By(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            g.get("__logql_1"),
            Some(&Grouping::Without(vec!["c".into()]))
        );
        assert_eq!(g.get("__logql_2"), None, "max is not additive");
        assert_eq!(g.get("__logql_3"), None, "not directly under the sum");
        assert!(summed_groupings("sum(").is_empty());
    }

    #[test]
    fn windows_compute_each_function() {
        let agg = |func, param| RangeAgg {
            func,
            param,
            log: log_expr(r#"{a="b"}"#),
            range_ns: 2_000_000_000,
            offset_ns: 0,
            grouping: None,
        };
        let w = [(1, 1.0), (2, 3.0), (3, 2.0), (4, 6.0)];
        for (f, p, want) in [
            (RangeFn::Count, None, 4.0),
            (RangeFn::Rate, None, 6.0),
            (RangeFn::Sum, None, 12.0),
            (RangeFn::Avg, None, 3.0),
            (RangeFn::Min, None, 1.0),
            (RangeFn::Max, None, 6.0),
            (RangeFn::First, None, 1.0),
            (RangeFn::Last, None, 6.0),
            (RangeFn::Stdvar, None, 3.5),
            (RangeFn::Quantile, Some(0.5), 2.5),
        ] {
            assert_eq!(window_value(&agg(f, p), &w, 2.0), Some(want), "{f:?}");
        }
        assert_eq!(window_value(&agg(RangeFn::Count, None), &[], 2.0), None);
    }
}
