//! The in-memory head: the newest samples of every active series, in compressed chunks,
//! with the label index and the latest exemplars and metadata.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use triad_model::metric::{Exemplar, Labels, Matcher, MetricMetadata};

use super::chunk::{Chunk, ChunkWriter};
use super::index::Postings;

/// Exemplars kept per series (the newest win), as a bounded ring.
pub const EXEMPLARS_PER_SERIES: usize = 8;

/// One series in the head.
pub struct MemSeries {
    /// Its labels.
    pub labels: Labels,
    /// Sealed chunks, oldest first.
    pub chunks: Vec<Arc<Chunk>>,
    /// The chunk being written.
    pub open: ChunkWriter,
    /// Timestamp of the newest sample ever appended (also across cuts); `i64::MIN` when
    /// none.
    pub last_t: i64,
    /// Bits of the newest value.
    pub last_v: u64,
    /// Newest exemplars.
    pub exemplars: VecDeque<Exemplar>,
}

impl MemSeries {
    fn new(labels: Labels) -> MemSeries {
        MemSeries {
            labels,
            chunks: Vec::new(),
            open: ChunkWriter::new(),
            last_t: i64::MIN,
            last_v: 0,
            exemplars: VecDeque::new(),
        }
    }

    /// True when the series holds samples in the head.
    pub fn has_samples(&self) -> bool {
        !self.chunks.is_empty() || self.open.count() > 0
    }

    /// Chunks overlapping `[start, end]`, the open one as a snapshot.
    pub fn chunks_in(&self, start: i64, end: i64) -> Vec<Arc<Chunk>> {
        let mut out: Vec<Arc<Chunk>> = self
            .chunks
            .iter()
            .filter(|c| c.max_t >= start && c.min_t <= end)
            .cloned()
            .collect();
        if let (Some(lo), Some(hi)) = (self.open.min_t(), self.open.max_t())
            && hi >= start
            && lo <= end
            && let Some(c) = self.open.snapshot()
        {
            out.push(Arc::new(c));
        }
        out
    }
}

/// Why a sample was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Older than the series' newest sample.
    OutOfOrder,
    /// Same timestamp as the newest sample, another value.
    DuplicateTimestamp,
    /// Same timestamp and value as the newest sample: dropped silently, as Prometheus.
    Repeat,
}

/// Maps of the hot path: foldhash (seeded per process) instead of SipHash, which took a
/// fifth of the CPU of a scrape.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The head's state.
#[derive(Default)]
pub struct Head {
    series: FastMap<u32, MemSeries>,
    by_labels: FastMap<Labels, u32>,
    /// Series by the allocation of their `MemSeries::labels`: a scraper hands the same
    /// label set (its cache's clone) every scrape, and finding it by address skips
    /// hashing every label string. A hit is trusted only when the series' labels are
    /// that very allocation.
    by_alloc: FastMap<usize, u32>,
    postings: Postings,
    next_id: u32,
    /// Newest metadata per metric family.
    pub metadata: HashMap<String, MetricMetadata>,
    /// Smallest and largest timestamp in the head's chunks; (MAX, MIN) when empty.
    pub min_t: i64,
    /// See `min_t`.
    pub max_t: i64,
    /// Samples in the head.
    pub samples: u64,
    #[cfg(test)]
    resorts: usize,
}

impl Head {
    /// An empty head.
    pub fn new() -> Head {
        Head {
            min_t: i64::MAX,
            max_t: i64::MIN,
            ..Default::default()
        }
    }

    /// The id of a series, created when new; `true` when it was created.
    pub fn get_or_create(&mut self, labels: &Labels) -> (u32, bool) {
        if let Some(&id) = self.by_alloc.get(&labels.allocation())
            && self
                .series
                .get(&id)
                .is_some_and(|s| s.labels.same_allocation(labels))
        {
            return (id, false);
        }
        if let Some(&id) = self.by_labels.get(labels) {
            // A label set someone else also holds (a scrape cache) will come back: adopt
            // that allocation so its next lookups take the fast path. A one-off handle
            // (a remote_write request's) is not worth the swap.
            if labels.handles() > 1
                && let Some(s) = self.series.get_mut(&id)
            {
                self.by_alloc.remove(&s.labels.allocation());
                s.labels = labels.clone();
                self.by_alloc.insert(labels.allocation(), id);
                // Re-key so the old allocation is freed: one copy of the strings.
                self.by_labels.remove(labels);
                self.by_labels.insert(labels.clone(), id);
            }
            return (id, false);
        }
        // `insert` advances `next_id`; doing it here first would make every new series
        // look out of order and re-sort all postings (quadratic series creation).
        let id = self.next_id;
        self.insert(id, labels.clone());
        (id, true)
    }

    /// Inserts a series with a given id (WAL replay).
    pub fn insert(&mut self, id: u32, labels: Labels) {
        if self.series.contains_key(&id) {
            return;
        }
        let in_order = id >= self.next_id;
        self.next_id = self.next_id.max(id + 1);
        self.postings.add(id, labels.iter());
        if !in_order {
            self.postings.sort();
            #[cfg(test)]
            {
                self.resorts += 1;
            }
        }
        self.by_labels.insert(labels.clone(), id);
        self.by_alloc.insert(labels.allocation(), id);
        self.series.insert(id, MemSeries::new(labels));
    }

    /// Appends a sample if it is newer than the series' newest one.
    pub fn append(&mut self, id: u32, t: i64, v: f64) -> Result<(), Rejection> {
        let Some(s) = self.series.get_mut(&id) else {
            return Ok(());
        };
        check_order(s.last_t, s.last_v, t, v)?;
        if s.open.is_full() {
            let full = std::mem::replace(&mut s.open, ChunkWriter::new());
            if let Some(c) = full.finish() {
                s.chunks.push(Arc::new(c));
            }
        }
        s.open.push(t, v);
        s.last_t = t;
        s.last_v = v.to_bits();
        self.min_t = self.min_t.min(t);
        self.max_t = self.max_t.max(t);
        self.samples += 1;
        Ok(())
    }

    /// Keeps an exemplar of a series.
    pub fn add_exemplar(&mut self, id: u32, e: Exemplar) {
        if let Some(s) = self.series.get_mut(&id) {
            if s.exemplars.back().is_some_and(|last| *last == e) {
                return;
            }
            if s.exemplars.len() >= EXEMPLARS_PER_SERIES {
                s.exemplars.pop_front();
            }
            s.exemplars.push_back(e);
        }
    }

    /// Times the postings were re-sorted (only WAL replay of reused ids needs it).
    #[cfg(test)]
    pub fn postings_sorted_count(&self) -> usize {
        self.resorts
    }

    /// Ids of series satisfying the matchers, ascending.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u32> {
        self.postings.select(matchers, || {
            let mut all: Vec<u32> = self.series.keys().copied().collect();
            all.sort_unstable();
            all
        })
    }

    /// A series by id.
    pub fn series(&self, id: u32) -> Option<&MemSeries> {
        self.series.get(&id)
    }

    /// Every series, in no order.
    pub fn all_series(&self) -> impl Iterator<Item = (u32, &MemSeries)> {
        self.series.iter().map(|(id, s)| (*id, s))
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// The index (for label names and values).
    pub fn postings(&self) -> &Postings {
        &self.postings
    }

    /// Takes every sample out of the head (for a block), leaving the series and their
    /// last timestamps in place. Series that had no sample are dropped from the head:
    /// they have been silent for a whole block range.
    pub fn cut(&mut self) -> Vec<(Labels, Vec<Arc<Chunk>>)> {
        let mut out = Vec::new();
        let mut idle = Vec::new();
        for (id, s) in self.series.iter_mut() {
            if !s.has_samples() {
                idle.push(*id);
                continue;
            }
            let mut chunks = std::mem::take(&mut s.chunks);
            let open = std::mem::replace(&mut s.open, ChunkWriter::new());
            if let Some(c) = open.finish() {
                chunks.push(Arc::new(c));
            }
            out.push((s.labels.clone(), chunks));
        }
        idle.sort_unstable();
        for id in &idle {
            if let Some(s) = self.series.remove(id) {
                self.by_labels.remove(&s.labels);
                self.by_alloc.remove(&s.labels.allocation());
            }
        }
        self.postings.remove(&idle);
        self.min_t = i64::MAX;
        self.max_t = i64::MIN;
        self.samples = 0;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Approximate heap bytes held by the head.
    pub fn byte_size(&self) -> usize {
        let series: usize = self
            .series
            .values()
            .map(|s| {
                // Labels twice (series + by_labels key share the Arc), the struct, chunks.
                s.labels.byte_size()
                    + s.labels.len() * 48
                    + 200
                    + s.open.byte_len()
                    + s.chunks.iter().map(|c| c.bytes.len() + 64).sum::<usize>()
            })
            .sum();
        series + self.postings.byte_size()
    }
}

fn check_order(last_t: i64, last_v: u64, t: i64, v: f64) -> Result<(), Rejection> {
    if last_t == i64::MIN || t > last_t {
        return Ok(());
    }
    if t < last_t {
        return Err(Rejection::OutOfOrder);
    }
    if v.to_bits() == last_v {
        Err(Rejection::Repeat)
    } else {
        Err(Rejection::DuplicateTimestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Labels {
        Labels::new(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), v.into()),
        ])
    }

    #[test]
    fn clones_are_found_by_address_and_equal_sets_by_content() {
        let mut h = Head::new();
        let a = labels("a");
        let (id, created) = h.get_or_create(&a);
        assert!(created);
        assert_eq!(h.get_or_create(&a.clone()), (id, false));
        // Equal labels in another allocation, held once (a remote_write request): found
        // by content, not adopted.
        let once = labels("a");
        assert_eq!(h.get_or_create(&once), (id, false));
        assert!(h.series(id).unwrap().labels.same_allocation(&a));
        // Held twice (a scrape cache and its batch): adopted, then found by address.
        let cached = labels("a");
        let batch = cached.clone();
        assert_eq!(h.get_or_create(&batch), (id, false));
        assert!(h.series(id).unwrap().labels.same_allocation(&cached));
        assert_eq!(h.by_alloc.get(&cached.allocation()), Some(&id));
        assert_eq!(h.by_alloc.get(&a.allocation()), None);
        // Another series is never confused with it.
        let (other, created) = h.get_or_create(&labels("b"));
        assert!(created && other != id);
        assert_eq!(h.get_or_create(&a), (id, false));
    }

    #[test]
    fn new_series_keep_postings_sorted_without_resorting() {
        let mut h = Head::new();
        for i in 0..1000 {
            let l = Labels::new(vec![
                ("__name__".into(), "m".into()),
                ("i".into(), i.to_string()),
            ]);
            let (id, created) = h.get_or_create(&l);
            assert!(created);
            assert_eq!(id, i);
        }
        assert_eq!(h.postings_sorted_count(), 0);
        assert_eq!(h.select(&[Matcher::equal("__name__", "m")]).len(), 1000);
        // A replayed id below the newest re-sorts once.
        h.insert(5000, Labels::new(vec![("__name__".into(), "x".into())]));
        h.insert(2000, Labels::new(vec![("__name__".into(), "y".into())]));
        assert_eq!(h.postings_sorted_count(), 1);
    }
}
