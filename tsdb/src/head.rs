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
    /// Its id, as the WAL and the postings name it (never reused).
    pub id: u32,
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
    fn new(id: u32, labels: Labels) -> MemSeries {
        MemSeries {
            id,
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

/// Where the head keeps a series: an index into its slots, valid until the next cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

/// The head's state.
///
/// Series live in a vector of slots (reused after a cut drops a series) so that an
/// append that knows its slot touches one series and no hash table. A label set
/// remembers its slot in its [`Labels::hint`]: a scraper hands the same label set (its
/// cache's clone) every scrape, so after the first one its samples go straight to their
/// series. A hint is trusted only when the slot's series holds that very allocation.
#[derive(Default)]
pub struct Head {
    slots: Vec<Option<MemSeries>>,
    free: Vec<u32>,
    /// Slot of every series id.
    slot_of: FastMap<u32, u32>,
    /// Slot of every label set.
    by_labels: FastMap<Labels, u32>,
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

    /// The slot of a series, created when new; `true` when it was created.
    pub fn get_or_create(&mut self, labels: &Labels) -> (Slot, bool) {
        if let Some(slot) = labels.hint().checked_sub(1)
            && self
                .at(slot)
                .is_some_and(|s| s.labels.same_allocation(labels))
        {
            return (Slot(slot), false);
        }
        if let Some(&slot) = self.by_labels.get(labels) {
            // A label set someone else also holds (a scrape cache) will come back: adopt
            // that allocation and leave the slot in it, so its next appends skip the
            // lookup. A one-off handle (a remote_write request's) is not worth the swap.
            if labels.handles() > 1
                && let Some(Some(s)) = self.slots.get_mut(slot as usize)
            {
                s.labels = labels.clone();
                labels.set_hint(slot + 1);
                // Re-key so the old allocation is freed: one copy of the strings.
                self.by_labels.remove(labels);
                self.by_labels.insert(labels.clone(), slot);
            }
            return (Slot(slot), false);
        }
        // `insert` advances `next_id`; doing it here first would make every new series
        // look out of order and re-sort all postings (quadratic series creation).
        let slot = self.insert(self.next_id, labels.clone());
        (slot, true)
    }

    fn at(&self, slot: u32) -> Option<&MemSeries> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn at_mut(&mut self, slot: u32) -> Option<&mut MemSeries> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Inserts a series with a given id (WAL replay); its slot.
    pub fn insert(&mut self, id: u32, labels: Labels) -> Slot {
        if let Some(&slot) = self.slot_of.get(&id) {
            return Slot(slot);
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
        let series = MemSeries::new(id, labels.clone());
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(series);
                slot
            }
            None => {
                self.slots.push(Some(series));
                (self.slots.len() - 1) as u32
            }
        };
        labels.set_hint(slot + 1);
        self.by_labels.insert(labels, slot);
        self.slot_of.insert(id, slot);
        Slot(slot)
    }

    /// The series in a slot.
    pub fn slot_series(&self, slot: Slot) -> Option<&MemSeries> {
        self.at(slot.0)
    }

    /// The slot of a series id.
    pub fn slot(&self, id: u32) -> Option<Slot> {
        self.slot_of.get(&id).map(|&s| Slot(s))
    }

    /// Appends a sample if it is newer than the series' newest one; the series' id. (A
    /// slot without a series, which `get_or_create` never returns, refuses it.)
    pub fn append(&mut self, slot: Slot, t: i64, v: f64) -> Result<u32, Rejection> {
        let Some(s) = self.at_mut(slot.0) else {
            return Err(Rejection::OutOfOrder);
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
        let id = s.id;
        self.min_t = self.min_t.min(t);
        self.max_t = self.max_t.max(t);
        self.samples += 1;
        Ok(id)
    }

    /// Keeps an exemplar of a series; the series' id.
    pub fn add_exemplar(&mut self, slot: Slot, e: Exemplar) -> Option<u32> {
        let s = self.at_mut(slot.0)?;
        if !s.exemplars.back().is_some_and(|last| *last == e) {
            if s.exemplars.len() >= EXEMPLARS_PER_SERIES {
                s.exemplars.pop_front();
            }
            s.exemplars.push_back(e);
        }
        Some(s.id)
    }

    /// Times the postings were re-sorted (only WAL replay of reused ids needs it).
    #[cfg(test)]
    pub fn postings_sorted_count(&self) -> usize {
        self.resorts
    }

    /// Ids of series satisfying the matchers, ascending.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u32> {
        self.postings.select(matchers, || {
            let mut all: Vec<u32> = self.slot_of.keys().copied().collect();
            all.sort_unstable();
            all
        })
    }

    /// A series by id.
    pub fn series(&self, id: u32) -> Option<&MemSeries> {
        self.at(*self.slot_of.get(&id)?)
    }

    /// Every series, in no order.
    pub fn all_series(&self) -> impl Iterator<Item = (u32, &MemSeries)> {
        self.slots.iter().flatten().map(|s| (s.id, s))
    }

    /// Whether the head has the series `labels`.
    pub fn contains(&self, labels: &Labels) -> bool {
        labels.hint().checked_sub(1).is_some_and(|slot| {
            self.at(slot)
                .is_some_and(|s| s.labels.same_allocation(labels))
        }) || self.by_labels.contains_key(labels)
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.slot_of.len()
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
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            let Some(s) = entry else { continue };
            if !s.has_samples() {
                idle.push(s.id);
                self.by_labels.remove(&s.labels);
                self.slot_of.remove(&s.id);
                self.free.push(slot as u32);
                *entry = None;
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
            .slots
            .iter()
            .flatten()
            .map(|s| {
                // The label set (shared with `by_labels`), the slot, the maps, chunks.
                s.labels.byte_size()
                    + 48
                    + std::mem::size_of::<Option<MemSeries>>()
                    + 32
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
    fn clones_are_found_by_their_hint_and_equal_sets_by_content() {
        let mut h = Head::new();
        let a = labels("a");
        let (slot, created) = h.get_or_create(&a);
        assert!(created);
        assert_eq!(a.hint(), 1);
        assert_eq!(h.get_or_create(&a.clone()), (slot, false));
        // Equal labels in another allocation, held once (a remote_write request): found
        // by content, not adopted.
        let once = labels("a");
        assert_eq!(h.get_or_create(&once), (slot, false));
        assert!(h.at(slot.0).unwrap().labels.same_allocation(&a));
        assert_eq!(once.hint(), 0);
        // Held twice (a scrape cache and its batch): adopted, then found by its hint.
        let cached = labels("a");
        let batch = cached.clone();
        assert_eq!(h.get_or_create(&batch), (slot, false));
        assert!(h.at(slot.0).unwrap().labels.same_allocation(&cached));
        assert_eq!(cached.hint(), 1);
        // Another series is never confused with it, even with a lying hint.
        let (other, created) = h.get_or_create(&labels("b"));
        assert!(created && other != slot);
        let liar = labels("b");
        liar.set_hint(slot.0 + 1);
        assert_eq!(h.get_or_create(&liar), (other, false));
        assert_eq!(h.get_or_create(&a), (slot, false));
    }

    #[test]
    fn slots_of_dropped_series_are_reused_and_old_hints_miss() {
        let mut h = Head::new();
        let (a, b) = (labels("a"), labels("b"));
        let (sa, _) = h.get_or_create(&a);
        let (sb, _) = h.get_or_create(&b);
        h.append(sb, 1000, 1.0).unwrap();
        let cut = h.cut();
        assert_eq!(cut.len(), 1, "only b had samples");
        assert!(h.series(0).is_none() && h.series(1).is_some());
        // A new series takes a's slot under a new id; a's hint no longer fits.
        let c = labels("c");
        let (sc, created) = h.get_or_create(&c);
        assert!(created);
        assert_eq!(sc, sa);
        assert_eq!(h.append(sc, 2000, 2.0), Ok(2));
        let (again, created) = h.get_or_create(&a);
        assert!(created && again != sa);
        assert_eq!(h.select(&[Matcher::equal("job", "a")]), vec![3]);
        assert_eq!(h.series(2).unwrap().labels, c);
    }

    #[test]
    fn new_series_keep_postings_sorted_without_resorting() {
        let mut h = Head::new();
        for i in 0..1000 {
            let l = Labels::new(vec![
                ("__name__".into(), "m".into()),
                ("i".into(), i.to_string()),
            ]);
            let (slot, created) = h.get_or_create(&l);
            assert!(created);
            assert_eq!(h.append(slot, 1, 1.0), Ok(i));
        }
        assert_eq!(h.postings_sorted_count(), 0);
        assert_eq!(h.select(&[Matcher::equal("__name__", "m")]).len(), 1000);
        // A replayed id below the newest re-sorts once.
        h.insert(5000, Labels::new(vec![("__name__".into(), "x".into())]));
        h.insert(2000, Labels::new(vec![("__name__".into(), "y".into())]));
        assert_eq!(h.postings_sorted_count(), 1);
    }
}
