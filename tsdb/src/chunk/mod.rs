//! Gorilla-style compressed chunks of (timestamp ms, f64) samples.
//!
//! The layout follows Prometheus' XOR chunk (Pelkonen et al., "Gorilla", VLDB 2015):
//! the first timestamp as a zig-zag varint and the first value as 64 raw bits; the
//! second timestamp as a varint delta; every later timestamp as a delta-of-delta in a
//! variable-width bucket (`0`, `10`+14 bits, `110`+17, `1110`+20, `1111`+64); every value
//! as the XOR with the previous one (`0` when equal, `10` + the meaningful bits when
//! they fit the previous leading/trailing-zero window, `11` + 5 bits of leading zeros +
//! 6 bits of length + the bits otherwise). Regular scrape intervals and slowly changing
//! values cost one to two bytes per sample.
//!
//! The sample count is kept beside the bytes (in [`Chunk`]), not inside them.

mod bits;
mod encoding;

use bits::{BitReader, BitWriter};
pub use encoding::{Encoding, decode, encode_best};

/// A sealed, immutable chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Encoded samples.
    pub bytes: Vec<u8>,
    /// Number of samples.
    pub count: u16,
    /// First timestamp, ms.
    pub min_t: i64,
    /// Last timestamp, ms.
    pub max_t: i64,
}

impl Chunk {
    /// Decodes every sample.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bytes, self.count)
    }
}

/// Builds a chunk sample by sample. Timestamps must strictly increase (the caller
/// enforces it).
#[derive(Debug, Clone, Default)]
pub struct ChunkWriter {
    bits: BitWriter,
    count: u16,
    min_t: i64,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

/// Most samples in one chunk (as Prometheus: about two hours at a 1-minute interval).
pub const MAX_CHUNK_SAMPLES: u16 = 120;

impl ChunkWriter {
    /// An empty chunk.
    pub fn new() -> ChunkWriter {
        ChunkWriter {
            leading: 0xff,
            ..Default::default()
        }
    }

    /// Samples written so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// True when the chunk should be sealed.
    pub fn is_full(&self) -> bool {
        self.count >= MAX_CHUNK_SAMPLES
    }

    /// Last timestamp written, if any.
    pub fn max_t(&self) -> Option<i64> {
        (self.count > 0).then_some(self.t)
    }

    /// First timestamp written, if any.
    pub fn min_t(&self) -> Option<i64> {
        (self.count > 0).then_some(self.min_t)
    }

    /// Encoded size so far.
    pub fn byte_len(&self) -> usize {
        self.bits.bytes.len()
    }

    /// Appends a sample.
    pub fn push(&mut self, t: i64, v: f64) {
        let v = v.to_bits();
        match self.count {
            0 => {
                self.bits.write_varint(t);
                self.bits.write_bits(v, 64);
                self.min_t = t;
            }
            1 => {
                let delta = t.wrapping_sub(self.t);
                self.bits.write_varint(delta);
                self.t_delta = delta;
                self.write_value(v);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.t_delta);
                self.write_dod(dod);
                self.t_delta = delta;
                self.write_value(v);
            }
        }
        self.t = t;
        self.v = v;
        self.count += 1;
    }

    fn write_dod(&mut self, dod: i64) {
        write_ts_dod(&mut self.bits, dod);
    }

    fn write_value(&mut self, v: u64) {
        let xor = v ^ self.v;
        let w = &mut self.bits;
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            w.write_bits(xor >> self.trailing, sig);
        } else {
            w.write_bit(true);
            let sig = 64 - leading - trailing;
            w.write_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0: the length never is 0.
            w.write_bits(u64::from(sig & 63), 6);
            w.write_bits(xor >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// A copy of the chunk as it is now (readers of the open chunk use it).
    pub fn snapshot(&self) -> Option<Chunk> {
        (self.count > 0).then(|| Chunk {
            bytes: self.bits.bytes.clone(),
            count: self.count,
            min_t: self.min_t,
            max_t: self.t,
        })
    }

    /// Seals the chunk; `None` when empty.
    pub fn finish(self) -> Option<Chunk> {
        (self.count > 0).then_some(Chunk {
            bytes: self.bits.bytes,
            count: self.count,
            min_t: self.min_t,
            max_t: self.t,
        })
    }
}

/// Writes a timestamp delta-of-delta: `0`, `10`+14 bits, `110`+17, `1110`+20, `1111`+64.
fn write_ts_dod(w: &mut BitWriter, dod: i64) {
    if dod == 0 {
        w.write_bit(false);
    } else if fits(dod, 14) {
        w.write_bits(0b10, 2);
        w.write_bits(dod as u64, 14);
    } else if fits(dod, 17) {
        w.write_bits(0b110, 3);
        w.write_bits(dod as u64, 17);
    } else if fits(dod, 20) {
        w.write_bits(0b1110, 4);
        w.write_bits(dod as u64, 20);
    } else {
        w.write_bits(0b1111, 4);
        w.write_bits(dod as u64, 64);
    }
}

/// Reads what [`write_ts_dod`] wrote.
fn read_ts_dod(r: &mut BitReader<'_>) -> Option<i64> {
    let mut prefix = 0u8;
    while prefix < 4 && r.read_bit()? {
        prefix += 1;
    }
    Some(match prefix {
        0 => 0,
        1 => sign_extend(r.read_bits(14)?, 14),
        2 => sign_extend(r.read_bits(17)?, 17),
        3 => sign_extend(r.read_bits(20)?, 20),
        _ => r.read_bits(64)? as i64,
    })
}

/// Whether `v` fits a two's-complement field of `bits` bits, as Prometheus tests it.
fn fits(v: i64, bits: u8) -> bool {
    let lo = -(1i64 << (bits - 1)) + 1;
    let hi = 1i64 << (bits - 1);
    (lo..=hi).contains(&v)
}

/// Reads a `bits`-wide delta-of-delta field. The encodable range is
/// `[-(2^(bits-1) - 1), 2^(bits-1)]` (see [`fits`]), so the top pattern is +2^(bits-1),
/// as Prometheus reads it, not two's-complement −2^(bits-1).
fn sign_extend(v: u64, bits: u8) -> i64 {
    let v = v as i64;
    if v > 1 << (bits - 1) {
        v - (1 << bits)
    } else {
        v
    }
}

/// Iterates the samples of an encoded chunk. Stops early on corrupt bytes.
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    remaining: u16,
    read: u16,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> ChunkIter<'a> {
    /// Reads `count` samples from `bytes`.
    pub fn new(bytes: &'a [u8], count: u16) -> ChunkIter<'a> {
        ChunkIter {
            r: BitReader { bytes, pos: 0 },
            remaining: count,
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
        }
    }

    fn read_dod(&mut self) -> Option<i64> {
        read_ts_dod(&mut self.r)
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.r.read_bit()? {
            return Some(());
        }
        if self.r.read_bit()? {
            self.leading = self.r.read_bits(5)? as u8;
            let mut sig = self.r.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64u8.checked_sub(self.leading + sig)?;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v ^= bits.checked_shl(u32::from(self.trailing)).unwrap_or(0);
        Some(())
    }

    fn next_sample(&mut self) -> Option<(i64, f64)> {
        match self.read {
            0 => {
                self.t = self.r.read_varint()?;
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.r.read_varint()?;
                self.t = self.t.wrapping_add(self.t_delta);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.t_delta = self.t_delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.t_delta);
                self.read_value()?;
            }
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let s = self.next_sample();
        if s.is_none() {
            self.remaining = 0;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integer_series_take_the_smaller_encoding() {
        let mut samples = Vec::new();
        let mut v = 0.0;
        for i in 0..960i64 {
            v += ((i * 7919) % 20) as f64;
            samples.push((1_700_000_000_000 + i * 15_000, v));
        }
        let (enc, c) = encode_best(&samples).unwrap();
        assert_eq!(enc, Encoding::IntRegular);
        // One late scrape: the general integer encoding, about a bit a sample more.
        let mut late = samples.clone();
        late[500].0 += 7;
        let (enc_late, c_late) = encode_best(&late).unwrap();
        assert_eq!(enc_late, Encoding::IntDelta);
        assert_eq!(decode(enc_late, &c_late.bytes, c_late.count), late);
        assert!(c_late.bytes.len() > c.bytes.len() + 100);
        let mut xor = ChunkWriter::new();
        for &(t, v) in &samples {
            xor.push(t, v);
        }
        let xor = xor.finish().unwrap();
        assert!(
            c.bytes.len() * 3 < xor.bytes.len() * 2,
            "{} vs {} bytes",
            c.bytes.len(),
            xor.bytes.len()
        );
        assert_eq!(decode(enc, &c.bytes, c.count), samples);
        // Fractions, NaN and -0 stay XOR.
        assert_eq!(encode_best(&[(0, 0.5), (1, 1.0)]).unwrap().0, Encoding::Xor);
        assert_eq!(
            encode_best(&[(0, -0.0), (1, 1.0)]).unwrap().0,
            Encoding::Xor
        );
        // Truncated bytes stop early without panicking.
        for cut in 0..c.bytes.len() {
            assert!(decode(enc, &c.bytes[..cut], c.count).len() < 960);
        }
    }

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
        let mut w = ChunkWriter::new();
        for &(t, v) in samples {
            w.push(t, v);
        }
        let c = w.finish().unwrap();
        c.iter().map(|(t, v)| (t, v.to_bits())).collect()
    }

    #[test]
    fn regular_scrapes_cost_little() {
        let mut w = ChunkWriter::new();
        let mut v = 0.0;
        for i in 0..120 {
            v += 1.0;
            w.push(1_700_000_000_000 + i * 15_000, v);
        }
        let c = w.finish().unwrap();
        assert!(c.bytes.len() < 120 * 2, "{} bytes", c.bytes.len());
        assert_eq!(c.iter().count(), 120);
        assert_eq!(
            c.iter().last(),
            Some((1_700_000_000_000 + 119 * 15_000, 120.0))
        );
    }

    #[test]
    fn special_values_keep_their_bits() {
        let vals = [
            0.0,
            -0.0,
            f64::NAN,
            triad_model::metric::stale_nan(),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            1.0,
        ];
        let samples: Vec<_> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 7, *v))
            .collect();
        let got = roundtrip(&samples);
        let want: Vec<_> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn truncated_bytes_stop_without_panic() {
        let mut w = ChunkWriter::new();
        for i in 0..50 {
            w.push(i * 1000 + (i * i) % 7, (i as f64).sin());
        }
        let c = w.finish().unwrap();
        for cut in 0..c.bytes.len() {
            let n = ChunkIter::new(&c.bytes[..cut], c.count).count();
            assert!(n < 50);
        }
    }

    #[test]
    fn bucket_edges_roundtrip() {
        for edge in [
            8191i64, 8192, 8193, -8191, -8192, 65536, 65537, -65535, 524_288, -524_287, 524_289,
        ] {
            let samples = [
                (0i64, 1.0),
                (1000, 2.0),
                (2000 + edge, 3.0),
                (3000 + 2 * edge, 4.0),
            ];
            let got = roundtrip(&samples);
            let want: Vec<_> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            assert_eq!(got, want, "dod {edge}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Fields of any width at any bit offset read back as written, and reading
        /// past the end is refused.
        #[test]
        fn bit_fields_roundtrip(fields in proptest::collection::vec((any::<u64>(), 0u8..=64), 0..40)) {
            let mut w = BitWriter::default();
            for &(v, n) in &fields {
                w.write_bits(v, n);
            }
            let mut r = BitReader { bytes: &w.bytes, pos: 0 };
            for &(v, n) in &fields {
                let want = if n == 64 { v } else { v & ((1u64 << n) - 1) };
                prop_assert_eq!(r.read_bits(n), Some(want));
            }
            let left = (w.bytes.len() * 8 - r.pos) as u8;
            prop_assert_eq!(r.read_bits(left + 1), None);
        }

        #[test]
        fn any_integer_series_roundtrips(
            start in -1_000_000_000_000i64..4_000_000_000_000,
            steps in proptest::collection::vec((1i64..100_000_000, -1_000_000_000_000i64..1_000_000_000_000), 1..300),
        ) {
            let mut t = start;
            let mut samples = Vec::new();
            for (dt, v) in steps {
                samples.push((t, v as f64));
                t += dt;
            }
            let (enc, c) = encode_best(&samples).unwrap();
            prop_assert_eq!(decode(enc, &c.bytes, c.count), samples);
        }

        #[test]
        fn evenly_spaced_series_roundtrip(
            start in -1_000_000_000_000i64..4_000_000_000_000,
            dt in 1i64..100_000_000,
            values in proptest::collection::vec(-1_000_000i64..1_000_000, 1..300),
        ) {
            let samples: Vec<(i64, f64)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (start + i as i64 * dt, *v as f64))
                .collect();
            let (enc, c) = encode_best(&samples).unwrap();
            prop_assert_eq!(decode(enc, &c.bytes, c.count), samples);
        }

        #[test]
        fn any_increasing_series_roundtrips(
            start in -1_000_000_000_000i64..4_000_000_000_000,
            steps in proptest::collection::vec((1i64..10_000_000_000, any::<u64>()), 1..120),
        ) {
            let mut t = start;
            let mut samples = Vec::new();
            for (dt, bits) in steps {
                samples.push((t, f64::from_bits(bits)));
                t += dt;
            }
            let got = roundtrip(&samples);
            let want: Vec<_> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
