//! The file source: tail, decode, deliver, and checkpoint only what was acknowledged.
//!
//! It runs on its own thread (file reads and the checkpoint fsync are blocking) and
//! hands [`Batch`]es to a [`Sink`]. A batch is retried with exponential backoff until
//! the sink takes it; meanwhile no new lines are read, so backpressure reaches the
//! files instead of memory. A batch carries the file positions it completes; the sink
//! hands them to the [`AckBoard`] once its records are durable at their destination
//! (at once for the in-process store, after the collector's answer for the agent's
//! forwarder), and only then are they written to the checkpoint file, atomically. A
//! crash replays lines rather than losing them (at-least-once).
//!
//! The source wakes when `notify` reports a change under the watched directories, and
//! at `poll_interval` in any case: the scan that finds what events missed (network file
//! systems, an overflowed inotify queue).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use triad_model::{KeyValue, LogRecord, Value};

use crate::checkpoint::{Checkpoints, Position};
use crate::decode::{Decoder, Format};
use crate::fields::LineContext;
use crate::forward::AckBoard;
use crate::metrics::AgentMetrics;
use crate::tailer::{Line, Tailer, TailerConfig};

/// How often the checkpoint file is written while lines flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most lines in one batch.
const MAX_BATCH_LINES: usize = 10_000;
/// Most line bytes in one batch.
const MAX_BATCH_BYTES: usize = 2 << 20;

/// Records and the file positions they complete.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The records, in file order per file.
    pub records: Vec<LogRecord>,
    /// Per file, the offset up to which every line is in these (or earlier) records.
    pub positions: Vec<Position>,
}

/// A batch the sink did not take, handed back for the retry.
pub type Refused = (String, Batch);

/// The future a [`Sink`] returns.
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Refused>> + Send + 'a>>;

/// Where batches go.
pub trait Sink: Send + Sync {
    /// Takes a batch, or hands it back with the reason (the source retries it). Once
    /// the records are durable at their destination the sink passes `batch.positions`
    /// to the source's [`AckBoard`] — before returning, or later.
    fn deliver(&self, batch: Batch) -> DeliverFuture<'_>;
}

/// Settings of the file source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// What to tail and how.
    pub tailer: TailerConfig,
    /// Checkpoint file.
    pub checkpoint_path: PathBuf,
    /// How often to scan when no change is reported (the fallback for lost events).
    pub poll_interval: Duration,
    /// Tenant of the records.
    pub tenant: String,
    /// Host name added to every record.
    pub host: String,
    /// Static labels added to every record as attributes.
    pub labels: Vec<(String, String)>,
}

/// Tails files and delivers their lines to a [`Sink`].
pub struct FileSource {
    cfg: SourceConfig,
    tailer: Tailer,
    checkpoints: Checkpoints,
    decoders: HashMap<(u64, u64), Decoder>,
    acks: AckBoard,
    metrics: AgentMetrics,
    wake: Option<Receiver<()>>,
    _watcher: Option<crate::watch::Watcher>,
    /// Acknowledged positions not yet in the checkpoint file.
    unsaved: bool,
    last_save: std::time::Instant,
}

impl FileSource {
    /// Validates the globs, loads the checkpoints and starts watching the directories.
    pub fn new(
        cfg: SourceConfig,
        acks: AckBoard,
        metrics: AgentMetrics,
    ) -> Result<FileSource, String> {
        let tailer = Tailer::new(cfg.tailer.clone())?;
        if let Some(dir) = cfg.checkpoint_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        let checkpoints = Checkpoints::load(&cfg.checkpoint_path)
            .map_err(|e| format!("load checkpoints {}: {e}", cfg.checkpoint_path.display()))?;
        let (watcher, wake) = match crate::watch::Watcher::new(&cfg.tailer.include) {
            Ok((w, rx)) => (Some(w), Some(rx)),
            Err(e) => {
                tracing::warn!(error = %e, "file change notifications unavailable; scanning every poll interval");
                (None, None)
            }
        };
        Ok(FileSource {
            cfg,
            tailer,
            checkpoints,
            decoders: HashMap::new(),
            acks,
            metrics,
            wake,
            _watcher: watcher,
            unsaved: false,
            last_save: std::time::Instant::now(),
        })
    }

    /// Resumes after positions whose lines are already on their way (the agent's buffer
    /// holds them), where these lie beyond the checkpoints.
    pub fn resume_after(&mut self, positions: Vec<Position>) {
        for p in positions {
            let further = match self.checkpoints.get(p.fingerprint.dev, p.fingerprint.ino) {
                Some(c) => c.fingerprint != p.fingerprint || c.offset < p.offset,
                None => true,
            };
            if further {
                self.checkpoints.set(p);
            }
        }
    }

    fn context(&self, path: &str) -> LineContext {
        let mut attributes: Vec<KeyValue> = self
            .cfg
            .labels
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), Value::Str(v.clone())))
            .collect();
        attributes.extend(crate::k8s::metadata_from_path(path).unwrap_or_default());
        LineContext {
            tenant: self.cfg.tenant.clone(),
            source: path.to_string(),
            host: self.cfg.host.clone(),
            attributes,
        }
    }

    /// Decodes lines into a batch. A file's position is included only when no piece
    /// of a split line is waiting in its decoder: checkpointing it never skips them.
    fn decode(&mut self, lines: &[Line]) -> Batch {
        let now = triad_model::now_ns();
        let mut records = Vec::with_capacity(lines.len());
        // Lines of one file come together (the tailer reads file by file): one position
        // per run of lines, updated in place.
        let mut safe: Vec<((u64, u64), Position)> = Vec::new();
        let mut parse_errors = 0;
        let max_line_bytes = self.cfg.tailer.max_line_bytes;
        for run in lines.chunk_by(|a, b| a.file == b.file) {
            let first = &run[0];
            if !self.decoders.contains_key(&first.file) {
                let ctx = self.context(&first.path);
                let d = Decoder::new(Format::sniff(&first.bytes), ctx, max_line_bytes);
                self.decoders.insert(first.file, d);
            }
            let Some(d) = self.decoders.get_mut(&first.file) else {
                continue;
            };
            let mut last_safe = None;
            for l in run {
                records.extend(d.push(&l.bytes, now));
                if !d.has_pending() {
                    last_safe = Some(l);
                }
            }
            parse_errors += d.take_parse_errors();
            if let Some(l) = last_safe
                && let Some(fingerprint) = self.tailer.fingerprint(l.file)
            {
                let pos = Position {
                    fingerprint,
                    offset: l.end_offset,
                    path: l.path.to_string(),
                    tail: self.tailer.tail_sum(l.file, l.end_offset),
                };
                match safe.iter_mut().find(|(f, _)| *f == l.file) {
                    Some((_, p)) => *p = pos,
                    None => safe.push((l.file, pos)),
                }
            }
        }
        for _ in 0..parse_errors {
            self.metrics.parse_error("format");
        }
        self.metrics.records.inc_by(records.len() as u64);
        Batch {
            records,
            positions: safe.into_iter().map(|(_, p)| p).collect(),
        }
    }

    /// Positions of the copies whose already-read part the tailer skipped.
    fn skipped_positions(&mut self) -> Vec<Position> {
        self.tailer
            .take_skips()
            .into_iter()
            .filter(|s| !self.decoders.get(&s.file).is_some_and(|d| d.has_pending()))
            .map(|s| Position {
                fingerprint: s.fingerprint,
                offset: s.offset,
                path: s.path.to_string(),
                tail: self.tailer.tail_sum(s.file, s.offset),
            })
            .collect()
    }

    /// Split lines of files the tailer closed: their last pieces become records now.
    fn flush_closed(&mut self) -> Vec<LogRecord> {
        let now = triad_model::now_ns();
        let closed: Vec<(u64, u64)> = self
            .decoders
            .keys()
            .filter(|k| !self.tailer.is_open(**k))
            .copied()
            .collect();
        closed
            .into_iter()
            .filter_map(|k| self.decoders.remove(&k)?.flush(now))
            .collect()
    }

    /// Writes acknowledged positions to the checkpoint file.
    /// Takes acknowledged positions into the checkpoints, and writes the checkpoint file
    /// when `now` or at most every [`CHECKPOINT_EVERY`] (an fsync per batch would cost
    /// more than the batch; the agent's buffer keeps the acknowledged positions in the
    /// meantime, and in `triad up` a crash replays at most that much).
    fn apply_acks(&mut self, now: bool) {
        let acked = self.acks.drain();
        self.unsaved |= !acked.is_empty();
        for p in acked {
            self.checkpoints.set(p);
        }
        if !self.unsaved || !(now || self.last_save.elapsed() >= CHECKPOINT_EVERY) {
            return;
        }
        self.unsaved = false;
        self.last_save = std::time::Instant::now();
        let tailer = &self.tailer;
        self.checkpoints.retain(|p| {
            tailer.is_open((p.fingerprint.dev, p.fingerprint.ino))
                || std::path::Path::new(&p.path).exists()
        });
        if let Err(e) = self.checkpoints.save() {
            // The data was delivered; a stale checkpoint only means replay after a crash.
            self.metrics.checkpoint_errors.inc();
            tracing::error!(path = %self.cfg.checkpoint_path.display(), error = %e, "saving checkpoints failed");
        }
    }

    fn wait(&self) {
        match &self.wake {
            Some(rx) => match rx.recv_timeout(self.cfg.poll_interval) {
                // A burst of events is one wake-up.
                Ok(()) => while rx.try_recv().is_ok() {},
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            },
            None => std::thread::sleep(self.cfg.poll_interval),
        }
    }

    /// Runs until `stop` returns true: poll, decode, deliver (retrying), checkpoint.
    /// `block_on` drives the sink's future (a runtime handle's `block_on`).
    pub fn run(
        mut self,
        sink: Arc<dyn Sink>,
        block_on: impl Fn(DeliverFuture<'_>) -> Result<(), Refused>,
        stop: impl Fn() -> bool,
    ) {
        while !stop() {
            self.apply_acks(false);
            let mut lines = self.tailer.poll(&self.checkpoints);
            let flushed = self.flush_closed();
            let skips = self.skipped_positions();
            self.metrics.open_files.set(self.tailer.open_files() as i64);
            self.metrics.set_file_lag(&self.tailer.lags());
            if lines.is_empty() && flushed.is_empty() {
                if !skips.is_empty() {
                    // Checkpointed behind everything delivered before, like lines.
                    let batch = Batch {
                        records: Vec::new(),
                        positions: skips,
                    };
                    if !deliver_with_retry(&*sink, batch, &block_on, &stop) {
                        self.apply_acks(true);
                        return;
                    }
                    continue;
                }
                self.apply_acks(true);
                self.wait();
                continue;
            }
            let mut skips = Some(skips);
            self.metrics.lines_read.inc_by(lines.len() as u64);
            self.metrics
                .bytes_read
                .inc_by(lines.iter().map(|l| l.bytes.len() as u64 + 1).sum());
            let mut pending_flush = Some(flushed);
            while !stop() && (!lines.is_empty() || pending_flush.is_some()) {
                let take = batch_len(&lines);
                let rest = lines.split_off(take);
                let mut batch = self.decode(&lines);
                if let Some(mut sk) = skips.take() {
                    // A file's own lines in this batch, if any, carry its newer position.
                    sk.retain(|p| {
                        !batch.positions.iter().any(|b| {
                            b.fingerprint.dev == p.fingerprint.dev
                                && b.fingerprint.ino == p.fingerprint.ino
                        })
                    });
                    batch.positions.extend(sk);
                }
                if let Some(f) = pending_flush.take() {
                    self.metrics.records.inc_by(f.len() as u64);
                    batch.records.extend(f);
                }
                lines = rest;
                // Even a batch without records goes through the sink: its positions
                // must not be checkpointed ahead of earlier batches still in flight.
                if !deliver_with_retry(&*sink, batch, &block_on, &stop) {
                    self.apply_acks(true);
                    return;
                }
                self.apply_acks(false);
            }
        }
        self.apply_acks(true);
    }
}

/// How many of `lines` go into the next batch.
fn batch_len(lines: &[Line]) -> usize {
    let mut bytes = 0;
    for (i, l) in lines.iter().enumerate() {
        bytes += l.bytes.len();
        if i + 1 >= MAX_BATCH_LINES || bytes >= MAX_BATCH_BYTES {
            return i + 1;
        }
    }
    lines.len()
}

/// Delivers, retrying with backoff; false if stopped first (the batch is re-read at
/// the next start, since its positions were never acknowledged).
fn deliver_with_retry(
    sink: &dyn Sink,
    mut batch: Batch,
    block_on: &impl Fn(DeliverFuture<'_>) -> Result<(), Refused>,
    stop: &impl Fn() -> bool,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match block_on(sink.deliver(batch)) {
            Ok(()) => return true,
            Err((e, _)) if stop() => {
                tracing::warn!(error = %e, "stopping with an undelivered batch; it is re-read at the next start");
                return false;
            }
            Err((e, back)) => {
                batch = back;
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "delivering log lines failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The host name: `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
