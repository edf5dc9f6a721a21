//! Loki's query API on the query server, so Grafana's Loki data source, `logcli` and
//! Loki's tools read Triad's logs unchanged: `/loki/api/v1/query`, `/query_range`,
//! `/labels`, `/label/{name}/values`, `/series`, `/index/stats`, `/index/volume`,
//! `/index/volume_range`, `/detected_fields`, `/detected_labels`, `/tail` (WebSocket)
//! and `/status/buildinfo`, in Loki's response shapes. Queries are LogQL
//! ([`crate::logql`]).
//!
//! Times are Loki's: Unix nanoseconds, Unix seconds (10 digits or fewer, or with a
//! fraction), RFC 3339, or `now`/`now-1h`. Errors are plain text with 400 (the query
//! or a parameter) or 500, as Loki answers.
//!
//! Labels: `service_name`, `level`, `host` and `source` come from the index's term
//! dictionary over the whole range (exact); other labels (attributes, trace and span
//! IDs) and everything asked with a `query` are read from the newest
//! [`SAMPLE_LINES`] matching lines of the range.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};
use triad_model::metric::SeriesSamples;
use triad_promql::QueryValue;
use triad_promql::format::result_json;

use crate::Scoped;
use crate::logql::ast::{LogExpr, Query};
use crate::logql::eval::{apply, entry_of, group_streams, prefilter};
use crate::logql::pipeline::{self, Entry, Outcome, logfmt_pairs};
use crate::logql::{Evaluator, LogParams, LogqlError, Stats, Stream, parse};
use crate::prom_api::{Params, build_info};

/// Lines read to list labels and values other than the indexed ones.
pub const SAMPLE_LINES: usize = 10_000;
/// Default range of queries without `start`: the last hour, as Loki.
const DEFAULT_RANGE_NS: i64 = 3_600_000_000_000;
/// Most series one metric query may build.
const MAX_SERIES: usize = 100_000;
/// Default number of lines.
const DEFAULT_LIMIT: usize = 100;
/// The labels whose values the index lists (LogQL name, index field).
const INDEXED: [(&str, &str); 4] = [
    ("service_name", "service"),
    ("level", "level"),
    ("host", "host"),
    ("source", "source"),
];

/// An error in Loki's shape: plain text.
pub struct LokiError(StatusCode, String);

impl LokiError {
    fn bad(msg: impl Into<String>) -> LokiError {
        LokiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(error = %self.1, "Loki API query failed");
        }
        (self.0, self.1).into_response()
    }
}

impl From<LogqlError> for LokiError {
    fn from(e: LogqlError) -> Self {
        match e {
            LogqlError::BadQuery(m) => LokiError::bad(m),
            LogqlError::Execution(m) => LokiError::bad(m),
            LogqlError::Storage(m) => LokiError(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl From<triad_model::store::StoreError> for LokiError {
    fn from(e: triad_model::store::StoreError) -> Self {
        LogqlError::from(e).into()
    }
}

type LokiResult = Result<Response, LokiError>;

/// A time as Loki reads it, in ns.
pub fn loki_time_ns(v: &str, now_ns: i64) -> Result<i64, String> {
    let v = v.trim();
    if let Some(rel) = v.strip_prefix("now") {
        if rel.is_empty() {
            return Ok(now_ns);
        }
        let (sign, d) = match rel.split_at(1) {
            ("-", d) => (-1, d),
            ("+", d) => (1, d),
            _ => return Err(format!("cannot parse {v:?} as a time")),
        };
        let d = crate::logql::parse::duration_ns(d)
            .ok_or_else(|| format!("cannot parse {v:?} as a time"))?;
        return Ok(now_ns + sign * d);
    }
    if v.contains('.')
        && let Ok(secs) = v.parse::<f64>()
    {
        if !secs.is_finite() || secs.abs() > 9.2e9 {
            return Err(format!("time {v:?} is out of range"));
        }
        return Ok((secs * 1e9).round() as i64);
    }
    match v.parse::<i64>() {
        Ok(n) if v.trim_start_matches('-').len() <= 10 => n
            .checked_mul(1_000_000_000)
            .ok_or_else(|| format!("time {v:?} is out of range")),
        Ok(n) => Ok(n),
        Err(_) => crate::time::parse_time_ns(v),
    }
}

/// A step or range as Loki reads it (`15s`, `1m`, or seconds `15` / `0.5`), in ns.
fn step_ns(v: &str) -> Result<i64, String> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        if !secs.is_finite() || secs <= 0.0 || secs > 9.2e9 {
            return Err(format!("invalid step {v:?}"));
        }
        return Ok((secs * 1e9).round() as i64);
    }
    crate::logql::parse::duration_ns(v.trim())
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("invalid step {v:?}: use a duration such as 15s or seconds"))
}

/// Loki's default step: about 250 points over the range, whole seconds, at least one.
fn default_step_ns(start_ns: i64, end_ns: i64) -> i64 {
    ((end_ns - start_ns) / 250 / 1_000_000_000).max(1) * 1_000_000_000
}

struct Req {
    p: Params,
    now: i64,
}

impl Req {
    fn new(q: Option<String>, headers: &HeaderMap, body: &Bytes) -> Req {
        Req {
            p: Params::new(q, headers, body),
            now: triad_model::now_ns(),
        }
    }

    fn time(&self, name: &str, default: i64) -> Result<i64, LokiError> {
        match self.p.get(name) {
            None => Ok(default),
            Some(v) => loki_time_ns(v, self.now)
                .map_err(|e| LokiError::bad(format!("invalid {name}: {e}"))),
        }
    }

    /// `start` and `end` (defaults: the last hour).
    fn range(&self) -> Result<(i64, i64), LokiError> {
        let end = self.time("end", self.now)?;
        let start = self.time("start", end - DEFAULT_RANGE_NS)?;
        if end < start {
            return Err(LokiError::bad(
                "the end time must not be before the start time",
            ));
        }
        Ok((start, end))
    }

    /// [`Req::range`], within the tenant's `limits.max_query_range_secs`.
    fn range_for(&self, st: &Scoped) -> Result<(i64, i64), LokiError> {
        let (start, end) = self.range()?;
        st.limits
            .check_range(&st.tenant, start, end)
            .map_err(|r| LokiError::bad(r.message))?;
        Ok((start, end))
    }

    fn limit(&self, max: usize) -> Result<usize, LokiError> {
        let limit = match self.p.get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| LokiError::bad(format!("invalid limit {l:?}")))?,
        };
        if limit > max {
            return Err(LokiError::bad(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max})"
            )));
        }
        Ok(limit)
    }

    fn forward(&self) -> Result<bool, LokiError> {
        match self
            .p
            .get("direction")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("backward") => Ok(false),
            Some("forward") => Ok(true),
            Some(d) => Err(LokiError::bad(format!(
                "invalid direction {d:?}: forward or backward"
            ))),
        }
    }

    fn query(&self) -> Result<Query, LokiError> {
        let q = self
            .p
            .get("query")
            .ok_or_else(|| LokiError::bad("query parameter is missing"))?;
        parse(q).map_err(|e| LokiError::bad(format!("parse error : {e}")))
    }

    /// An optional `query` that must be a stream selector with a pipeline.
    fn selector(&self, name: &str) -> Result<Option<LogExpr>, LokiError> {
        match self.p.get(name) {
            None => Ok(None),
            Some(q) => match parse(q).map_err(|e| LokiError::bad(format!("parse error : {e}")))? {
                Query::Log(l) => Ok(Some(l)),
                Query::Metric(_) => Err(LokiError::bad(format!(
                    "{name} must be a log selector such as {{service_name=\"api\"}}"
                ))),
            },
        }
    }
}

fn evaluator(st: &Scoped) -> Evaluator<'_> {
    Evaluator {
        logs: st.logs.as_ref(),
        tenant: &st.tenant,
        limits: st.query_limits(&st.tenant),
        max_series: MAX_SERIES,
    }
}

async fn blocking<T: Send + 'static>(
    st: Scoped,
    f: impl FnOnce(&Scoped) -> Result<T, LokiError> + Send + 'static,
) -> Result<T, LokiError> {
    tokio::task::spawn_blocking(move || f(&st))
        .await
        .map_err(|e| {
            LokiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("query task failed: {e}"),
            )
        })?
}

fn labels_json(labels: &[(String, String)]) -> J {
    J::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), J::from(v.as_str())))
            .collect(),
    )
}

fn streams_json(streams: &[Stream]) -> J {
    J::Array(
        streams
            .iter()
            .map(|s| {
                json!({
                    "stream": labels_json(&s.labels),
                    "values": s.entries.iter().map(|(ts, line)| json!([ts.to_string(), line])).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn stats_json(stats: &Stats, took: Duration, returned: usize) -> J {
    let secs = took.as_secs_f64().max(1e-9);
    json!({
        "summary": {
            "bytesProcessedPerSecond": (stats.bytes as f64 / secs) as u64,
            "linesProcessedPerSecond": (stats.lines as f64 / secs) as u64,
            "totalBytesProcessed": stats.bytes,
            "totalLinesProcessed": stats.lines,
            "totalEntriesReturned": returned,
            "execTime": took.as_secs_f64(),
            "queueTime": 0,
            "subqueries": stats.pages,
            "totalPostFilterLines": returned,
            "totalStructuredMetadataBytesProcessed": 0,
            "splits": 0,
            "shards": 0,
        },
    })
}

fn success(data: J, warnings: &[String]) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        // Each page read repeats a missing source's warning: once is enough.
        let distinct: BTreeSet<&String> = warnings.iter().collect();
        body["warnings"] = json!(distinct);
    }
    axum::Json(body).into_response()
}

/// The `data` of a metric answer: Prometheus' result shapes plus Loki's `stats`.
fn metric_data(v: &QueryValue, stats: &Stats, took: Duration) -> J {
    let returned = match v {
        QueryValue::Vector(s) => s.len(),
        QueryValue::Matrix(s) => s.len(),
        _ => 1,
    };
    let mut data = result_json(v);
    data["stats"] = stats_json(stats, took, returned);
    data
}

/// `GET|POST /loki/api/v1/query`: an instant metric query at `time`.
pub async fn query(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let Query::Metric(m) = r.query()? else {
        return Err(LokiError::bad(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        ));
    };
    let t = r.time("time", r.now)?;
    blocking(st, move |st| {
        let started = Instant::now();
        let mut stats = Stats::default();
        let t_ms = t.div_euclid(1_000_000);
        let v = evaluator(st).metric(&m, t_ms, t_ms, 1, true, &mut stats)?;
        Ok(success(
            metric_data(&v, &stats, started.elapsed()),
            &stats.warnings,
        ))
    })
    .await
}

/// `GET|POST /loki/api/v1/query_range`: lines (`streams`) or a metric range (`matrix`).
pub async fn query_range(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let query = r.query()?;
    let (start, end) = r.range_for(&st)?;
    match query {
        Query::Log(expr) => {
            let params = LogParams {
                start_ns: start,
                end_ns: end,
                limit: r.limit(st.cfg.max_log_hits)?,
                forward: r.forward()?,
            };
            blocking(st, move |st| {
                let started = Instant::now();
                let mut stats = Stats::default();
                let streams = evaluator(st).logs(&expr, params, &mut stats)?;
                let returned = streams.iter().map(|s| s.entries.len()).sum();
                Ok(success(
                    json!({
                        "resultType": "streams",
                        "result": streams_json(&streams),
                        "stats": stats_json(&stats, started.elapsed(), returned),
                    }),
                    &stats.warnings,
                ))
            })
            .await
        }
        Query::Metric(m) => {
            let step = match r.p.get("step") {
                Some(s) => step_ns(s).map_err(LokiError::bad)?,
                None => default_step_ns(start, end),
            };
            blocking(st, move |st| {
                let started = Instant::now();
                let mut stats = Stats::default();
                let v = evaluator(st).metric(
                    &m,
                    start.div_euclid(1_000_000),
                    end.div_euclid(1_000_000),
                    (step / 1_000_000).max(1),
                    false,
                    &mut stats,
                )?;
                Ok(success(
                    metric_data(&v, &stats, started.elapsed()),
                    &stats.warnings,
                ))
            })
            .await
        }
    }
}

/// The label sets of the newest [`SAMPLE_LINES`] lines of the range that `expr`
/// selects (all lines without one), after its pipeline.
fn sampled_labels(
    st: &Scoped,
    expr: Option<&LogExpr>,
    start: i64,
    end: i64,
) -> Result<Vec<Vec<(String, String)>>, LokiError> {
    let mut stats = Stats::default();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let text = expr.map(prefilter).unwrap_or_default();
    let mut n = 0;
    evaluator(st).scan(&text, start, end + 1, false, &mut stats, |r| {
        n += 1;
        let mut e = entry_of(r);
        let kept = match expr {
            Some(x) => matches!(apply(x, &mut e), Outcome::Kept(_)),
            None => true,
        };
        if kept && seen.insert(e.labels.clone()) {
            out.push(e.labels);
        }
        n < SAMPLE_LINES
    })?;
    Ok(out)
}

/// `GET|POST /loki/api/v1/labels`.
pub async fn labels(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let (start, end) = r.range_for(&st)?;
    let expr = r.selector("query")?;
    blocking(st, move |st| {
        let mut names = BTreeSet::new();
        if expr.is_none() {
            for (label, field) in INDEXED {
                if !st
                    .logs
                    .field_values(&st.tenant, field, start, end + 1, 1)?
                    .is_empty()
                {
                    names.insert(label.to_string());
                }
            }
        }
        for labels in sampled_labels(st, expr.as_ref(), start, end)? {
            names.extend(labels.into_iter().map(|(k, _)| k));
        }
        Ok(success(json!(names), &[]))
    })
    .await
}

/// `GET /loki/api/v1/label/{name}/values`.
pub async fn label_values(
    st: Scoped,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let (start, end) = r.range_for(&st)?;
    let expr = r.selector("query")?;
    blocking(st, move |st| {
        let indexed = INDEXED.iter().find(|(l, _)| *l == name).map(|(_, f)| *f);
        let values: BTreeSet<String> = match (indexed, &expr) {
            (Some(field), None) => st
                .logs
                .field_values(&st.tenant, field, start, end + 1, usize::MAX)?
                .into_iter()
                .collect(),
            _ => sampled_labels(st, expr.as_ref(), start, end)?
                .into_iter()
                .filter_map(|l| l.into_iter().find(|(k, _)| *k == name).map(|(_, v)| v))
                .collect(),
        };
        Ok(success(json!(values), &[]))
    })
    .await
}

/// `GET|POST /loki/api/v1/series?match[]=…`: the label sets of lines the selectors
/// select.
pub async fn series(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let (start, end) = r.range_for(&st)?;
    let mut selectors = Vec::new();
    for m in r.p.all("match[]").into_iter().chain(r.p.all("match")) {
        match parse(m).map_err(|e| LokiError::bad(format!("parse error : {e}")))? {
            Query::Log(l) => selectors.push(l),
            Query::Metric(_) => {
                return Err(LokiError::bad(format!("{m:?} is not a stream selector")));
            }
        }
    }
    if selectors.is_empty() {
        return Err(LokiError::bad("no match[] parameter provided"));
    }
    blocking(st, move |st| {
        let mut all = BTreeSet::new();
        for s in &selectors {
            all.extend(sampled_labels(st, Some(s), start, end)?);
        }
        Ok(success(
            J::Array(all.iter().map(|l| labels_json(l)).collect()),
            &[],
        ))
    })
    .await
}

/// Lines, bytes and label sets selected by `expr` over the whole range.
fn tally(
    st: &Scoped,
    expr: &LogExpr,
    start: i64,
    end: i64,
) -> Result<(u64, u64, usize), LokiError> {
    let mut stats = Stats::default();
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut streams = BTreeSet::new();
    evaluator(st).scan(&prefilter(expr), start, end + 1, false, &mut stats, |r| {
        let mut e = entry_of(r);
        if matches!(apply(expr, &mut e), Outcome::Kept(_)) {
            entries += 1;
            bytes += e.line.len() as u64;
            streams.insert(e.labels);
        }
        true
    })?;
    Ok((entries, bytes, streams.len()))
}

/// `GET /loki/api/v1/index/stats?query={…}`: streams, chunks, bytes and entries the
/// selector selects (Triad has no chunks: it answers the number of streams).
pub async fn index_stats(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let (start, end) = r.range_for(&st)?;
    let expr = r
        .selector("query")?
        .ok_or_else(|| LokiError::bad("query parameter is missing"))?;
    blocking(st, move |st| {
        let (entries, bytes, streams) = tally(st, &expr, start, end)?;
        Ok(axum::Json(
            json!({"streams": streams, "chunks": streams, "bytes": bytes, "entries": entries}),
        )
        .into_response())
    })
    .await
}

/// The labels a volume is broken down by: `targetLabels`, or those of the selector.
fn volume_by(r: &Req, expr: &LogExpr) -> Vec<String> {
    match r.p.get("targetLabels") {
        Some(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        None => expr.matchers.iter().map(|m| m.name.clone()).collect(),
    }
}

/// `GET /loki/api/v1/index/volume` and `/index/volume_range`: bytes per label set.
async fn volume(st: Scoped, r: Req, ranged: bool) -> LokiResult {
    let (start, end) = r.range_for(&st)?;
    let text =
        r.p.get("query")
            .ok_or_else(|| LokiError::bad("query parameter is missing"))?
            .to_string();
    let expr = r
        .selector("query")?
        .ok_or_else(|| LokiError::bad("query parameter is missing"))?;
    let by = volume_by(&r, &expr);
    let limit = r.limit(usize::MAX)?;
    let step = match r.p.get("step") {
        Some(s) => step_ns(s).map_err(LokiError::bad)?,
        None => default_step_ns(start, end),
    };
    let window = if ranged {
        step
    } else {
        (end - start).max(1_000_000)
    };
    let metric = format!(
        "sum by ({}) (bytes_over_time({text} [{}ms]))",
        by.join(", "),
        (window / 1_000_000).max(1)
    );
    let Query::Metric(m) =
        parse(&metric).map_err(|e| LokiError::bad(format!("parse error : {e}")))?
    else {
        return Err(LokiError::bad("query must be a stream selector"));
    };
    blocking(st, move |st| {
        let started = Instant::now();
        let mut stats = Stats::default();
        let end_ms = end.div_euclid(1_000_000);
        let v = if ranged {
            evaluator(st).metric(
                &m,
                start.div_euclid(1_000_000),
                end_ms,
                (step / 1_000_000).max(1),
                false,
                &mut stats,
            )?
        } else {
            evaluator(st).metric(&m, end_ms, end_ms, 1, true, &mut stats)?
        };
        // The largest first, at most `limit` label sets.
        let v = match v {
            QueryValue::Vector(mut s) => {
                s.sort_by(|a, b| b.2.total_cmp(&a.2));
                s.truncate(limit);
                QueryValue::Vector(s)
            }
            QueryValue::Matrix(mut s) => {
                let total = |x: &SeriesSamples| x.samples.iter().map(|p| p.1).sum::<f64>();
                s.sort_by(|a, b| total(b).total_cmp(&total(a)));
                s.truncate(limit);
                QueryValue::Matrix(s)
            }
            other => other,
        };
        Ok(success(
            metric_data(&v, &stats, started.elapsed()),
            &stats.warnings,
        ))
    })
    .await
}

/// `GET /loki/api/v1/index/volume`.
pub async fn index_volume(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    volume(st, Req::new(q, &headers, &body), false).await
}

/// `GET /loki/api/v1/index/volume_range`.
pub async fn index_volume_range(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    volume(st, Req::new(q, &headers, &body), true).await
}

/// `GET /loki/api/v1/detected_labels`: labels of the selected lines and how many
/// values each has.
pub async fn detected_labels(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let (start, end) = r.range_for(&st)?;
    let expr = r.selector("query")?;
    blocking(st, move |st| {
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for labels in sampled_labels(st, expr.as_ref(), start, end)? {
            for (k, v) in labels {
                values.entry(k).or_default().insert(v);
            }
        }
        let detected: Vec<J> = values
            .iter()
            .map(|(k, v)| json!({"label": k, "cardinality": v.len()}))
            .collect();
        Ok(axum::Json(json!({"detectedLabels": detected})).into_response())
    })
    .await
}

/// The type Loki reports for a field's values.
fn field_type(values: &BTreeSet<String>) -> &'static str {
    let all = |f: &dyn Fn(&str) -> bool| values.iter().all(|v| f(v));
    if all(&|v| v.parse::<i64>().is_ok()) {
        "int"
    } else if all(&|v| v.parse::<f64>().is_ok()) {
        "float"
    } else if all(&|v| v == "true" || v == "false") {
        "boolean"
    } else if all(&|v| crate::logql::parse::duration_ns(v).is_some()) {
        "duration"
    } else if all(&|v| crate::logql::parse::bytes(v).is_some()) {
        "bytes"
    } else {
        "string"
    }
}

/// `GET /loki/api/v1/detected_fields`: fields of the selected lines — attributes
/// (structured metadata) and what the json or logfmt parser finds in the line — with
/// type and cardinality.
pub async fn detected_fields(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> LokiResult {
    let r = Req::new(q, &headers, &body);
    let (start, end) = r.range_for(&st)?;
    let expr = r.selector("query")?;
    let limit = match r.p.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| LokiError::bad(format!("invalid limit {l:?}")))?,
        None => 1000,
    };
    blocking(st, move |st| {
        let mut stats = Stats::default();
        let mut fields: BTreeMap<String, (BTreeSet<String>, BTreeSet<&'static str>)> =
            BTreeMap::new();
        let text = expr.as_ref().map(prefilter).unwrap_or_default();
        let mut n = 0;
        evaluator(st).scan(&text, start, end + 1, false, &mut stats, |rec| {
            n += 1;
            if let Some(x) = &expr
                && !matches!(apply(x, &mut entry_of(rec.clone())), Outcome::Kept(_))
            {
                return n < SAMPLE_LINES;
            }
            for kv in &rec.attributes {
                let f = fields.entry(pipeline::sanitize(&kv.key)).or_default();
                f.0.insert(kv.value.to_text());
            }
            if let Ok(J::Object(m)) = serde_json::from_str::<J>(&rec.body) {
                for (k, v) in m {
                    let v = match v {
                        J::String(s) => s,
                        J::Array(_) | J::Object(_) | J::Null => continue,
                        other => other.to_string(),
                    };
                    let f = fields.entry(pipeline::sanitize(&k)).or_default();
                    f.0.insert(v);
                    f.1.insert("json");
                }
            } else if let Some(pairs) = logfmt_pairs(&rec.body, true) {
                for (k, v) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
                    let f = fields.entry(pipeline::sanitize(&k)).or_default();
                    f.0.insert(v);
                    f.1.insert("logfmt");
                }
            }
            n < SAMPLE_LINES
        })?;
        let out: Vec<J> = fields
            .iter()
            .take(limit)
            .map(|(k, (values, parsers))| {
                json!({
                    "label": k,
                    "type": field_type(values),
                    "cardinality": values.len(),
                    "parsers": if parsers.is_empty() { J::Null } else { json!(parsers) },
                })
            })
            .collect();
        Ok(axum::Json(json!({"fields": out, "limit": limit})).into_response())
    })
    .await
}

/// `GET /loki/api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    axum::Json(build_info()).into_response()
}

/// `GET /loki/api/v1/tail` (WebSocket): the lines of the last `start` (default an
/// hour, at most `limit`), then new lines as they become searchable, as Loki's tail
/// messages `{"streams": […], "dropped_entries": null}`.
pub async fn tail(
    st: Scoped,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> LokiResult {
    let r = Req::new(q, &headers, &Bytes::new());
    let expr = r
        .selector("query")?
        .ok_or_else(|| LokiError::bad("query parameter is missing"))?;
    let start = r.time("start", r.now - DEFAULT_RANGE_NS)?;
    let limit = r.limit(st.cfg.max_log_hits)?;
    let slot = st
        .limits
        .tail_slot(&st.tenant)
        .map_err(|r| LokiError(StatusCode::TOO_MANY_REQUESTS, r.message))?;
    Ok(ws.on_upgrade(move |socket| async move {
        // Held while the tail runs.
        let _slot = slot;
        if let Err(e) = run_tail(st, socket, expr, start, limit).await {
            tracing::debug!(error = %e, "Loki tail ended");
        }
    }))
}

fn tail_message(entries: Vec<Entry>) -> String {
    let streams = group_streams(entries.into_iter().map(|e| (e.labels, e.ts, e.line)));
    json!({"streams": streams_json(&streams), "dropped_entries": null}).to_string()
}

async fn run_tail(
    st: Scoped,
    mut socket: WebSocket,
    expr: LogExpr,
    start: i64,
    limit: usize,
) -> Result<(), String> {
    let text = prefilter(&expr);
    // Where new lines start, taken before the history is read: a line in both is sent
    // once (history lines are remembered by time and text up to the newest).
    let (logs, tenant) = (st.logs.clone(), st.tenant.clone());
    let t2 = text.clone();
    let mut cursor = tokio::task::spawn_blocking(move || logs.tail(&tenant, &t2, None, 1))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .cursor;
    let now = triad_model::now_ns();
    let history = {
        let st = st.clone();
        let expr = expr.clone();
        tokio::task::spawn_blocking(move || {
            let mut stats = Stats::default();
            evaluator(&st).logs(
                &expr,
                LogParams {
                    start_ns: start,
                    end_ns: now + 1,
                    limit,
                    forward: false,
                },
                &mut stats,
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    let mut sent: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut first: Vec<Entry> = Vec::new();
    for s in history {
        for (ts, line) in s.entries {
            sent.insert((ts, line.clone()));
            first.push(Entry {
                ts,
                line,
                labels: s.labels.clone(),
            });
        }
    }
    first.sort_by_key(|e| e.ts);
    let newest_sent = first.last().map(|e| e.ts).unwrap_or(i64::MIN);
    if !first.is_empty() {
        socket
            .send(Message::Text(tail_message(first).into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let poll = Duration::from_millis(st.cfg.tail_poll_interval_ms);
    loop {
        tokio::select! {
            _ = st.cancel.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return Ok(());
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => continue,
            },
            _ = tokio::time::sleep(poll) => {}
        }
        let (logs, tenant) = (st.logs.clone(), st.tenant.clone());
        let t2 = text.clone();
        let batch =
            tokio::task::spawn_blocking(move || logs.tail(&tenant, &t2, Some(cursor), 1_000))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        cursor = batch.cursor;
        let mut out = Vec::new();
        for rec in batch.records {
            let mut e = entry_of(rec);
            if let Outcome::Kept(_) = apply(&expr, &mut e) {
                if e.ts <= newest_sent && sent.contains(&(e.ts, e.line.clone())) {
                    continue;
                }
                out.push(e);
            }
        }
        if !out.is_empty() {
            socket
                .send(Message::Text(tail_message(out).into()))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_times() {
        let now = 2_000_000_000_000_000_000;
        assert_eq!(
            loki_time_ns("1700000000", now),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            loki_time_ns("1700000000123456789", now),
            Ok(1_700_000_000_123_456_789)
        );
        assert_eq!(
            loki_time_ns("1700000000.5", now),
            Ok(1_700_000_000_500_000_000)
        );
        assert_eq!(
            loki_time_ns("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(loki_time_ns("now", now), Ok(now));
        assert_eq!(loki_time_ns("now-1h", now), Ok(now - 3_600_000_000_000));
        assert!(loki_time_ns("yesterday", now).is_err());
        assert_eq!(step_ns("15s"), Ok(15_000_000_000));
        assert_eq!(step_ns("0.5"), Ok(500_000_000));
        assert!(step_ns("0").is_err());
    }
}
