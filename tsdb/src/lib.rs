//! Triad's time-series database, one per tenant.
//!
//! Data path: a commit ([`Tsdb::append`]) checks each sample against its series' newest
//! timestamp, logs the accepted samples (and any new series, exemplars, metadata) as one
//! WAL record, fsyncs when the sender waits for an acknowledgement, and applies them to
//! the in-memory [`head`] where each series fills Gorilla-compressed [`chunk`]s.
//!
//! Once the head spans `block_range`, it is *cut*: its samples move to a frozen list
//! (still queried), the WAL checkpoint advances past them, and a background step writes
//! them as an immutable [`block`] on disk. Blocks of the same level are merged three at a
//! time ([`Tsdb::compact`]); retention drops whole blocks by age and by size.
//!
//! **Out-of-order policy** (as Prometheus without `out_of_order_time_window`): a sample
//! older than its series' newest sample is rejected and counted
//! (`triad_tsdb_rejected_samples_total{reason="out_of_order"}`); one with the same
//! timestamp and another value is rejected as `duplicate_timestamp`; an exact repeat is
//! dropped silently. The sender of a remote-write batch is told how many were rejected.
//!
//! **Crash safety**: a commit with `durable = true` returns after `fdatasync` of its WAL
//! record; concurrent commits share that `fdatasync` (group commit, `triad_wal`). At start the WAL after the checkpoint is replayed into the head. A crash
//! between writing a block and advancing the checkpoint replays samples the block also
//! holds; reads merge sources and drop repeated timestamps, so nothing is doubled.

pub mod block;
pub mod chunk;
pub mod error;
pub mod head;
pub mod index;
mod maintenance;
pub mod metric_store;
mod metrics;
mod walrec;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use triad_model::metric::{
    Exemplar, Labels, Matcher, MetricMetadata, SeriesExemplars, SeriesSamples, merge_samples,
    merge_series,
};

use block::{Block, decode_chunks, write_block};
use chunk::Chunk;
pub use error::{Error, Result};
use head::{Head, Rejection};
pub use maintenance::{COMPACTION_FACTOR, MAX_COMPACTION_LEVEL, merge_blocks};
use metrics::ReasonLabel;
pub use metrics::TsdbMetrics;
use triad_wal::{GroupCommit, Wal};
use walrec::WalRecord;

/// Storage settings of one TSDB.
#[derive(Debug, Clone)]
pub struct TsdbOptions {
    /// Time span of the head before it is cut into a block, ms.
    pub block_range_ms: i64,
    /// Drop blocks whose newest sample is older than this, ms; 0 keeps forever.
    pub retention_ms: i64,
    /// Drop the oldest blocks while blocks and WAL take more bytes than this; 0: no limit.
    pub retention_bytes: u64,
    /// Merge local blocks. Off in object-storage mode, where blocks are published as
    /// they are cut and compaction works on the published ones.
    pub compact: bool,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            block_range_ms: 2 * 3_600_000,
            retention_ms: 15 * 86_400_000,
            retention_bytes: 0,
            compact: true,
        }
    }
}

/// Samples, exemplars and metadata to commit together.
#[derive(Debug, Default, Clone)]
pub struct AppendBatch {
    /// (series labels, timestamp ms, value).
    pub samples: Vec<(Labels, i64, f64)>,
    /// (series labels, exemplar); the series need not have a sample in the batch.
    pub exemplars: Vec<(Labels, Exemplar)>,
    /// (metric family name, metadata).
    pub metadata: Vec<(String, MetricMetadata)>,
}

impl AppendBatch {
    /// Drops the samples and exemplars of series with more than `max_labels` labels or
    /// a label name or value longer than `max_label_bytes` (`limits`); returns how many
    /// samples were dropped and the first such series, for the sender's message.
    pub fn retain_series(
        &mut self,
        max_labels: usize,
        max_label_bytes: usize,
    ) -> (usize, Option<String>) {
        let fits = |l: &Labels| {
            l.len() <= max_labels
                && l.iter()
                    .all(|(n, v)| n.len() <= max_label_bytes && v.len() <= max_label_bytes)
        };
        let mut first = None;
        let before = self.samples.len();
        self.samples.retain(|(l, _, _)| {
            let ok = fits(l);
            if !ok && first.is_none() {
                let name = l
                    .get("__name__")
                    .unwrap_or("")
                    .chars()
                    .take(100)
                    .collect::<String>();
                first = Some(format!("{name} ({} labels)", l.len()));
            }
            ok
        });
        self.exemplars.retain(|(l, _)| fits(l));
        (before - self.samples.len(), first)
    }
}

/// What a commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples stored.
    pub accepted: usize,
    /// Samples older than their series' newest sample.
    pub out_of_order: usize,
    /// Samples with a repeated timestamp and a different value.
    pub duplicate_timestamp: usize,
    /// Samples of new series refused because the tenant has its most series
    /// (`limits.max_series`).
    pub series_limited: usize,
}

impl AppendOutcome {
    /// Samples refused (repeats of the newest sample are not counted).
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicate_timestamp + self.series_limited
    }
}

/// Head samples moved out by a cut, queryable until their block is on disk.
struct Frozen {
    series: Vec<(Labels, Vec<Arc<Chunk>>)>,
    /// The checkpoint once this part is in a block: the WAL holds its samples up to it.
    checkpoint: u64,
}

/// One tenant's TSDB.
pub struct Tsdb {
    dir: PathBuf,
    opts: TsdbOptions,
    head: RwLock<Head>,
    /// Shared by concurrent appenders: one fsync serves every commit waiting for it.
    wal: GroupCommit,
    frozen: RwLock<Vec<Arc<Frozen>>>,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serialises cuts, compactions and retention.
    maintenance: Mutex<()>,
    /// WAL records up to this LSN are in blocks.
    checkpoint: AtomicU64,
    metrics: TsdbMetrics,
}

const CHECKPOINT_FILE: &str = "checkpoint";

impl Tsdb {
    /// Opens (or creates) the TSDB in `dir`: loads blocks, replays the WAL.
    pub fn open(dir: &Path, opts: TsdbOptions, metrics: TsdbMetrics) -> Result<Tsdb> {
        let blocks_dir = dir.join("blocks");
        fs::create_dir_all(&blocks_dir)
            .map_err(Error::io(format!("creating {}", blocks_dir.display())))?;
        let mut blocks = Vec::new();
        for entry in fs::read_dir(&blocks_dir).map_err(Error::io("listing blocks"))? {
            let entry = entry.map_err(Error::io("listing blocks"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") {
                // A block whose write did not finish; its samples are still in the WAL.
                let _ = fs::remove_dir_all(entry.path());
            } else if name.starts_with("block-") {
                blocks.push(Arc::new(Block::open(&entry.path())?));
            }
        }
        blocks.sort_by_key(|b| (b.meta.min_t, b.meta.max_t));
        let checkpoint = read_checkpoint(dir)?;
        let mut head = Head::new();
        let (wal, stats) = Wal::open(&dir.join("wal"), checkpoint, |_, payload| {
            let Some(rec) = WalRecord::decode(&payload) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "undecodable TSDB WAL record",
                ));
            };
            replay(&mut head, rec);
            Ok(())
        })
        .map_err(Error::io(format!(
            "replaying {}",
            dir.join("wal").display()
        )))?;
        if stats.replayed > 0 || stats.truncated_bytes > 0 {
            tracing::info!(
                dir = %dir.display(),
                records = stats.replayed,
                series = head.num_series(),
                samples = head.samples,
                truncated_bytes = stats.truncated_bytes,
                "tsdb wal replayed"
            );
        }
        let db = Tsdb {
            dir: dir.to_path_buf(),
            opts,
            head: RwLock::new(head),
            wal: GroupCommit::new(wal),
            frozen: RwLock::new(Vec::new()),
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
            checkpoint: AtomicU64::new(checkpoint),
            metrics,
        };
        db.update_gauges();
        Ok(db)
    }

    /// Commits a batch; with `durable`, returns once the WAL record is on disk.
    pub fn append(&self, batch: &AppendBatch, durable: bool) -> Result<AppendOutcome> {
        self.append_limited(batch, durable, 0)
    }

    /// [`Tsdb::append`], creating no series beyond `max_series` in the head (0: no
    /// limit): the samples of new series past it are refused, those of series the head
    /// has are stored.
    pub fn append_limited(
        &self,
        batch: &AppendBatch,
        durable: bool,
        max_series: usize,
    ) -> Result<AppendOutcome> {
        let mut out = AppendOutcome::default();
        let mut rec = WalRecord::default();
        let mut bytes = Vec::new();
        let mut lsn = None;
        {
            let mut head = self.head.write().map_err(|_| Error::Closed("tsdb"))?;
            for (labels, t, v) in &batch.samples {
                if max_series > 0 && head.num_series() >= max_series && !head.contains(labels) {
                    out.series_limited += 1;
                    continue;
                }
                let (slot, created) = head.get_or_create(labels);
                if created && let Some(s) = head.slot_series(slot) {
                    rec.series.push((s.id, labels.clone()));
                }
                match head.append(slot, *t, *v) {
                    Ok(id) => {
                        rec.samples.push((id, *t, *v));
                        out.accepted += 1;
                    }
                    Err(Rejection::OutOfOrder) => out.out_of_order += 1,
                    Err(Rejection::DuplicateTimestamp) => out.duplicate_timestamp += 1,
                    Err(Rejection::Repeat) => {}
                }
            }
            for (labels, e) in &batch.exemplars {
                if max_series > 0 && head.num_series() >= max_series && !head.contains(labels) {
                    continue;
                }
                let (slot, created) = head.get_or_create(labels);
                if created && let Some(s) = head.slot_series(slot) {
                    rec.series.push((s.id, labels.clone()));
                }
                if let Some(id) = head.add_exemplar(slot, e.clone()) {
                    rec.exemplars.push((id, e.clone()));
                }
            }
            for (name, m) in &batch.metadata {
                if head.metadata.get(name) != Some(m) {
                    head.metadata.insert(name.clone(), m.clone());
                    rec.metadata.push((name.clone(), m.clone()));
                }
            }
            if !rec.is_empty() {
                // Under the head's lock: the WAL holds commits in the head's order.
                rec.encode(&mut bytes);
                lsn = Some(
                    self.wal
                        .append(&bytes)
                        .map_err(Error::io("appending to the tsdb wal"))?,
                );
            }
        }
        // A batch whose samples the head had already (a sender retrying after an error)
        // logs nothing, but its acknowledgement must still mean durable: the record
        // that holds them may be waiting for a sync that failed (a full disk).
        let lsn = match lsn {
            None if durable => self.wal.lock().next_lsn().checked_sub(1).filter(|l| *l > 0),
            lsn => lsn,
        };
        if let Some(lsn) = lsn {
            if durable {
                // Group commit: concurrent senders share the fsync.
                self.wal
                    .sync_through(lsn, self.checkpoint.load(Ordering::Acquire))
                    .map_err(Error::io("syncing the tsdb wal"))?;
            } else {
                self.wal
                    .flush()
                    .map_err(Error::io("writing the tsdb wal"))?;
            }
        }
        self.metrics.samples.inc_by(out.accepted as u64);
        if out.out_of_order > 0 {
            self.metrics
                .rejected
                .get_or_create(&ReasonLabel {
                    reason: "out_of_order",
                })
                .inc_by(out.out_of_order as u64);
        }
        if out.duplicate_timestamp > 0 {
            self.metrics
                .rejected
                .get_or_create(&ReasonLabel {
                    reason: "duplicate_timestamp",
                })
                .inc_by(out.duplicate_timestamp as u64);
        }
        Ok(out)
    }

    /// Samples of matching series in `[start, end]`, merged across blocks and head,
    /// sorted by labels.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesSamples>> {
        // (labels, samples) from every source; one series may appear in several.
        let mut parts: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
        // Head first, then frozen, then blocks: a cut moves data head → frozen → block,
        // and a block is published before its frozen part is dropped, so this order
        // never misses data (it may see it twice, which the merge removes).
        {
            let head = self.head.read().map_err(|_| Error::Closed("tsdb"))?;
            let mut found = Vec::new();
            for id in head.select(matchers) {
                if let Some(s) = head.series(id) {
                    let chunks = s.chunks_in(start, end);
                    if !chunks.is_empty() {
                        found.push((s.labels.clone(), chunks));
                    }
                }
            }
            drop(head);
            for (labels, chunks) in found {
                parts.push((labels, filter_range(decode_chunks(&chunks), start, end)));
            }
        }
        let frozen: Vec<Arc<Frozen>> = self
            .frozen
            .read()
            .map_err(|_| Error::Closed("tsdb"))?
            .clone();
        for f in &frozen {
            for (labels, chunks) in &f.series {
                if matchers.iter().all(|m| m.matches_labels(labels))
                    && chunks.iter().any(|c| c.max_t >= start && c.min_t <= end)
                {
                    parts.push((
                        labels.clone(),
                        filter_range(decode_chunks(chunks), start, end),
                    ));
                }
            }
        }
        for b in self.blocks_in(start, end)? {
            for s in b.select(matchers, start, end)? {
                parts.push((s.labels, s.samples));
            }
        }
        Ok(merge_series(parts))
    }

    fn blocks_in(&self, start: i64, end: i64) -> Result<Vec<Arc<Block>>> {
        Ok(self
            .blocks
            .read()
            .map_err(|_| Error::Closed("tsdb"))?
            .iter()
            .filter(|b| b.overlaps(start, end))
            .cloned()
            .collect())
    }

    /// Label sets of series matching any matcher set (all when empty) with samples in
    /// the range.
    pub fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<BTreeSet<Labels>> {
        let everything = [Vec::new()];
        let sets: &[Vec<Matcher>] = if matcher_sets.is_empty() {
            &everything
        } else {
            matcher_sets
        };
        let mut out = BTreeSet::new();
        {
            let head = self.head.read().map_err(|_| Error::Closed("tsdb"))?;
            for ms in sets {
                for id in head.select(ms) {
                    if let Some(s) = head.series(id) {
                        let in_range = s.chunks.iter().any(|c| c.max_t >= start && c.min_t <= end)
                            || matches!((s.open.min_t(), s.open.max_t()), (Some(lo), Some(hi)) if hi >= start && lo <= end);
                        if in_range {
                            out.insert(s.labels.clone());
                        }
                    }
                }
            }
        }
        let frozen: Vec<Arc<Frozen>> = self
            .frozen
            .read()
            .map_err(|_| Error::Closed("tsdb"))?
            .clone();
        for f in &frozen {
            for (labels, chunks) in &f.series {
                if sets
                    .iter()
                    .any(|ms| ms.iter().all(|m| m.matches_labels(labels)))
                    && chunks.iter().any(|c| c.max_t >= start && c.min_t <= end)
                {
                    out.insert(labels.clone());
                }
            }
        }
        for b in self.blocks_in(start, end)? {
            for ms in sets {
                for id in b.select_ids(ms) {
                    if b.has_data(id, start, end)
                        && let Some(l) = b.labels(id)
                    {
                        out.insert(l.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Metadata by metric family.
    pub fn metadata(&self) -> Result<Vec<(String, MetricMetadata)>> {
        let head = self.head.read().map_err(|_| Error::Closed("tsdb"))?;
        let mut v: Vec<_> = head
            .metadata
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Exemplars (kept in the head only, as Prometheus) of matching series in the range.
    pub fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesExemplars>> {
        let head = self.head.read().map_err(|_| Error::Closed("tsdb"))?;
        let mut out: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
        for ms in matcher_sets {
            for id in head.select(ms) {
                if let Some(s) = head.series(id) {
                    let es: Vec<Exemplar> = s
                        .exemplars
                        .iter()
                        .filter(|e| e.timestamp_ms >= start && e.timestamp_ms <= end)
                        .cloned()
                        .collect();
                    if !es.is_empty() {
                        out.insert(s.labels.clone(), es);
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|(labels, exemplars)| SeriesExemplars { labels, exemplars })
            .collect())
    }

    fn update_gauges(&self) {
        if let Ok(head) = self.head.read() {
            self.metrics.head_series.set(head.num_series() as i64);
            self.metrics.head_samples.set(head.samples as i64);
            self.metrics.head_bytes.set(head.byte_size() as i64);
        }
        if let Ok(blocks) = self.blocks.read() {
            self.metrics.blocks.set(blocks.len() as i64);
            self.metrics
                .block_bytes
                .set(blocks.iter().map(|b| b.disk_bytes()).sum::<u64>() as i64);
        }
        self.metrics
            .wal_bytes
            .set(self.wal.lock().disk_bytes() as i64);
    }

    /// Approximate memory of the head, and its series count.
    pub fn head_stats(&self) -> (usize, usize) {
        self.head
            .read()
            .map(|h| (h.byte_size(), h.num_series()))
            .unwrap_or((0, 0))
    }

    /// The blocks on local disk, oldest first.
    pub fn local_blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// The blocks' metadata, oldest first.
    pub fn block_metas(&self) -> Vec<block::BlockMeta> {
        self.blocks
            .read()
            .map(|b| b.iter().map(|b| b.meta.clone()).collect())
            .unwrap_or_default()
    }
}

fn replay(head: &mut Head, rec: WalRecord) {
    for (id, labels) in rec.series {
        head.insert(id, labels);
    }
    for (id, t, v) in rec.samples {
        if let Some(slot) = head.slot(id) {
            let _ = head.append(slot, t, v);
        }
    }
    for (id, e) in rec.exemplars {
        if let Some(slot) = head.slot(id) {
            head.add_exemplar(slot, e);
        }
    }
    for (name, m) in rec.metadata {
        head.metadata.insert(name, m);
    }
}

fn filter_range(mut samples: Vec<(i64, f64)>, start: i64, end: i64) -> Vec<(i64, f64)> {
    samples.retain(|(t, _)| *t >= start && *t <= end);
    samples
}

fn read_checkpoint(dir: &Path) -> Result<u64> {
    match fs::read_to_string(dir.join(CHECKPOINT_FILE)) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| Error::Corrupt(format!("{}: bad checkpoint {s:?}", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io("reading the tsdb checkpoint")(e)),
    }
}

fn write_checkpoint(dir: &Path, lsn: u64) -> Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    fs::write(&tmp, lsn.to_string())
        .and_then(|()| fs::File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, dir.join(CHECKPOINT_FILE)))
        .and_then(|()| fs::File::open(dir)?.sync_all())
        .map_err(Error::io("writing the tsdb checkpoint"))
}

#[cfg(test)]
mod tests;
