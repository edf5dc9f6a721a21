//! Object-storage mode: merging small published splits into large ones, so a query
//! over object storage opens tens of objects instead of thousands (splits seal within
//! minutes there, so they are many and small).
//!
//! Every `storage.merge_interval_secs`, one collector at a time (a PostgreSQL advisory
//! lock), per signal: the published splits smaller than half of `split_max_docs`,
//! oldest first, are cut into groups of up to [`MERGE_FACTOR`] whose documents stay
//! under `split_max_docs`; each group of at least [`MIN_INPUTS`] is merged (its inputs downloaded whole to
//! scratch space: one GET each), bundled, uploaded, and **published in the same
//! transaction that marks its inputs**, as Quickwit's merge planner does: a listing sees
//! either the inputs or the merged split, never both and never neither. The janitor
//! deletes the inputs' objects after the grace period, when no query can still read them.
//!
//! Only splits published longer ago than `storage.local_grace_secs` are merged: by then
//! no collector holds a local copy of them, which a query could otherwise find beside
//! the merged split.
//!
//! Metric blocks are compacted the same way, in the same round: per tenant, published
//! blocks of one level past the grace period, oldest first, [`COMPACTION_FACTOR`] at a
//! time into one of the next level (up to [`MAX_COMPACTION_LEVEL`]), as the local TSDB
//! does — read from object storage through the cache, merged series by series, and
//! published in the transaction that marks the inputs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use triad_metastore::{ListQuery, Metastore, Publish, Signal as Kind, SplitRow, SplitState};
use triad_splits::log_index::LogSignal;
use triad_splits::published::open_published;
use triad_splits::split::Split;
use triad_splits::store::Signal;
use triad_splits::trace_store::SpanSignal;
use triad_storage::Storage;

use triad_tsdb::{COMPACTION_FACTOR, MAX_COMPACTION_LEVEL};

use crate::blocks::{Opened, PublishedBlocks, block_row, write_block_bundle};
use crate::metrics::{MergeMetrics, SignalLabel};

/// Most splits merged into one.
pub const MERGE_FACTOR: usize = 10;
/// Fewest splits worth a merge.
pub const MIN_INPUTS: usize = 4;

/// Merges small published splits; see the module docs.
pub struct Merger {
    storage: Storage,
    metastore: Metastore,
    blocks: Arc<PublishedBlocks>,
    node_id: String,
    scratch: PathBuf,
    /// `split_max_docs` of logs and traces.
    max_docs: (u64, u64),
    grace: Duration,
    every: Duration,
    metrics: MergeMetrics,
}

/// The groups of `rows` (published, small, oldest first) to merge.
pub fn plan(mut rows: Vec<SplitRow>, max_docs: u64) -> Vec<Vec<SplitRow>> {
    rows.retain(|r| r.docs < max_docs / 2);
    rows.sort_by(|a, b| (a.min_ts, &a.split_id).cmp(&(b.min_ts, &b.split_id)));
    let mut groups = Vec::new();
    let mut group: Vec<SplitRow> = Vec::new();
    let mut docs = 0;
    for row in rows {
        if group.len() == MERGE_FACTOR || docs + row.docs > max_docs {
            groups.push(std::mem::take(&mut group));
            docs = 0;
        }
        docs += row.docs;
        group.push(row);
    }
    groups.push(group);
    groups.retain(|g| g.len() >= MIN_INPUTS);
    groups
}

/// The runs of published blocks to compact: per tenant and level (below
/// [`MAX_COMPACTION_LEVEL`]), blocks published before `settled_ms`, oldest first,
/// [`COMPACTION_FACTOR`] at a time.
pub fn compaction_plan(mut blocks: Vec<Opened>, settled_ms: i64) -> Vec<Vec<Opened>> {
    blocks.retain(|o| o.row.updated_ms < settled_ms && o.block.meta.level < MAX_COMPACTION_LEVEL);
    blocks.sort_by(|a, b| {
        (
            &a.tenant,
            a.block.meta.level,
            a.block.meta.min_t,
            &a.row.split_id,
        )
            .cmp(&(
                &b.tenant,
                b.block.meta.level,
                b.block.meta.min_t,
                &b.row.split_id,
            ))
    });
    let mut runs = Vec::new();
    for group in
        blocks.chunk_by(|a, b| a.tenant == b.tenant && a.block.meta.level == b.block.meta.level)
    {
        for run in group.chunks_exact(COMPACTION_FACTOR) {
            runs.push(run.to_vec());
        }
    }
    runs
}

impl Merger {
    /// A merger writing merged splits as `node_id`, with scratch space under `scratch`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Storage,
        metastore: Metastore,
        blocks: Arc<PublishedBlocks>,
        node_id: String,
        scratch: PathBuf,
        max_docs: (u64, u64),
        grace: Duration,
        every: Duration,
        metrics: MergeMetrics,
    ) -> Merger {
        Merger {
            storage,
            metastore,
            blocks,
            node_id,
            scratch,
            max_docs,
            grace,
            every,
            metrics,
        }
    }

    /// Merges every interval until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let round = self
                .metastore
                .exclusively("triad-merge", self.round())
                .await;
            let result = match round {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                self.metrics.errors.inc();
                tracing::warn!(error = %e, "merge round failed; retrying next round");
            }
        }
    }

    /// One round over every signal; returns how many merged splits and compacted blocks
    /// were published.
    pub async fn round(&self) -> Result<usize, String> {
        let mut merged = 0;
        for (kind, max_docs) in [
            (Kind::Logs, self.max_docs.0),
            (Kind::Traces, self.max_docs.1),
        ] {
            let settled = ListQuery {
                updated_before_ms: Some(
                    triad_model::now_ns() / 1_000_000 - self.grace.as_millis() as i64,
                ),
                ..ListQuery::in_state(kind, SplitState::Published)
            };
            let rows = self
                .metastore
                .list(&settled)
                .await
                .map_err(|e| e.to_string())?;
            for group in plan(rows, max_docs) {
                match kind {
                    Kind::Logs => self.merge(LogSignal::new(), kind, &group).await?,
                    _ => self.merge(SpanSignal::new(), kind, &group).await?,
                }
                merged += 1;
            }
        }
        let settled_ms = triad_model::now_ns() / 1_000_000 - self.grace.as_millis() as i64;
        for run in compaction_plan(self.blocks.all(), settled_ms) {
            self.compact(&run).await?;
            merged += 1;
        }
        Ok(merged)
    }

    /// Stages `row`, uploads `bundle` as its object and publishes it in the
    /// transaction that marks `replaces` (the merge's inputs).
    async fn publish_replacing(
        &self,
        row: &SplitRow,
        bundle: &std::path::Path,
        replaces: Vec<String>,
    ) -> Result<(), String> {
        self.metastore.stage(row).await.map_err(|e| e.to_string())?;
        self.storage
            .upload_file(&row.object_key, bundle)
            .await
            .map_err(|e| e.to_string())?;
        self.metastore
            .publish(&Publish {
                split_ids: vec![row.split_id.clone()],
                replaces,
                ..Publish::default()
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// Downloads the splits of `group` into `dir` and opens them from there.
    async fn fetch_inputs<S: Signal + Clone>(
        &self,
        signal: S,
        group: &[SplitRow],
        dir: &std::path::Path,
    ) -> Result<Vec<Arc<Split>>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let local = Storage::local(dir, triad_storage::StorageMetrics::unregistered())
            .map_err(|e| e.to_string())?;
        let mut inputs = Vec::with_capacity(group.len());
        for (i, row) in group.iter().enumerate() {
            let name = format!("{i}.bundle");
            let bytes = self
                .storage
                .download(&row.object_key, &dir.join(&name))
                .await
                .map_err(|e| format!("download {}: {e}", row.split_id))?;
            let local_row = SplitRow {
                object_key: name,
                bytes,
                ..row.clone()
            };
            inputs.push(
                open_published(&local, None, signal.clone(), &local_row)
                    .await
                    .map_err(|e| format!("open {}: {e}", row.split_id))?,
            );
        }
        Ok(inputs)
    }

    /// Compacts `run` (published blocks of one tenant and level) into one block of the
    /// next level.
    async fn compact(&self, run: &[Opened]) -> Result<(), String> {
        let started = std::time::Instant::now();
        let tenant = run[0].tenant.clone();
        let level = run[0].block.meta.level + 1;
        let dir = self
            .scratch
            .join(format!("compact-{:020}", triad_model::now_ns()));
        let inputs: Vec<_> = run.iter().map(|o| o.block.clone()).collect();
        let (d, t) = (dir.clone(), tenant.clone());
        let done = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
            let Some(path) =
                triad_tsdb::merge_blocks(&inputs, &d, level).map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            let block = triad_tsdb::block::Block::open(&path).map_err(|e| e.to_string())?;
            let bundle = d.join("block.bundle");
            let bytes = write_block_bundle(&block, &t, &bundle)?;
            Ok::<_, String>(Some((block, bundle, bytes)))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let cleanup = || {
            let _ = std::fs::remove_dir_all(&dir);
        };
        let (block, bundle, bytes) = match done {
            Ok(Some(v)) => v,
            // Inputs without a sample: nothing to write, nothing to replace them with.
            Ok(None) => {
                cleanup();
                return Ok(());
            }
            Err(e) => {
                cleanup();
                return Err(format!("compact: {e}"));
            }
        };
        let row = block_row(&self.node_id, &tenant, &block, bytes);
        let replaces = run.iter().map(|o| o.row.split_id.clone()).collect();
        let published = self.publish_replacing(&row, &bundle, replaces).await;
        cleanup();
        published?;
        let label = SignalLabel {
            signal: Kind::Metrics.as_str(),
        };
        self.metrics.merges.get_or_create(&label).inc();
        self.metrics
            .merged_splits
            .get_or_create(&label)
            .inc_by(run.len() as u64);
        self.metrics
            .merged_docs
            .get_or_create(&label)
            .inc_by(block.meta.num_samples);
        tracing::info!(
            tenant,
            level,
            inputs = run.len(),
            samples = block.meta.num_samples,
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "compacted published blocks"
        );
        Ok(())
    }

    async fn merge<S: Signal + Clone>(
        &self,
        signal: S,
        kind: Kind,
        group: &[SplitRow],
    ) -> Result<(), String> {
        let started = std::time::Instant::now();
        let id = format!("{:020}", triad_model::now_ns());
        let dir = self.scratch.join(&id);
        let bundle = self.scratch.join(format!("{id}.bundle"));
        // The inputs are read whole: each is downloaded once (one GET, streamed to
        // disk) rather than read range by range, and none passes through the cache
        // queries use.
        let inputs_dir = self.scratch.join(format!("{id}.inputs"));
        let inputs = match self.fetch_inputs(signal.clone(), group, &inputs_dir).await {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&inputs_dir);
                return Err(e);
            }
        };
        let (s, d, b, i) = (signal.clone(), dir.clone(), bundle.clone(), id.clone());
        let done = tokio::task::spawn_blocking(move || {
            let split: Split = triad_splits::merge::merge_splits(&s, &inputs, &d, &i)?;
            let bytes = split.write_bundle(&b)?;
            Ok::<_, triad_splits::Error>((split.meta(), split.tenants()?, bytes))
        })
        .await
        .map_err(|e| e.to_string())?;
        let cleanup = || {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&bundle);
            let _ = std::fs::remove_dir_all(&inputs_dir);
        };
        let (meta, tenants, bytes) = match done {
            Ok(v) => v,
            Err(e) => {
                cleanup();
                return Err(format!("merge: {e}"));
            }
        };
        let key = format!("{}/{}/{id}.split", kind.as_str(), self.node_id);
        let row = SplitRow {
            split_id: format!("{}/{id}", self.node_id),
            signal: kind,
            node_id: self.node_id.clone(),
            state: SplitState::Staged,
            object_key: key.clone(),
            bytes,
            docs: meta.docs,
            min_ts: meta.min_ts,
            max_ts: meta.max_ts,
            tenants,
            created_ms: 0,
            updated_ms: 0,
        };
        let replaces = group.iter().map(|r| r.split_id.clone()).collect();
        let published = self.publish_replacing(&row, &bundle, replaces).await;
        cleanup();
        published?;
        let label = SignalLabel {
            signal: kind.as_str(),
        };
        self.metrics.merges.get_or_create(&label).inc();
        self.metrics
            .merged_splits
            .get_or_create(&label)
            .inc_by(group.len() as u64);
        self.metrics
            .merged_docs
            .get_or_create(&label)
            .inc_by(meta.docs);
        tracing::info!(
            signal = kind.as_str(),
            inputs = group.len(),
            docs = meta.docs,
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "merged splits"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize, docs: u64) -> SplitRow {
        SplitRow {
            split_id: format!("n/{i:03}"),
            signal: Kind::Logs,
            node_id: "n".into(),
            state: SplitState::Published,
            object_key: String::new(),
            bytes: 0,
            docs,
            min_ts: i as i64,
            max_ts: i as i64,
            tenants: vec![],
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn groups_small_splits_oldest_first_within_the_bounds() {
        let ids = |g: &Vec<SplitRow>| g.iter().map(|r| r.split_id.clone()).collect::<Vec<_>>();
        // 23 small splits: groups of 10, 10, then 3 left (too few to merge).
        let rows: Vec<SplitRow> = (0..23).rev().map(|i| row(i, 10)).collect();
        let groups = plan(rows, 1000);
        assert_eq!(groups.len(), 2);
        assert_eq!(ids(&groups[0])[0], "n/000", "oldest first");
        assert!(groups.iter().all(|g| g.len() == MERGE_FACTOR));
        // Large splits stay as they are.
        let rows: Vec<SplitRow> = (0..8)
            .map(|i| row(i, if i == 3 { 6000 } else { 300 }))
            .collect();
        let groups = plan(rows, 10_000);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].len(), 7);
        assert!(!ids(&groups[0]).contains(&"n/003".to_string()));
        // A merged split never exceeds the split size: 12 of 400 under 2000 → 5, 5, (2).
        let groups = plan((0..12).map(|i| row(i, 400)).collect(), 2000);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5]);
        assert!(
            plan(vec![row(0, 1), row(1, 1), row(2, 1)], 1000).is_empty(),
            "fewer than MIN_INPUTS"
        );
    }
}
