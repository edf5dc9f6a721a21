//! `GET /api/correlate/{traceID}`: one trace and everything around it — its spans, every
//! log line carrying its trace ID (each attached to its span), the RED series of the
//! services it touched in a window around it, and the alerts that were firing then.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, Query};
use serde_json::{Value as J, json};
use triad_model::metric::Labels;
use triad_model::store::{LogQuery, MetricRead};
use triad_model::{LogRecord, Span, TraceId};

use crate::Scoped;
use crate::error::{ApiError, ApiResult};
use crate::jaeger::trace_json;
use crate::logs::record_json;
use crate::time::format_rfc3339;
use triad_promql::{Engine, Limits};

/// Default margin on each side of the trace for metrics and alerts, seconds.
const DEFAULT_MARGIN_SECS: i64 = 900;
/// Points per RED series.
const POINTS: i64 = 60;
/// Shortest rate window (four span-metric flushes).
const MIN_RATE_WINDOW_MS: i64 = 60_000;

/// `GET /api/correlate/{traceID}?margin=<seconds>&trace=false`: without the spans
/// (`trace` and `spans` are null) with `trace=false`, for a page that reads a large
/// trace as rows (`/api/traces/{id}/rows`).
pub async fn correlate(
    st: Scoped,
    Path(id): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<J>> {
    let trace_id = TraceId::from_hex(&id)
        .map_err(|e| ApiError::BadRequest(format!("invalid trace ID: {e}")))?;
    let margin_ms = match params.get("margin") {
        Some(m) => m
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m >= 0.0 && *m <= 86_400.0)
            .map(|m| (m * 1000.0) as i64)
            .ok_or_else(|| ApiError::BadRequest("margin: seconds between 0 and 86400".into()))?,
        None => DEFAULT_MARGIN_SECS * 1000,
    };
    let with_spans = params.get("trace").map(String::as_str) != Some("false");
    let limits = crate::prom_api::limits(&st, &st.tenant, None)
        .map_err(|_| ApiError::Internal("limits".into()))?;
    let st2 = st.clone();
    let out =
        tokio::task::spawn_blocking(move || build(&st2, trace_id, margin_ms, &limits, with_spans))
            .await??;
    Ok(Json(out))
}

fn build(
    st: &Scoped,
    trace_id: TraceId,
    margin_ms: i64,
    limits: &Limits,
    with_spans: bool,
) -> ApiResult<J> {
    let (spans, mut warnings) = st.traces.trace_partial(&st.tenant, trace_id)?;
    let now_ns = triad_model::now_ns();
    let found = st.logs.search(&LogQuery {
        tenant: st.tenant.clone(),
        query: format!("trace_id:{}", trace_id.to_hex()),
        start_ns: 0,
        end_ns: now_ns + 3_600_000_000_000,
        limit: st.cfg.max_log_hits,
        histogram_buckets: 0,
        oldest_first: false,
    })?;
    warnings.extend(found.warnings);
    let logs = found.hits;
    if spans.is_empty() && logs.is_empty() {
        return Err(ApiError::NotFound(format!(
            "nothing carries trace ID {}",
            trace_id.to_hex()
        )));
    }
    let mut logs: Vec<LogRecord> = logs;
    logs.sort_by_key(|r| r.timestamp_ns);
    let times = spans
        .iter()
        .flat_map(|s| [s.start_ns, s.end_ns])
        .chain(logs.iter().map(|r| r.timestamp_ns));
    let (start_ns, end_ns) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let mut services: BTreeSet<String> = spans.iter().map(|s| s.service.clone()).collect();
    services.extend(logs.iter().map(|r| r.service.clone()));
    services.retain(|s| !s.is_empty());

    let win_start = start_ns / 1_000_000 - margin_ms;
    let win_end = (end_ns / 1_000_000 + margin_ms)
        .min(now_ns / 1_000_000)
        .max(win_start);
    let (metrics, alerts) = match &st.metrics {
        Some(m) => {
            let (red, w) = red_series(
                m.as_ref(),
                &st.tenant,
                &services,
                win_start,
                win_end,
                limits,
            );
            warnings.extend(w);
            (
                red,
                firing_alerts(
                    m.as_ref(),
                    &st.tenant,
                    &services,
                    win_start,
                    win_end,
                    limits,
                ),
            )
        }
        None => (J::Null, J::Null),
    };
    warnings.sort();
    warnings.dedup();
    Ok(json!({
        "traceID": trace_id.to_hex(),
        "start": format_rfc3339(start_ns),
        "end": format_rfc3339(end_ns),
        "duration_ms": (end_ns - start_ns) as f64 / 1e6,
        "services": services,
        "trace": (with_spans && !spans.is_empty()).then(|| trace_json(trace_id, &spans)),
        "spans": with_spans.then(|| spans_with_logs(&spans, &logs)),
        "span_count": spans.len(),
        "logs": logs.iter().map(record_json).collect::<Vec<_>>(),
        "window": {"start": format_rfc3339(win_start * 1_000_000), "end": format_rfc3339(win_end * 1_000_000)},
        "metrics": metrics,
        "alerts": alerts,
        "partial": !warnings.is_empty(),
        "warnings": warnings,
    }))
}

/// Each span with the indexes (into `logs`) of the lines that carry its span ID.
fn spans_with_logs(spans: &[Span], logs: &[LogRecord]) -> Vec<J> {
    let mut by_span: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, r) in logs.iter().enumerate() {
        if let Some(s) = r.span_id {
            by_span.entry(u64::from_be_bytes(s.0)).or_default().push(i);
        }
    }
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| s.start_ns);
    sorted
        .iter()
        .map(|s| {
            json!({
                "spanID": s.span_id.to_hex(),
                "parentSpanID": s.parent_span_id.map(|p| p.to_hex()),
                "service": s.service,
                "operation": s.name,
                "start": format_rfc3339(s.start_ns),
                "duration_ms": (s.end_ns - s.start_ns) as f64 / 1e6,
                "error": s.is_error(),
                "logs": by_span.get(&u64::from_be_bytes(s.span_id.0)).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

fn service_regex(services: &BTreeSet<String>) -> String {
    services
        .iter()
        .map(|s| regex::escape(s).replace('\\', "\\\\").replace('"', "\\\""))
        .collect::<Vec<_>>()
        .join("|")
}

fn red_series(
    store: &dyn MetricRead,
    tenant: &str,
    services: &BTreeSet<String>,
    start: i64,
    end: i64,
    limits: &Limits,
) -> (J, Vec<String>) {
    if services.is_empty() {
        return (json!({"step": 0, "series": []}), Vec::new());
    }
    let step = ((end - start) / POINTS).max(1000);
    let w = format!("{}ms", (4 * step).max(MIN_RATE_WINDOW_MS));
    let sel = format!("service=~\"{}\"", service_regex(services));
    let queries = [
        (
            "requests_per_second",
            format!("sum by (service) (rate(triad_span_requests_total{{{sel}}}[{w}]))"),
        ),
        (
            "errors_per_second",
            format!("sum by (service) (rate(triad_span_errors_total{{{sel}}}[{w}]))"),
        ),
        (
            "p99_seconds",
            format!(
                "histogram_quantile(0.99, sum by (service, le) (rate(triad_span_duration_seconds_bucket{{{sel}}}[{w}])))"
            ),
        ),
    ];
    let engine = Engine::new(store, tenant, limits.clone());
    let mut series = Vec::new();
    for (signal, q) in queries {
        let Ok(m) = engine.range(&q, start, end, step) else {
            continue;
        };
        for s in m {
            series.push(json!({
                "service": s.labels.get("service"),
                "signal": signal,
                "query": q,
                "values": s.samples.iter().filter(|(_, v)| v.is_finite()).map(|(t, v)| json!([*t as f64 / 1000.0, triad_promql::format_value(*v)])).collect::<Vec<_>>(),
            }));
        }
    }
    (
        json!({"step": step as f64 / 1000.0, "series": series}),
        engine.warnings(),
    )
}

/// Alerts with an `ALERTS{alertstate="firing"}` sample in the window, and whether they
/// concern one of the trace's services.
fn firing_alerts(
    store: &dyn MetricRead,
    tenant: &str,
    services: &BTreeSet<String>,
    start: i64,
    end: i64,
    limits: &Limits,
) -> J {
    let Ok(m) = Engine::new(store, tenant, limits.clone()).range(
        "ALERTS{alertstate=\"firing\"}",
        start,
        end,
        ((end - start) / 240).max(1000),
    ) else {
        return json!([]);
    };
    m.iter()
        .filter(|s| !s.samples.is_empty())
        .map(|s| {
            let labels: Labels = s.labels.without(|n| n == "__name__" || n == "alertstate");
            let first = s.samples.first().map_or(start, |x| x.0);
            let last = s.samples.last().map_or(end, |x| x.0);
            json!({
                "labels": triad_promql::format::labels_json(&labels),
                "firing_from": format_rfc3339(first * 1_000_000),
                "firing_until": format_rfc3339(last * 1_000_000),
                "related": labels.get("service").is_some_and(|svc| services.contains(svc)),
            })
        })
        .collect::<Vec<_>>()
        .into()
}
