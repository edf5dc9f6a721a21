//! RED metrics from spans: per tenant, service and operation, from server and consumer
//! spans (the ones that handle a request), the collector keeps
//! - `triad_span_requests_total{service, operation}`,
//! - `triad_span_errors_total{service, operation}` (status ERROR),
//! - `triad_span_duration_seconds_bucket{service, operation, le}` with `_sum` and
//!   `_count`, each bucket carrying the newest span that fell in it as an exemplar
//!   (`trace_id`, `span_id`),
//!
//! as cumulative counters in memory and writes them into the metric store every flush
//! interval, as ordinary series: PromQL and alert rules use them like scraped ones, so
//! golden signals exist for services that export no metrics. A restart starts the
//! counters again from zero, which `rate()` reads as a counter reset.

use std::collections::HashMap;
use std::sync::Mutex;

use triad_model::metric::{Exemplar, Labels, MetricMetadata, format_value, stale_nan};
use triad_model::{Span, SpanKind, StatusCode};

use triad_tsdb::AppendBatch;
use triad_tsdb::metric_store::MetricStore;

/// Upper bounds of the duration buckets, seconds (the last is +Inf).
pub const BUCKETS: [f64; 14] = [
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    f64::INFINITY,
];

/// Most (tenant, service, operation) triples tracked; spans of new ones beyond it are
/// counted under `operation="__other__"` so a runaway span name cannot exhaust memory.
pub const MAX_OPERATIONS: usize = 10_000;

#[derive(Default)]
struct Red {
    requests: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    /// Newest span per bucket not yet written: (trace_id, span_id, seconds, end ms).
    exemplars: [Option<(String, String, f64, i64)>; BUCKETS.len()],
}

/// One request-handling span, as the aggregator needs it.
pub struct Observation {
    key: (String, String, String),
    /// `host.name` of the span's resource, if any.
    host: Option<String>,
    seconds: f64,
    error: bool,
    trace_id: String,
    span_id: String,
    end_ms: i64,
}

/// The RED aggregator.
#[derive(Default)]
pub struct SpanMetrics {
    inner: Mutex<HashMap<(String, String, String), Red>>,
    /// (tenant, service, host) → when a span of the service last came from the host, ms.
    hosts: Mutex<HashMap<(String, String, String), i64>>,
}

/// A host stops counting as one of a service's hosts after this long without spans
/// (`triad_service_host_info` then goes stale).
pub const HOST_IDLE_MS: i64 = 10 * 60_000;

/// Whether a span is the server side of a request.
fn counts(s: &Span) -> bool {
    matches!(s.kind, SpanKind::Server | SpanKind::Consumer)
}

impl SpanMetrics {
    /// An empty aggregator.
    pub fn new() -> SpanMetrics {
        SpanMetrics::default()
    }

    /// What a batch of spans adds, taken before the spans move into the store.
    pub fn summarize(spans: &[Span]) -> Vec<Observation> {
        spans
            .iter()
            .filter(|s| counts(s))
            .map(|s| Observation {
                key: (s.tenant.clone(), s.service.clone(), s.name.clone()),
                host: s
                    .resource
                    .iter()
                    .find(|kv| kv.key == "host.name")
                    .map(|kv| kv.value.to_text())
                    .filter(|h| !h.is_empty()),
                seconds: s.duration_ns().max(0) as f64 / 1e9,
                error: s.status_code == StatusCode::Error,
                trace_id: s.trace_id.to_string(),
                span_id: s.span_id.to_string(),
                end_ms: s.end_ns / 1_000_000,
            })
            .collect()
    }

    /// Counts observations (once their spans are stored).
    pub fn add(&self, observations: Vec<Observation>) {
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        if let Ok(mut hosts) = self.hosts.lock() {
            for o in &observations {
                if let Some(h) = &o.host
                    && (hosts.len() < MAX_OPERATIONS
                        || hosts.contains_key(&(o.key.0.clone(), o.key.1.clone(), h.clone())))
                {
                    hosts.insert((o.key.0.clone(), o.key.1.clone(), h.clone()), o.end_ms);
                }
            }
        }
        for o in observations {
            let mut key = o.key;
            if !map.contains_key(&key) && map.len() >= MAX_OPERATIONS {
                key.2 = "__other__".into();
            }
            let red = map.entry(key).or_default();
            red.requests += 1;
            if o.error {
                red.errors += 1;
            }
            red.sum += o.seconds;
            let b = BUCKETS
                .iter()
                .position(|ub| o.seconds <= *ub)
                .unwrap_or(BUCKETS.len() - 1);
            for count in &mut red.buckets[b..] {
                *count += 1;
            }
            red.exemplars[b] = Some((o.trace_id, o.span_id, o.seconds, o.end_ms));
        }
    }

    /// Writes every counter into the metric store at `now_ms`.
    pub fn flush(&self, store: &MetricStore, now_ms: i64) -> crate::Result<()> {
        let mut per_tenant: HashMap<String, AppendBatch> = HashMap::new();
        {
            let Ok(mut map) = self.inner.lock() else {
                return Ok(());
            };
            for ((tenant, service, operation), red) in map.iter_mut() {
                let batch = per_tenant
                    .entry(tenant.clone())
                    .or_insert_with(metadata_batch);
                let base = |name: &str| {
                    vec![
                        ("__name__".to_string(), name.to_string()),
                        ("service".to_string(), service.clone()),
                        ("operation".to_string(), operation.clone()),
                    ]
                };
                batch.samples.push((
                    Labels::new(base("triad_span_requests_total")),
                    now_ms,
                    red.requests as f64,
                ));
                batch.samples.push((
                    Labels::new(base("triad_span_errors_total")),
                    now_ms,
                    red.errors as f64,
                ));
                batch.samples.push((
                    Labels::new(base("triad_span_duration_seconds_count")),
                    now_ms,
                    red.requests as f64,
                ));
                batch.samples.push((
                    Labels::new(base("triad_span_duration_seconds_sum")),
                    now_ms,
                    red.sum,
                ));
                for (i, ub) in BUCKETS.iter().enumerate() {
                    let mut pairs = base("triad_span_duration_seconds_bucket");
                    pairs.push(("le".into(), format_value(*ub)));
                    let labels = Labels::new(pairs);
                    if let Some((trace, span, v, t)) = red.exemplars[i].take() {
                        batch.exemplars.push((
                            labels.clone(),
                            Exemplar {
                                labels: Labels::new(vec![
                                    ("trace_id".into(), trace),
                                    ("span_id".into(), span),
                                ]),
                                value: v,
                                timestamp_ms: t,
                            },
                        ));
                    }
                    batch.samples.push((labels, now_ms, red.buckets[i] as f64));
                }
            }
        }
        if let Ok(mut hosts) = self.hosts.lock() {
            // Which hosts each service runs on, for saturation rules: `1` while spans come
            // from the host; a host idle for HOST_IDLE_MS gets a staleness marker.
            hosts.retain(|(tenant, service, host), last| {
                let live = now_ms - *last < HOST_IDLE_MS;
                let batch = per_tenant
                    .entry(tenant.clone())
                    .or_insert_with(metadata_batch);
                batch.samples.push((
                    Labels::new(vec![
                        ("__name__".into(), "triad_service_host_info".into()),
                        ("service".into(), service.clone()),
                        ("host".into(), host.clone()),
                    ]),
                    now_ms,
                    if live { 1.0 } else { stale_nan() },
                ));
                live
            });
        }
        for (tenant, batch) in per_tenant {
            store.append(&tenant, &batch, false)?;
        }
        Ok(())
    }
}

fn metadata_batch() -> AppendBatch {
    let m = |t: &str, help: &str, unit: &str| MetricMetadata {
        metric_type: t.into(),
        help: help.into(),
        unit: unit.into(),
    };
    AppendBatch {
        metadata: vec![
            (
                "triad_span_requests".into(),
                m(
                    "counter",
                    "Requests handled, from server and consumer spans.",
                    "",
                ),
            ),
            (
                "triad_span_errors".into(),
                m("counter", "Requests that failed (span status ERROR).", ""),
            ),
            (
                "triad_span_duration_seconds".into(),
                m(
                    "histogram",
                    "Request duration, from server and consumer spans.",
                    "seconds",
                ),
            ),
            (
                "triad_service_host_info".into(),
                m(
                    "gauge",
                    "1 for each host a service's spans came from in the last 10 minutes (resource host.name).",
                    "",
                ),
            ),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_model::metric::Matcher;
    use triad_model::{SpanId, TraceId};

    fn span(name: &str, kind: SpanKind, ms: i64, error: bool) -> Span {
        Span {
            tenant: "default".into(),
            trace_id: TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            span_id: SpanId::from_hex("b7ad6b7169203331").unwrap(),
            parent_span_id: None,
            trace_state: String::new(),
            name: name.into(),
            kind,
            start_ns: 1_000_000_000,
            end_ns: 1_000_000_000 + ms * 1_000_000,
            status_code: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            status_message: String::new(),
            service: "checkout".into(),
            attributes: vec![],
            events: vec![],
            links: vec![],
            resource: vec![],
            scope_name: String::new(),
            scope_version: String::new(),
        }
    }

    #[test]
    fn server_spans_become_red_series_with_exemplars() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricStore::open(
            dir.path(),
            Default::default(),
            &mut prometheus_client::registry::Registry::default(),
        )
        .unwrap();
        let m = SpanMetrics::new();
        m.add(SpanMetrics::summarize(&[
            span("GET /cart", SpanKind::Server, 30, false),
            span("GET /cart", SpanKind::Server, 700, true),
            span("SELECT", SpanKind::Client, 5, false),
        ]));
        m.flush(&store, 10_000).unwrap();
        let get = |name: &str, extra: Option<(&str, &str)>| {
            let mut ms = vec![
                Matcher::equal("__name__", name),
                Matcher::equal("operation", "GET /cart"),
            ];
            if let Some((k, v)) = extra {
                ms.push(Matcher::equal(k, v));
            }
            store.select("default", &ms, 0, 20_000).unwrap()
        };
        use triad_model::store::MetricRead;
        assert_eq!(
            get("triad_span_requests_total", None)[0].samples,
            vec![(10_000, 2.0)]
        );
        assert_eq!(
            get("triad_span_errors_total", None)[0].samples,
            vec![(10_000, 1.0)]
        );
        assert_eq!(
            get("triad_span_duration_seconds_bucket", Some(("le", "0.05")))[0].samples[0].1,
            1.0
        );
        assert_eq!(
            get("triad_span_duration_seconds_bucket", Some(("le", "+Inf")))[0].samples[0].1,
            2.0
        );
        assert!(
            store
                .select(
                    "default",
                    &[Matcher::equal("operation", "SELECT")],
                    0,
                    20_000
                )
                .unwrap()
                .is_empty()
        );
        let ex = store
            .exemplars("default", &[vec![Matcher::equal("le", "1")]], 0, 20_000)
            .unwrap();
        assert_eq!(
            ex[0].exemplars[0].labels.get("trace_id"),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
    }
}
