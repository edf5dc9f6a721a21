//! Tailed file content: any bytes, split into lines, through every line format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_agent::decode::{Decoder, Format};
use triad_agent::fields::LineContext;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Lines, Format::Docker, Format::Cri] {
        let mut d = Decoder::new(format, LineContext::default(), 4096);
        for line in data.split(|b| *b == b'\n') {
            let _ = d.push(line, 1);
        }
        let _ = d.flush(1);
    }
});
