//! A per-split filter of trace IDs (a Bloom filter), carried in a trace split's bundle
//! footer, so a trace-by-ID lookup over object storage opens only the splits that may
//! hold the trace instead of asking every split's term dictionary.
//!
//! Sized for a 1% false-positive rate (9.6 bits and 7 probes per trace). The probe
//! positions come from the trace ID itself by double hashing: IDs are mostly random
//! already, but some generators put a timestamp in the first bytes (AWS X-Ray), so both
//! halves go through a 64-bit finalizer (SplitMix64's) first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use triad_model::TraceId;

/// Probes per trace ID.
const PROBES: u64 = 7;
/// Bits per trace ID for a ~1% false-positive rate with 7 probes.
const BITS_PER_ID: f64 = 9.6;

/// A Bloom filter of trace IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFilter {
    bits: Vec<u64>,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl TraceFilter {
    /// A filter holding `ids`.
    pub fn new<'a>(ids: impl ExactSizeIterator<Item = &'a TraceId>) -> TraceFilter {
        let words = ((ids.len().max(1) as f64 * BITS_PER_ID / 64.0).ceil() as usize).max(1);
        let mut f = TraceFilter {
            bits: vec![0; words],
        };
        for id in ids {
            for bit in f.positions(id) {
                f.bits[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        f
    }

    fn positions(&self, id: &TraceId) -> impl Iterator<Item = u64> + use<> {
        let m = self.bits.len() as u64 * 64;
        let mut hi = [0u8; 8];
        let mut lo = [0u8; 8];
        hi.copy_from_slice(&id.0[..8]);
        lo.copy_from_slice(&id.0[8..]);
        let h1 = mix(u64::from_le_bytes(hi));
        let h2 = mix(u64::from_le_bytes(lo)) | 1;
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }

    /// False when the filter's split certainly holds no span of `id`.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        self.positions(id)
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Its size, bytes.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

impl Serialize for TraceFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.bits.iter().flat_map(|w| w.to_le_bytes()).collect();
        s.serialize_str(&BASE64.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for TraceFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64.decode(text).map_err(serde::de::Error::custom)?;
        if bytes.is_empty() || bytes.len() % 8 != 0 {
            return Err(serde::de::Error::custom(format!(
                "a trace filter of {} bytes is not whole 64-bit words",
                bytes.len()
            )));
        }
        Ok(TraceFilter {
            bits: bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every ID put in is found (no false negatives), through a serde round trip.
        #[test]
        fn holds_every_id_it_was_built_from(ids in prop::collection::vec(any::<[u8; 16]>(), 0..300)) {
            let ids: Vec<TraceId> = ids.into_iter().map(TraceId).collect();
            let f = TraceFilter::new(ids.iter());
            let f: TraceFilter = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
            for id in &ids {
                prop_assert!(f.may_contain(id));
            }
        }
    }

    #[test]
    fn false_positives_stay_near_one_percent_also_for_timestamped_ids() {
        // X-Ray style: the first four bytes are the same epoch second for all.
        let id = |i: u64| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&1_700_000_000u32.to_be_bytes());
            b[4..12].copy_from_slice(&mix(i).to_le_bytes());
            TraceId(b)
        };
        let ids: Vec<TraceId> = (0..10_000).map(id).collect();
        let f = TraceFilter::new(ids.iter());
        // IDs never put in.
        let fp = (1_000_000..1_100_000)
            .filter(|i| f.may_contain(&id(*i)))
            .count();
        assert!(fp < 2_000, "{fp} false positives in 100000");
        assert_eq!(f.bytes(), 12_000);
        assert!(serde_json::from_str::<TraceFilter>("\"AAAA\"").is_err());
    }
}
