//! Scrape bodies as a target sends them: Prometheus text and OpenMetrics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_collector::exposition::{Format, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text, Format::Prometheus);
        let _ = parse(text, Format::OpenMetrics);
    }
});
