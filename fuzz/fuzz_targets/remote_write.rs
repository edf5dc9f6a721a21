//! remote_write bodies as a sender posts them: snappy-compressed protobuf, raw bytes
//! and bytes that are valid snappy around arbitrary protobuf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_collector::remote_write::decode;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, 1 << 20);
    if let Ok(wrapped) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = decode(&wrapped, 1 << 20);
    }
});
