//! A corrupt agent buffer segment (a torn or overwritten file) must open without a
//! panic: intact entries are kept, the rest cut off.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("00000000000000000001.seg"), data).is_err() {
        return;
    }
    if let Ok(b) = triad_agent::buffer::DiskBuffer::open(dir.path(), 1 << 30) {
        while let Ok(Some(e)) = b.front() {
            if b.ack(e.id, &e.positions).is_err() {
                break;
            }
        }
    }
});
