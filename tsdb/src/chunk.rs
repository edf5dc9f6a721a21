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

/// Appends bits most-significant first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 = start a new byte).
    free: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `v` (n ≤ 64).
    fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let part = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            self.free -= take;
            if let Some(last) = self.bytes.last_mut() {
                *last |= part << self.free;
            }
            n -= take;
        }
    }

    fn write_uvarint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.write_bits(u64::from(byte), 8);
                return;
            }
            self.write_bits(u64::from(byte | 0x80), 8);
        }
    }

    fn write_varint(&mut self, v: i64) {
        self.write_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// Reads bits most-significant first; `None` past the end.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// The 64 bits from byte `i` on, most significant first, zeros past the end.
    fn word(&self, i: usize) -> u64 {
        match self.bytes.get(i..i + 8) {
            Some(b) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_be_bytes(w)
            }
            None => {
                let tail = self.bytes.get(i..).unwrap_or(&[]);
                let mut w = [0u8; 8];
                w[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(w)
            }
        }
    }

    /// Reads `n` bits (n ≤ 64) with at most two word loads, instead of a byte at a
    /// time: decoding is most of a query's time over head data.
    fn read_bits(&mut self, n: u8) -> Option<u64> {
        let n = u32::from(n);
        if n == 0 {
            return Some(0);
        }
        if n > 64 || self.pos + n as usize > self.bytes.len() * 8 {
            return None;
        }
        let (i, off) = (self.pos / 8, (self.pos % 8) as u32);
        let v = if off + n <= 64 {
            (self.word(i) << off) >> (64 - n)
        } else {
            // More than 57 bits from an unaligned start: the last few come from the
            // ninth byte.
            let head = self.word(i) << off;
            let rest = u64::from(self.bytes.get(i + 8).copied().unwrap_or(0));
            (head | (rest >> (8 - off))) >> (64 - n)
        };
        self.pos += n as usize;
        Some(v)
    }

    fn read_uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.read_bits(8)?;
            v |= (byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn read_varint(&mut self) -> Option<i64> {
        let u = self.read_uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

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

/// How a chunk's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Gorilla XOR values ([`ChunkWriter`]); any f64.
    Xor = 1,
    /// Integer values as bit-packed deltas (`encode_int`); counters and gauges that
    /// only hold integers, the common case, take about half the bytes of XOR.
    IntDelta = 2,
    /// [`Encoding::IntDelta`] for a chunk whose samples are evenly spaced (every scrape
    /// on time, the common case): the spacing is written once instead of a
    /// delta-of-delta bit per sample.
    IntRegular = 3,
}

impl Encoding {
    /// From the byte stored in a block index.
    pub fn from_u8(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::IntDelta),
            3 => Some(Encoding::IntRegular),
            _ => None,
        }
    }
}

/// Whether a value survives the integer encoding bit for bit.
fn is_plain_integer(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 && !(v == 0.0 && v.is_sign_negative())
}

/// Encodes samples (strictly increasing timestamps) in whichever encoding is smaller.
pub fn encode_best(samples: &[(i64, f64)]) -> Option<(Encoding, Chunk)> {
    let mut xor = ChunkWriter::new();
    for &(t, v) in samples {
        xor.push(t, v);
    }
    let xor = xor.finish()?;
    if !samples.iter().all(|(_, v)| is_plain_integer(*v)) {
        return Some((Encoding::Xor, xor));
    }
    let ints: Vec<(i64, i64)> = samples.iter().map(|&(t, v)| (t, v as i64)).collect();
    let regular = samples.len() > 2
        && samples
            .windows(3)
            .all(|w| w[2].0.wrapping_sub(w[1].0) == w[1].0.wrapping_sub(w[0].0));
    let int = Chunk {
        bytes: encode_int(&ints, regular),
        count: xor.count,
        min_t: xor.min_t,
        max_t: xor.max_t,
    };
    let encoding = if regular {
        Encoding::IntRegular
    } else {
        Encoding::IntDelta
    };
    Some(if int.bytes.len() < xor.bytes.len() {
        (encoding, int)
    } else {
        (Encoding::Xor, xor)
    })
}

/// Decodes a chunk of either encoding.
pub fn decode(encoding: Encoding, bytes: &[u8], count: u16) -> Vec<(i64, f64)> {
    match encoding {
        Encoding::Xor => ChunkIter::new(bytes, count).collect(),
        Encoding::IntDelta => decode_int(bytes, count, false),
        Encoding::IntRegular => decode_int(bytes, count, true),
    }
}

/// Encodes integer samples as [`Encoding::IntDelta`]: the first timestamp and value as
/// zig-zag varints; a header with a base delta (the median, zig-zag varint) and a bit
/// width `w` (6 bits); then per sample the timestamp delta-of-delta as in the XOR chunk
/// and the value delta as `0` + `w` bits of zig-zag(delta − base), or `1` + 64 bits for
/// the rare delta that does not fit (a counter reset). `w` is chosen per chunk to
/// minimise the size: a counter growing by 0–19 per scrape takes 6 bits a value.
/// `regular` ([`Encoding::IntRegular`]): the first timestamp delta is written once,
/// after the header, and no timestamp bits follow per sample.
fn encode_int(samples: &[(i64, i64)], regular: bool) -> Vec<u8> {
    let mut w = BitWriter::default();
    let Some(&(t0, v0)) = samples.first() else {
        return Vec::new();
    };
    w.write_varint(t0);
    w.write_varint(v0);
    let deltas: Vec<i64> = samples
        .windows(2)
        .map(|p| p[1].1.wrapping_sub(p[0].1))
        .collect();
    let base = if deltas.is_empty() {
        0
    } else {
        let mut sorted = deltas.clone();
        sorted.sort_unstable();
        sorted[sorted.len() / 2]
    };
    let zig = |d: i64| {
        let x = d.wrapping_sub(base);
        ((x << 1) ^ (x >> 63)) as u64
    };
    let needed: Vec<u32> = deltas
        .iter()
        .map(|d| 64 - zig(*d).leading_zeros())
        .collect();
    let width = (0..=40u32)
        .min_by_key(|w| {
            needed
                .iter()
                .map(|n| if n <= w { 1 + u64::from(*w) } else { 65 })
                .sum::<u64>()
        })
        .unwrap_or(0);
    w.write_varint(base);
    w.write_bits(u64::from(width), 6);
    let (mut prev_t, mut prev_td) = (t0, 0i64);
    for (i, (&(t, _), d)) in samples[1..].iter().zip(&deltas).enumerate() {
        let td = t.wrapping_sub(prev_t);
        if i == 0 {
            w.write_varint(td);
        } else if !regular {
            write_ts_dod(&mut w, td.wrapping_sub(prev_td));
        }
        prev_t = t;
        prev_td = td;
        let z = zig(*d);
        if 64 - z.leading_zeros() <= width {
            w.write_bit(false);
            w.write_bits(z, width as u8);
        } else {
            w.write_bit(true);
            w.write_bits(*d as u64, 64);
        }
    }
    w.bytes
}

fn decode_int(bytes: &[u8], count: u16, regular: bool) -> Vec<(i64, f64)> {
    let mut r = BitReader { bytes, pos: 0 };
    let mut out = Vec::with_capacity(usize::from(count));
    if count == 0 {
        return out;
    }
    let mut read_all = || -> Option<()> {
        let (mut t, mut v) = (r.read_varint()?, r.read_varint()?);
        out.push((t, v as f64));
        let base = r.read_varint()?;
        let width = r.read_bits(6)? as u8;
        let mut td = 0i64;
        for i in 1..count {
            td = if i == 1 {
                r.read_varint()?
            } else if regular {
                td
            } else {
                td.wrapping_add(read_ts_dod(&mut r)?)
            };
            t = t.wrapping_add(td);
            let d = if r.read_bit()? {
                r.read_bits(64)? as i64
            } else {
                let z = if width == 0 { 0 } else { r.read_bits(width)? };
                (((z >> 1) as i64) ^ -((z & 1) as i64)).wrapping_add(base)
            };
            v = v.wrapping_add(d);
            out.push((t, v as f64));
        }
        Some(())
    };
    let _ = read_all();
    out
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
