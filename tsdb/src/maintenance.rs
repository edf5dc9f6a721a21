//! The TSDB's background work: cutting the head into a block once it spans the block
//! range, merging blocks three at a time by level, and retention by age and size.

use super::*;

impl Tsdb {
    /// Runs due maintenance: cuts the head into a block when it spans the block range,
    /// merges blocks (unless [`TsdbOptions::compact`] is off), applies retention. Call it periodically from a blocking thread.
    pub fn maintain(&self, now_ms: i64) -> Result<()> {
        self.maintain_with(now_ms, self.opts.retention_ms)
    }

    /// As [`Tsdb::maintain`], with this retention (ms, 0: for ever) instead of
    /// [`TsdbOptions::retention_ms`]: the tenant's own.
    pub fn maintain_with(&self, now_ms: i64, retention_ms: i64) -> Result<()> {
        let _guard = self.maintenance.lock().map_err(|_| Error::Closed("tsdb"))?;
        let due = {
            let head = self.head.read().map_err(|_| Error::Closed("tsdb"))?;
            head.samples > 0 && head.max_t - head.min_t >= self.opts.block_range_ms
        };
        if due {
            self.cut()?;
        }
        if self.opts.compact {
            self.compact()?;
        }
        self.apply_retention_with(now_ms, retention_ms)?;
        self.update_gauges();
        Ok(())
    }

    /// Moves every head sample into a new block on disk now (also at shutdown, so a
    /// restart replays little).
    pub fn flush(&self) -> Result<()> {
        let _guard = self.maintenance.lock().map_err(|_| Error::Closed("tsdb"))?;
        self.cut()?;
        self.update_gauges();
        Ok(())
    }

    /// Cuts the head: freezes its samples, advances the WAL checkpoint, writes the block.
    fn cut(&self) -> Result<()> {
        let started = Instant::now();
        {
            let mut head = self.head.write().map_err(|_| Error::Closed("tsdb"))?;
            if head.samples == 0 {
                drop(head);
                // Parts a failed cut left frozen are written now.
                return self.write_frozen(started);
            }
            // Re-log every series the cut keeps (those with samples) so that a replay
            // from the new checkpoint knows them, and the metadata, which would
            // otherwise be lost with old segments. Logged before the head is touched: a
            // WAL that fails (a full disk) leaves the head as it was.
            let mut rec = WalRecord::default();
            for (id, s) in head.all_series().filter(|(_, s)| s.has_samples()) {
                rec.series.push((id, s.labels.clone()));
            }
            rec.series.sort_by_key(|(id, _)| *id);
            rec.metadata = head
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut wal = self.wal.lock();
            let mut bytes = Vec::new();
            rec.encode(&mut bytes);
            let lsn = wal
                .append(&bytes)
                .map_err(Error::io("appending to the tsdb wal"))?;
            wal.sync(self.checkpoint.load(Ordering::Acquire))
                .map_err(Error::io("syncing the tsdb wal"))?;
            drop(wal);
            let series = head.cut();
            let frozen = Arc::new(Frozen {
                series,
                checkpoint: lsn - 1,
            });
            self.frozen
                .write()
                .map_err(|_| Error::Closed("tsdb"))?
                .push(frozen);
        }
        self.write_frozen(started)
    }

    /// Writes the frozen parts into blocks, oldest first, moving the checkpoint past
    /// each. A part whose block could not be written (a full disk) stays frozen —
    /// readable, and in the WAL, whose checkpoint stays before it — and is written
    /// first by the next cut; a newer part never moves the checkpoint past it.
    fn write_frozen(&self, started: Instant) -> Result<()> {
        loop {
            let Some(frozen) = self
                .frozen
                .read()
                .map_err(|_| Error::Closed("tsdb"))?
                .first()
                .cloned()
            else {
                return Ok(());
            };
            let written = write_block(
                &self.dir.join("blocks"),
                frozen
                    .series
                    .iter()
                    .map(|(l, chunks)| (l.clone(), decode_chunks(chunks))),
                0,
            );
            let path = match written {
                Ok(p) => p,
                Err(e) => {
                    self.metrics.errors.inc();
                    return Err(e);
                }
            };
            if let Some(path) = path {
                let block = Arc::new(Block::open(&path)?);
                let mut blocks = self.blocks.write().map_err(|_| Error::Closed("tsdb"))?;
                blocks.push(block);
                blocks.sort_by_key(|b| (b.meta.min_t, b.meta.max_t));
            }
            write_checkpoint(&self.dir, frozen.checkpoint)?;
            self.checkpoint.store(frozen.checkpoint, Ordering::Release);
            self.frozen
                .write()
                .map_err(|_| Error::Closed("tsdb"))?
                .retain(|f| !Arc::ptr_eq(f, &frozen));
            self.metrics.cuts.inc();
            tracing::info!(
                dir = %self.dir.display(),
                series = frozen.series.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "tsdb head cut into a block"
            );
        }
    }

    /// Removes the local blocks named (their data is elsewhere now: published to
    /// object storage); returns how many were held.
    pub fn remove_blocks(&self, names: &[String]) -> Result<usize> {
        let _guard = self.maintenance.lock().map_err(|_| Error::Closed("tsdb"))?;
        let removed: Vec<Arc<Block>> = {
            let mut blocks = self.blocks.write().map_err(|_| Error::Closed("tsdb"))?;
            let (gone, keep) = blocks
                .drain(..)
                .partition(|b| names.iter().any(|n| n == b.name()));
            *blocks = keep;
            gone
        };
        for dir in removed.iter().filter_map(|b| b.dir()) {
            fs::remove_dir_all(dir).map_err(Error::io(format!("removing {}", dir.display())))?;
        }
        self.update_gauges();
        Ok(removed.len())
    }

    /// Merges runs of three blocks of the same level into one of the next level (up to
    /// level 3: 2 h → 6 h → 18 h → 54 h with the default range).
    pub fn compact(&self) -> Result<()> {
        loop {
            let run = {
                let blocks = self.blocks.read().map_err(|_| Error::Closed("tsdb"))?;
                find_compaction_run(&blocks)
            };
            let Some(run) = run else { return Ok(()) };
            let level = run[0].meta.level + 1;
            let path = match merge_blocks(&run, &self.dir.join("blocks"), level) {
                Ok(p) => p,
                Err(e) => {
                    self.metrics.errors.inc();
                    return Err(e);
                }
            };
            let mut blocks = self.blocks.write().map_err(|_| Error::Closed("tsdb"))?;
            if let Some(path) = path {
                blocks.push(Arc::new(Block::open(&path)?));
            }
            blocks.retain(|b| !run.iter().any(|r| Arc::ptr_eq(r, b)));
            blocks.sort_by_key(|b| (b.meta.min_t, b.meta.max_t));
            drop(blocks);
            for dir in run.iter().filter_map(|b| b.dir()) {
                let _ = fs::remove_dir_all(dir);
            }
            self.metrics.compactions.inc();
        }
    }

    /// Drops blocks past the age limit, then the oldest while over the size limit.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        self.apply_retention_with(now_ms, self.opts.retention_ms)
    }

    /// As [`Tsdb::apply_retention`] with this age limit (ms, 0: none).
    pub fn apply_retention_with(&self, now_ms: i64, retention_ms: i64) -> Result<usize> {
        let mut blocks = self.blocks.write().map_err(|_| Error::Closed("tsdb"))?;
        let mut removed = Vec::new();
        if retention_ms > 0 {
            let horizon = now_ms - retention_ms;
            let (old, keep): (Vec<_>, Vec<_>) =
                blocks.drain(..).partition(|b| b.meta.max_t < horizon);
            *blocks = keep;
            removed.extend(old);
        }
        if self.opts.retention_bytes > 0 {
            let wal_bytes = self.wal.lock().disk_bytes();
            let mut total: u64 = blocks.iter().map(|b| b.disk_bytes()).sum::<u64>() + wal_bytes;
            while total > self.opts.retention_bytes && !blocks.is_empty() {
                let b = blocks.remove(0);
                total -= b.disk_bytes();
                removed.push(b);
            }
        }
        drop(blocks);
        for dir in removed.iter().filter_map(|b| b.dir()) {
            let _ = fs::remove_dir_all(dir);
        }
        self.metrics.retention_removed.inc_by(removed.len() as u64);
        Ok(removed.len())
    }
}

/// Writes the series of `blocks` (each sorted by labels) merged into one block of
/// `level` under `parent`: a k-way merge by label set, a series' samples merged by
/// timestamp. Returns its directory (`None` when there was no sample). Blocking.
pub fn merge_blocks(blocks: &[Arc<Block>], parent: &Path, level: u32) -> Result<Option<PathBuf>> {
    let mut iters: Vec<_> = blocks.iter().map(|b| b.all().peekable()).collect();
    let mut merged = Vec::new();
    loop {
        let mut min: Option<Labels> = None;
        for it in iters.iter_mut() {
            if let Some(Ok((l, _))) = it.peek() {
                if min.as_ref().is_none_or(|m| l < m) {
                    min = Some(l.clone());
                }
            } else if let Some(Err(_)) = it.peek()
                && let Some(Err(e)) = it.next()
            {
                return Err(e);
            }
        }
        let Some(min) = min else { break };
        let mut parts = Vec::new();
        for it in iters.iter_mut() {
            if matches!(it.peek(), Some(Ok((l, _))) if *l == min)
                && let Some(Ok((_, s))) = it.next()
            {
                parts.push(s);
            }
        }
        merged.push((min, merge_samples(parts)));
    }
    write_block(parent, merged.into_iter(), level)
}

/// Blocks are merged up to this level (2 h → 6 h → 18 h → 54 h with the default range).
pub const MAX_COMPACTION_LEVEL: u32 = 3;
/// Blocks of one level merged into one of the next.
pub const COMPACTION_FACTOR: usize = 3;

fn find_compaction_run(blocks: &[Arc<Block>]) -> Option<Vec<Arc<Block>>> {
    for level in 0..MAX_COMPACTION_LEVEL {
        let same: Vec<&Arc<Block>> = blocks.iter().filter(|b| b.meta.level == level).collect();
        if same.len() >= COMPACTION_FACTOR {
            return Some(
                same[..COMPACTION_FACTOR]
                    .iter()
                    .map(|b| (*b).clone())
                    .collect(),
            );
        }
    }
    None
}
