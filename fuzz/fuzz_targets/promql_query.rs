//! User input of the Prometheus API: PromQL text, through the parser Triad sets up
//! (Prometheus 2.x function names registered, number literals checked by a scan that
//! skips strings and comments). Nothing may panic; a literal the scan refuses must be
//! one a float cannot hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(triad_promql::EvalError::BadData(m)) = triad_promql::Engine::parse(text) {
        assert!(!m.is_empty());
    }
});
