//! The TSDB's write-ahead log records. One record per commit holds, in this order:
//! new series (id and labels), samples (series id, timestamp, value bits), exemplars and
//! metadata. Integers are LEB128 varints (timestamps zig-zag, as deltas from the
//! previous timestamp of the record), values 8 bytes little endian, strings
//! length-prefixed. The record's CRC lives in the WAL framing (`crate::wal`).

use triad_model::metric::{Exemplar, Labels, MetricMetadata};

const VERSION: u8 = 1;

/// The content of one WAL record.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WalRecord {
    /// Series created by this commit.
    pub series: Vec<(u32, Labels)>,
    /// (series id, timestamp ms, value).
    pub samples: Vec<(u32, i64, f64)>,
    /// (series id, exemplar).
    pub exemplars: Vec<(u32, Exemplar)>,
    /// (metric family, metadata).
    pub metadata: Vec<(String, MetricMetadata)>,
}

impl WalRecord {
    /// True when there is nothing to log.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.samples.is_empty()
            && self.exemplars.is_empty()
            && self.metadata.is_empty()
    }

    /// Encodes into `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(VERSION);
        put_uvarint(out, self.series.len() as u64);
        for (id, labels) in &self.series {
            put_uvarint(out, u64::from(*id));
            put_labels(out, labels);
        }
        put_uvarint(out, self.samples.len() as u64);
        let mut prev_t = 0i64;
        for (id, t, v) in &self.samples {
            put_uvarint(out, u64::from(*id));
            put_varint(out, t.wrapping_sub(prev_t));
            prev_t = *t;
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        put_uvarint(out, self.exemplars.len() as u64);
        for (id, e) in &self.exemplars {
            put_uvarint(out, u64::from(*id));
            put_varint(out, e.timestamp_ms);
            out.extend_from_slice(&e.value.to_bits().to_le_bytes());
            put_labels(out, &e.labels);
        }
        put_uvarint(out, self.metadata.len() as u64);
        for (name, m) in &self.metadata {
            put_str(out, name);
            put_str(out, &m.metric_type);
            put_str(out, &m.help);
            put_str(out, &m.unit);
        }
    }

    /// Decodes a record; `None` when the bytes are not a valid record.
    pub fn decode(bytes: &[u8]) -> Option<WalRecord> {
        let mut r = Reader { bytes, pos: 0 };
        if r.byte()? != VERSION {
            return None;
        }
        let mut rec = WalRecord::default();
        let n = r.len()?;
        for _ in 0..n {
            let id = u32::try_from(r.uvarint()?).ok()?;
            rec.series.push((id, r.labels()?));
        }
        let n = r.len()?;
        rec.samples.reserve(n);
        let mut t = 0i64;
        for _ in 0..n {
            let id = u32::try_from(r.uvarint()?).ok()?;
            t = t.wrapping_add(r.varint()?);
            rec.samples.push((id, t, f64::from_bits(r.u64()?)));
        }
        let n = r.len()?;
        for _ in 0..n {
            let id = u32::try_from(r.uvarint()?).ok()?;
            let timestamp_ms = r.varint()?;
            let value = f64::from_bits(r.u64()?);
            let labels = r.labels()?;
            rec.exemplars.push((
                id,
                Exemplar {
                    labels,
                    value,
                    timestamp_ms,
                },
            ));
        }
        let n = r.len()?;
        for _ in 0..n {
            let name = r.string()?;
            let metric_type = r.string()?;
            let help = r.string()?;
            let unit = r.string()?;
            rec.metadata.push((
                name,
                MetricMetadata {
                    metric_type,
                    help,
                    unit,
                },
            ));
        }
        (r.pos == bytes.len()).then_some(rec)
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for (n, v) in labels.iter() {
        put_str(out, n);
        put_str(out, v);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A count, bounded by the bytes left (every item takes at least one byte).
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        (n <= self.bytes.len() - self.pos).then_some(n)
    }

    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn u64(&mut self) -> Option<u64> {
        let end = self.pos.checked_add(8)?;
        let b: [u8; 8] = self.bytes.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(u64::from_le_bytes(b))
    }

    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        let end = self.pos + n;
        let s = std::str::from_utf8(self.bytes.get(self.pos..end)?).ok()?;
        self.pos = end;
        Some(s.to_string())
    }

    fn labels(&mut self) -> Option<Labels> {
        let n = self.len()?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            pairs.push((self.string()?, self.string()?));
        }
        Some(Labels::new(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_reject_garbage() {
        let labels = Labels::new(vec![
            ("__name__".into(), "http_requests_total".into()),
            ("job".into(), "api".into()),
        ]);
        let rec = WalRecord {
            series: vec![(7, labels.clone())],
            samples: vec![
                (7, 1_700_000_000_000, 1.5),
                (7, 1_700_000_015_000, f64::INFINITY),
            ],
            exemplars: vec![(
                7,
                Exemplar {
                    labels: Labels::new(vec![("trace_id".into(), "ab".into())]),
                    value: 0.3,
                    timestamp_ms: 5,
                },
            )],
            metadata: vec![(
                "http_requests_total".into(),
                MetricMetadata {
                    metric_type: "counter".into(),
                    help: "Requests.".into(),
                    unit: String::new(),
                },
            )],
        };
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(WalRecord::decode(&buf), Some(rec));
        for cut in 0..buf.len() {
            assert_eq!(WalRecord::decode(&buf[..cut]), None);
        }
        assert_eq!(WalRecord::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]), None);
    }
}
