//! Log search (`/api/logs/search`) and live tail (`/api/logs/tail`, server-sent events).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value as J, json};
use triad_model::store::LogQuery;
use triad_model::{LogRecord, attributes_to_json};

use crate::error::{ApiError, ApiResult};
use crate::time::{format_rfc3339, parse_time_ns};
use crate::{AppState, Tenant};

/// Default search window: the last hour.
const DEFAULT_RANGE_NS: i64 = 3_600_000_000_000;
/// Default number of hits.
const DEFAULT_LIMIT: usize = 100;
/// Histogram buckets over the searched range.
const HISTOGRAM_BUCKETS: usize = 60;
/// Most lines a tail sends per poll.
const TAIL_BATCH: usize = 1_000;

/// A log record as the API returns it.
pub fn record_json(r: &LogRecord) -> J {
    json!({
        "timestamp": format_rfc3339(r.timestamp_ns),
        "timestamp_ns": r.timestamp_ns.to_string(),
        "observed_timestamp": format_rfc3339(r.observed_ns),
        "level": r.level(),
        "severity_text": r.severity_text,
        "severity_number": r.severity_number,
        "body": r.body,
        "service": r.service,
        "host": r.host,
        "trace_id": r.trace_id.map(|t| t.to_hex()),
        "span_id": r.span_id.map(|s| s.to_hex()),
        "source": r.source,
        "attributes": attributes_to_json(&r.attributes),
        "links": r.trace_id.map(|t| {
            let t = t.to_hex();
            json!({"trace": format!("/api/traces/{t}"), "correlate": format!("/api/correlate/{t}")})
        }),
    })
}

/// Builds the store query from `q`, `start`, `end` and `limit`.
pub fn log_query(
    tenant: &str,
    params: &BTreeMap<String, String>,
    max_hits: usize,
    now_ns: i64,
) -> ApiResult<LogQuery> {
    let time = |k: &str| -> ApiResult<Option<i64>> {
        params
            .get(k)
            .filter(|v| !v.is_empty())
            .map(|v| parse_time_ns(v).map_err(|e| ApiError::BadRequest(format!("{k}: {e}"))))
            .transpose()
    };
    let end_ns = time("end")?.unwrap_or(now_ns);
    let start_ns = time("start")?.unwrap_or(end_ns - DEFAULT_RANGE_NS);
    if end_ns <= start_ns {
        return Err(ApiError::BadRequest("end must be after start".into()));
    }
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("limit: not a number: {l:?}")))?,
        None => DEFAULT_LIMIT,
    };
    Ok(LogQuery {
        tenant: tenant.to_string(),
        query: params.get("q").cloned().unwrap_or_default(),
        // The end is inclusive for the user (Prometheus-style); the store's is exclusive.
        end_ns: end_ns.saturating_add(1),
        start_ns,
        limit: limit.min(max_hits),
        histogram_buckets: HISTOGRAM_BUCKETS,
        oldest_first: false,
    })
}

/// `GET /api/logs/search?q=&start=&end=&limit=`: newest-first hits, the exact total and
/// a count histogram over the range.
pub async fn search(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<J>> {
    let q = log_query(&tenant, &params, st.cfg.max_log_hits, triad_model::now_ns())?;
    st.limits
        .check_range(&tenant, q.start_ns, q.end_ns)
        .map_err(|r| ApiError::BadRequest(r.message))?;
    let logs = st.logs.clone();
    let started = std::time::Instant::now();
    let (q, res) = tokio::task::spawn_blocking(move || {
        let r = logs.search(&q);
        (q, r)
    })
    .await?;
    let res = res?;
    let histogram: Vec<J> = res
        .histogram
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"time": (q.start_ns + i as i64 * res.bucket_ns) as f64 / 1e9, "count": c}))
        .collect();
    Ok(Json(json!({
        "hits": res.hits.iter().map(record_json).collect::<Vec<_>>(),
        "total": res.total,
        "histogram": histogram,
        "bucket_seconds": res.bucket_ns as f64 / 1e9,
        "took_ms": started.elapsed().as_secs_f64() * 1e3,
        // A source (a collector) that did not answer: what is here is right, not all.
        "partial": !res.warnings.is_empty(),
        "warnings": res.warnings,
    })))
}

struct TailState {
    st: AppState,
    tenant: String,
    /// One of the tenant's live tails, released when the stream ends.
    _slot: triad_receiver::limits::Slot,
    query: String,
    cursor: Option<u64>,
    pending: std::collections::VecDeque<LogRecord>,
}

/// `GET /api/logs/tail?q=`: streams lines that match `q` as they become searchable,
/// one SSE `log` event per line. Ends when the client leaves or the server stops.
pub async fn tail(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let query = params.get("q").cloned().unwrap_or_default();
    let slot = st
        .limits
        .tail_slot(&tenant)
        .map_err(|r| ApiError::TooMany(r.message))?;
    // Validate the query up front, so a typo is a 400, not a silent empty stream.
    let logs = st.logs.clone();
    let (q2, t2) = (query.clone(), tenant.clone());
    let first = tokio::task::spawn_blocking(move || logs.tail(&t2, &q2, None, 1)).await??;
    let probe = st.logs.clone();
    let (q3, t3) = (query.clone(), tenant.clone());
    tokio::task::spawn_blocking(move || probe.tail(&t3, &q3, Some(u64::MAX), 1)).await??;
    let state = TailState {
        st,
        tenant,
        _slot: slot,
        query,
        cursor: Some(first.cursor),
        pending: Default::default(),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(r) = s.pending.pop_front() {
                let ev = Event::default()
                    .event("log")
                    .data(record_json(&r).to_string());
                return Some((Ok(ev), s));
            }
            let poll = Duration::from_millis(s.st.cfg.tail_poll_interval_ms);
            tokio::select! {
                _ = s.st.cancel.cancelled() => return None,
                _ = tokio::time::sleep(poll) => {}
            }
            let logs = s.st.logs.clone();
            let (query, cursor, tenant) = (s.query.clone(), s.cursor, s.tenant.clone());
            match tokio::task::spawn_blocking(move || {
                logs.tail(&tenant, &query, cursor, TAIL_BATCH)
            })
            .await
            {
                Ok(Ok(batch)) => {
                    s.cursor = Some(batch.cursor);
                    s.pending.extend(batch.records);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "log tail poll failed");
                    let ev = Event::default().event("error").data(e.to_string());
                    return Some((Ok(ev), s));
                }
                Err(_) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_and_errors() {
        let mut p = BTreeMap::new();
        let q = log_query("default", &p, 1000, 10 * DEFAULT_RANGE_NS).unwrap();
        assert_eq!(q.start_ns, 9 * DEFAULT_RANGE_NS);
        assert_eq!(q.limit, DEFAULT_LIMIT);
        p.insert("limit".to_string(), "5000".to_string());
        assert_eq!(log_query("default", &p, 1000, 0).unwrap().limit, 1000);
        p.insert("start".to_string(), "2023-11-14T22:13:20Z".to_string());
        p.insert("end".to_string(), "1600000000".to_string());
        let e = log_query("default", &p, 1000, 0).unwrap_err();
        assert!(e.to_string().contains("after start"), "{e}");
        p.insert("end".to_string(), "soon".to_string());
        assert!(
            log_query("default", &p, 1000, 0)
                .unwrap_err()
                .to_string()
                .starts_with("end:")
        );
    }
}

/// Lines of context asked for on each side by default.
const CONTEXT_LINES: usize = 20;
/// How far the lines after a line are looked for, widening until enough are found.
const CONTEXT_WINDOWS_NS: [i64; 9] = [
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    60_000_000_000,
    600_000_000_000,
    3_600_000_000_000,
    86_400_000_000_000,
];

/// Quotes a term for the log query language.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The query selecting a line's neighbours: the same file (or container log), or for
/// lines without a file (OTLP) the same service and host.
pub fn context_query(source: &str, service: &str, host: &str) -> ApiResult<String> {
    if !source.is_empty() && source != "otlp" {
        return Ok(format!("source:{}", quoted(source)));
    }
    let mut parts = Vec::new();
    if !service.is_empty() {
        parts.push(format!("service:{}", quoted(service)));
    }
    if !host.is_empty() {
        parts.push(format!("host:{}", quoted(host)));
    }
    if parts.is_empty() {
        return Err(ApiError::BadRequest(
            "a line without a file, a service or a host has no context to show".into(),
        ));
    }
    Ok(parts.join(" AND "))
}

/// `GET /api/logs/context?timestamp_ns=&source=&service=&host=&before=&after=`: the lines
/// just before and after a line from the same source (file or container log; service
/// and host for OTLP logs), oldest first, as Kibana's surrounding documents: `before`
/// (lines strictly earlier), `at` (lines with the line's own timestamp, itself among
/// them) and `after` (strictly later). Ask again from the first or the last line's
/// timestamp for more.
pub async fn context(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<J>> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let ts: i64 = get("timestamp_ns")
        .parse()
        .map_err(|_| ApiError::BadRequest("timestamp_ns: want the line's time in ns".into()))?;
    let count = |k: &str| -> ApiResult<usize> {
        match params.get(k).filter(|v| !v.is_empty()) {
            None => Ok(CONTEXT_LINES),
            Some(v) => v
                .parse::<usize>()
                .map(|n| n.min(st.cfg.max_log_hits))
                .map_err(|_| ApiError::BadRequest(format!("{k}: not a number: {v:?}"))),
        }
    };
    let (before_n, after_n) = (count("before")?, count("after")?);
    let query = context_query(get("source"), get("service"), get("host"))?;
    let max_hits = st.cfg.max_log_hits;
    let logs = st.logs.clone();
    let q = query.clone();
    let (before, at, after, warnings) = tokio::task::spawn_blocking(move || {
        let search = |start_ns: i64, end_ns: i64, limit: usize| {
            logs.search(&LogQuery {
                tenant: tenant.clone(),
                query: q.clone(),
                start_ns,
                end_ns,
                limit,
                histogram_buckets: 0,
                oldest_first: false,
            })
        };
        let mut warnings = Vec::new();
        // Newest first, so the `before_n` just before the line.
        let mut before = if before_n == 0 {
            Vec::new()
        } else {
            let r = search(0, ts, before_n)?;
            warnings.extend(r.warnings);
            r.hits
        };
        // Oldest first; lines of one timestamp keep the order the store gives them
        // (the order they were stored in), hence a stable sort, not a reversal.
        before.sort_by_key(|r| r.timestamp_ns);
        let r = search(ts, ts.saturating_add(1), max_hits)?;
        warnings.extend(r.warnings);
        let at = r.hits;
        // Oldest first after the line: widen the window until it holds enough lines,
        // then take the earliest of them.
        let mut after = Vec::new();
        if after_n > 0 {
            for width in CONTEXT_WINDOWS_NS {
                let end = ts.saturating_add(1).saturating_add(width);
                let probe = search(ts.saturating_add(1), end, 0)?;
                let last = width == CONTEXT_WINDOWS_NS[CONTEXT_WINDOWS_NS.len() - 1];
                if (probe.total as usize) < after_n && !last {
                    continue;
                }
                let r = search(
                    ts.saturating_add(1),
                    end,
                    (probe.total as usize).min(max_hits),
                )?;
                warnings.extend(r.warnings);
                after = r.hits;
                after.sort_by_key(|r| r.timestamp_ns);
                after.truncate(after_n);
                break;
            }
        }
        Ok::<_, triad_model::store::StoreError>((before, at, after, warnings))
    })
    .await??;
    let lines = |v: &[LogRecord]| v.iter().map(record_json).collect::<Vec<_>>();
    Ok(Json(json!({
        "query": query,
        "before": lines(&before),
        "at": lines(&at),
        "after": lines(&after),
        "partial": !warnings.is_empty(),
        "warnings": warnings,
    })))
}

#[cfg(test)]
mod context_tests {
    use super::*;

    #[test]
    fn a_lines_source_picks_its_neighbours() {
        assert_eq!(
            context_query("/var/log/app \"x\".log", "api", "h1").unwrap(),
            r#"source:"/var/log/app \"x\".log""#
        );
        assert_eq!(
            context_query("otlp", "api", "h1").unwrap(),
            r#"service:"api" AND host:"h1""#
        );
        assert_eq!(context_query("", "api", "").unwrap(), r#"service:"api""#);
        assert!(context_query("otlp", "", "").is_err());
    }
}
