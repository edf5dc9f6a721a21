//! Evidence for an alert: example traces and log lines from the window that made it fire,
//! each with a link to the UI.
//!
//! Traces come first from exemplars of the series the rule's expression reads (restricted
//! to series that agree with the alert's labels, slowest first: a latency alert gets its
//! slowest requests), then from error spans of the alert's `service`. Log lines are the
//! errors of that service in the window, or else the lines of the example traces.

use std::collections::BTreeSet;
use std::sync::Arc;

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value as Json, json};
use triad_model::TraceId;
use triad_model::metric::Labels;
use triad_model::store::{LogQuery, LogRead, MetricRead, TraceQuery, TraceRead};

use crate::time::format_rfc3339;
use triad_promql::{Engine, selector_matchers};

/// What evidence is looked up in.
pub struct EvidenceSource {
    /// Metric store (exemplars).
    pub metrics: Arc<dyn MetricRead>,
    /// Trace store.
    pub traces: Arc<dyn TraceRead>,
    /// Log store.
    pub logs: Arc<dyn LogRead>,
    /// Links start with this.
    pub external_url: String,
    /// Limits and window.
    pub cfg: triad_model::alerting::EvidenceConfig,
}

/// The alert the evidence is for.
pub struct AlertRef<'a> {
    /// Its tenant: the evidence is that tenant's data only.
    pub tenant: &'a str,
    /// Its labels.
    pub labels: &'a Labels,
    /// The rule's expression.
    pub expr: &'a str,
    /// When the condition started to hold, ms.
    pub active_at_ms: i64,
    /// End of the window (resolution or now), ms.
    pub end_ms: i64,
}

struct Selectors(Vec<Vec<triad_model::metric::Matcher>>);

impl ExprVisitor for Selectors {
    type Error = String;
    fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
        let vs = match e {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(vs) = vs {
            self.0
                .extend(selector_matchers(vs).map_err(|e| e.to_string())?);
        }
        Ok(true)
    }
}

impl EvidenceSource {
    /// A link to a trace in the UI.
    pub fn trace_url(&self, id: &str) -> String {
        format!("{}/traces/{id}", self.external_url)
    }

    /// The evidence object of one alert (blocking reads: call from a blocking thread).
    pub fn collect(&self, a: &AlertRef<'_>) -> Json {
        let start_ms = a.active_at_ms - self.cfg.lookback_secs as i64 * 1000;
        let end_ms = a.end_ms.max(a.active_at_ms);
        let service = a.labels.get("service").map(str::to_string);
        let mut ids: Vec<(TraceId, &'static str)> = Vec::new();
        let mut seen = BTreeSet::new();
        if self.cfg.max_traces > 0 {
            for id in self.exemplar_traces(a, start_ms, end_ms) {
                if ids.len() < self.cfg.max_traces && seen.insert(id) {
                    ids.push((id, "exemplar"));
                }
            }
            if let Some(svc) = &service
                && ids.len() < self.cfg.max_traces
            {
                let q = TraceQuery {
                    tenant: a.tenant.to_string(),
                    service: svc.clone(),
                    operation: None,
                    tags: vec![("error".into(), "true".into())],
                    start_ns: start_ms * 1_000_000,
                    end_ns: end_ms * 1_000_000,
                    min_duration_ns: None,
                    max_duration_ns: None,
                    limit: self.cfg.max_traces,
                    order: Default::default(),
                };
                for id in self.traces.find_trace_ids(&q).unwrap_or_default() {
                    if ids.len() < self.cfg.max_traces && seen.insert(id) {
                        ids.push((id, "error_span"));
                    }
                }
            }
        }
        let traces: Vec<Json> = ids
            .iter()
            .map(|(id, why)| self.describe_trace(a.tenant, *id, why))
            .collect();
        let logs = if self.cfg.max_logs == 0 {
            Vec::new()
        } else {
            let query = match &service {
                Some(svc) => format!(
                    "service:\"{}\" AND (level:error OR level:fatal OR level:critical)",
                    svc.replace('"', "\\\"")
                ),
                None if !ids.is_empty() => ids
                    .iter()
                    .map(|(id, _)| format!("trace_id:{}", id.to_hex()))
                    .collect::<Vec<_>>()
                    .join(" OR "),
                None => String::new(),
            };
            if query.is_empty() {
                Vec::new()
            } else {
                self.log_lines(a.tenant, &query, start_ms, end_ms)
            }
        };
        json!({
            "window": {"start": format_rfc3339(start_ms * 1_000_000), "end": format_rfc3339(end_ms * 1_000_000)},
            "traces": traces,
            "logs": logs,
        })
    }

    fn exemplar_traces(&self, a: &AlertRef<'_>, start_ms: i64, end_ms: i64) -> Vec<TraceId> {
        let Ok(expr) = Engine::parse(a.expr) else {
            return Vec::new();
        };
        let mut sel = Selectors(Vec::new());
        if walk_expr(&mut sel, &expr).is_err() || sel.0.is_empty() {
            return Vec::new();
        }
        let Ok(found) = self.metrics.exemplars(a.tenant, &sel.0, start_ms, end_ms) else {
            return Vec::new();
        };
        let mut candidates: Vec<(f64, TraceId)> = Vec::new();
        for s in found {
            // Only series that agree with the alert on every label both have.
            let agrees = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .all(|(k, v)| a.labels.get(k).is_none_or(|av| av == v));
            if !agrees {
                continue;
            }
            for e in s.exemplars {
                let id = e
                    .labels
                    .iter()
                    .find(|(k, _)| matches!(*k, "trace_id" | "traceID" | "trace-id"))
                    .and_then(|(_, v)| TraceId::from_hex(v).ok());
                if let Some(id) = id {
                    candidates.push((e.value, id));
                }
            }
        }
        candidates.sort_by(|x, y| y.0.total_cmp(&x.0));
        candidates.into_iter().map(|(_, id)| id).collect()
    }

    fn describe_trace(&self, tenant: &str, id: TraceId, why: &str) -> Json {
        let hex = id.to_hex();
        let spans = self.traces.trace(tenant, id).unwrap_or_default();
        let root = spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .or_else(|| spans.iter().min_by_key(|s| s.start_ns));
        let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        json!({
            "trace_id": hex,
            "found_by": why,
            "root_service": root.map(|s| s.service.clone()),
            "root_operation": root.map(|s| s.name.clone()),
            "start": (!spans.is_empty()).then(|| format_rfc3339(start)),
            "duration_ms": (end - start) as f64 / 1e6,
            "spans": spans.len(),
            "error": spans.iter().any(|s| s.is_error()),
            "url": self.trace_url(&hex),
        })
    }

    fn log_lines(&self, tenant: &str, query: &str, start_ms: i64, end_ms: i64) -> Vec<Json> {
        let q = LogQuery {
            tenant: tenant.to_string(),
            query: query.to_string(),
            start_ns: start_ms * 1_000_000,
            end_ns: (end_ms + 1) * 1_000_000,
            limit: self.cfg.max_logs,
            histogram_buckets: 0,
            oldest_first: false,
        };
        let Ok(res) = self.logs.search(&q) else {
            return Vec::new();
        };
        res.hits
            .iter()
            .map(|r| {
                let trace = r.trace_id.map(|t| t.to_hex());
                let url = match &trace {
                    Some(t) => self.trace_url(t),
                    None => format!(
                        "{}/logs?q={}&start={}&end={}",
                        self.external_url,
                        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>(),
                        start_ms / 1000,
                        end_ms / 1000 + 1
                    ),
                };
                json!({
                    "timestamp": format_rfc3339(r.timestamp_ns),
                    "timestamp_ns": r.timestamp_ns.to_string(),
                    "service": r.service,
                    "host": r.host,
                    "source": r.source,
                    "level": r.level(),
                    "body": r.body,
                    "trace_id": trace,
                    "span_id": r.span_id.map(|s| s.to_hex()),
                    "url": url,
                })
            })
            .collect()
    }
}
