//! OTLP/JSON bodies as the HTTP receiver sees them: parse, then convert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000_000_000_000;
    if let Ok(req) = serde_json::from_slice::<ExportTraceServiceRequest>(data) {
        let _ = triad_model::otlp::spans_from_otlp(req, "t", now);
    }
    if let Ok(req) = serde_json::from_slice::<ExportLogsServiceRequest>(data) {
        let _ = triad_model::otlp::logs_from_otlp(req, "t", now);
    }
});
