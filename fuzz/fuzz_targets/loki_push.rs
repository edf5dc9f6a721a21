//! Loki push bodies (snappy protobuf and JSON, as Promtail, Alloy and logging clients
//! send them): decode, then convert to OTLP and through the collector's validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (kind, body) = match data.split_first() {
        Some((k, b)) => (*k, b),
        None => return,
    };
    let streams = if kind % 2 == 0 {
        triad_receiver::loki::from_json(body)
    } else {
        triad_receiver::loki::from_protobuf(body)
    };
    if let Ok(streams) = streams {
        let req = triad_receiver::loki::to_otlp(streams);
        let _ = triad_model::otlp::logs_from_otlp(req, "t", 1_700_000_000_000_000_000);
    }
});
