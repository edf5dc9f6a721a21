//! Zipkin v2 JSON bodies as the agent's receiver sees them: parse, convert to OTLP,
//! then through the collector's validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spans) = serde_json::from_slice::<Vec<triad_receiver::zipkin::ZipkinSpan>>(data) {
        let (req, _, _) = triad_receiver::zipkin::to_otlp(spans);
        let _ = triad_model::otlp::spans_from_otlp(req, "t", 1_700_000_000_000_000_000);
    }
});
