//! Chunk bytes as a damaged block file could hold them: decoding never panics, never
//! yields more samples than announced; and any decoded series encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_collector::tsdb::chunk::{ChunkIter, ChunkWriter};

fuzz_target!(|data: &[u8]| {
    let Some((&count, bytes)) = data.split_first() else { return };
    let samples: Vec<(i64, f64)> = ChunkIter::new(bytes, u16::from(count)).collect();
    assert!(samples.len() <= usize::from(count));
    if samples.windows(2).all(|w| w[0].0 < w[1].0) && !samples.is_empty() {
        let mut w = ChunkWriter::new();
        for &(t, v) in &samples {
            w.push(t, v);
        }
        let c = w.finish().expect("non-empty");
        let again: Vec<(i64, u64)> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(again, want);
    }
});
