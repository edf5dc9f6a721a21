//! User input of the query API: log query text, times and durations.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = triad_splits::query_text::parse(text);
    let _ = triad_query::time::parse_time_ns(text);
    let _ = triad_query::time::parse_go_duration_ns(text);
});
