//! Chunk bytes as a damaged block file could hold them: decoding any encoding never
//! panics and never yields more samples than announced; whatever decodes to a valid
//! series encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_tsdb::chunk::{Encoding, decode, encode_best};

fuzz_target!(|data: &[u8]| {
    let Some((&count, bytes)) = data.split_first() else { return };
    for encoding in [Encoding::Xor, Encoding::IntDelta, Encoding::IntRegular] {
        let samples = decode(encoding, bytes, u16::from(count));
        assert!(samples.len() <= usize::from(count));
        if samples.is_empty() || !samples.windows(2).all(|w| w[0].0 < w[1].0) {
            continue;
        }
        let (enc, c) = encode_best(&samples).expect("non-empty");
        let again: Vec<(i64, u64)> = decode(enc, &c.bytes, c.count)
            .into_iter()
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(again, want);
    }
});
