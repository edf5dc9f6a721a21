//! Which layout a sealed chunk gets: Gorilla XOR for any float series, or bit-packed
//! integer deltas (encoding 2), with the spacing stored once for evenly spaced series
//! (encoding 3), whichever is smaller.

use super::*;

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
pub(super) fn is_plain_integer(v: f64) -> bool {
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
pub(super) fn encode_int(samples: &[(i64, i64)], regular: bool) -> Vec<u8> {
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

pub(super) fn decode_int(bytes: &[u8], count: u16, regular: bool) -> Vec<(i64, f64)> {
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
