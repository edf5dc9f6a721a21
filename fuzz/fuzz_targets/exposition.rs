//! Scrape bodies as a target sends them: Prometheus text and OpenMetrics, through the
//! full parse and through the scraper's fast path (series seen before are not re-read);
//! both must accept and refuse the same bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_collector::exposition::{Format, parse, parse_with};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let full = parse(text, format);
            let known: std::collections::HashSet<&str> = match &full {
                Ok(e) => e.samples.iter().filter_map(|s| text.get(s.series.clone())).collect(),
                Err(_) => Default::default(),
            };
            let fast = parse_with(text, format, |k| known.contains(k));
            assert_eq!(full.is_ok(), fast.is_ok(), "fast path disagrees on {text:?}");
        }
    }
});
