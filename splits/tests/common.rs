//! Helpers shared by the collector's integration tests.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use triad_model::config::StoreConfig;
use triad_model::{KeyValue, LogRecord, Span, SpanId, SpanKind, StatusCode, TraceId, Value};
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::store::Store;
use triad_splits::trace_store::{SpanSignal, TraceStore};

pub const HOUR_NS: i64 = 3_600_000_000_000;

pub fn fast_cfg() -> StoreConfig {
    StoreConfig {
        commit_interval_ms: 20,
        indexer_memory_mb: 32,
        ..StoreConfig::default()
    }
}

pub fn open_logs(dir: &Path, cfg: StoreConfig) -> LogStore {
    LogStore::new(Store::open(LogSignal::new(), dir, cfg, StoreMetrics::unregistered()).unwrap())
}

pub fn open_traces(dir: &Path, cfg: StoreConfig) -> TraceStore {
    TraceStore::new(Store::open(SpanSignal::new(), dir, cfg, StoreMetrics::unregistered()).unwrap())
        .unwrap()
}

/// Polls `cond` until it holds; panics after 20 s. Tests wait on conditions, never sleep blindly.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn log(ts: i64, body: &str, service: &str, level: &str, trace: Option<TraceId>) -> LogRecord {
    LogRecord {
        tenant: "default".into(),
        timestamp_ns: ts,
        observed_ns: ts,
        severity_text: level.into(),
        severity_number: 0,
        body: body.into(),
        service: service.into(),
        host: "host-1".into(),
        trace_id: trace,
        span_id: None,
        source: "test".into(),
        attributes: vec![
            KeyValue::new("user_id", Value::Int(42)),
            KeyValue::new("http.method", Value::Str("GET".into())),
        ],
    }
}

pub fn tid(n: u8) -> TraceId {
    TraceId([n; 16])
}

pub fn sid(n: u8) -> SpanId {
    SpanId([n; 8])
}

#[allow(clippy::too_many_arguments)]
pub fn span(
    trace: TraceId,
    id: SpanId,
    parent: Option<SpanId>,
    service: &str,
    name: &str,
    start: i64,
    dur: i64,
    error: bool,
) -> Span {
    Span {
        tenant: "default".into(),
        trace_id: trace,
        span_id: id,
        parent_span_id: parent,
        trace_state: String::new(),
        name: name.into(),
        kind: SpanKind::Server,
        start_ns: start,
        end_ns: start + dur,
        status_code: if error {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        status_message: String::new(),
        service: service.into(),
        attributes: vec![KeyValue::new(
            "http.status_code",
            Value::Int(if error { 500 } else { 200 }),
        )],
        events: vec![],
        links: vec![],
        resource: vec![KeyValue::new("host.name", Value::Str("h1".into()))],
        scope_name: "test".into(),
        scope_version: String::new(),
    }
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
