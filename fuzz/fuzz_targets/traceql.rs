//! TraceQL text of Tempo's search API: parse, then evaluate against a small trace and
//! derive the index prefilter — nothing may panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_model::{KeyValue, Span, SpanId, SpanKind, StatusCode, TraceId, Value};

fn span(id: u8, parent: Option<u8>) -> Span {
    Span {
        tenant: "t".into(),
        trace_id: TraceId([1; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        name: format!("op{id}"),
        kind: SpanKind::Server,
        start_ns: 1_000,
        end_ns: 2_000 + id as i64,
        status_code: StatusCode::Error,
        status_message: "boom".into(),
        service: "svc".into(),
        attributes: vec![KeyValue { key: "n".into(), value: Value::Int(id as i64) }],
        events: Vec::new(),
        links: Vec::new(),
        resource: Vec::new(),
        scope_name: String::new(),
        scope_version: String::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(q) = triad_query::traceql::parse(text) {
        let trace = [span(1, None), span(2, Some(1))];
        let _ = q.matches(&trace);
        let _ = q.prefilter();
    }
});
