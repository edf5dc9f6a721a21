//! OTLP/protobuf bodies as the receivers see them: decode, then convert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000_000_000_000;
    if let Ok(req) = ExportTraceServiceRequest::decode(data) {
        let out = triad_model::otlp::spans_from_otlp(req, "t", now);
        for s in out.items {
            assert!(s.end_ns >= s.start_ns);
        }
    }
    if let Ok(req) = ExportLogsServiceRequest::decode(data) {
        let _ = triad_model::otlp::logs_from_otlp(req, "t", now);
    }
});
