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
//! Work follows events. The source sleeps until a change notification
//! ([`crate::watch`]) names a file that changed (that file is read) or an entry created,
//! removed or renamed in a watched directory (the globs are scanned), until one of the
//! tailer's own timers is due ([`Tailer::next_deadline`]: a partial line's timeout, a
//! rotated-away file to finish, an idle file to close), until acknowledged positions
//! are due in the checkpoint file, or until `scan_interval` passed: the fallback round
//! that scans the globs and reads every open file, for what events missed (network file
//! systems, an overflowed inotify queue). Nothing runs per loop: an idle agent makes no
//! system call between those wake-ups, which `triad_agent_source_wakeups_total` and
//! `triad_agent_directory_scans_total` count.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use triad_model::{KeyValue, LogRecord, Value};

use crate::checkpoint::{Checkpoints, Position};
use crate::decode::{Decoder, Format};
use crate::fields::LineContext;
use crate::forward::AckBoard;
use crate::metrics::AgentMetrics;
use crate::tailer::{Line, Scope, Tailer, TailerConfig};
use crate::watch::{Changes, Waker, Watcher, target_dirs};

/// How often the checkpoint file is written while lines flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most lines in one batch.
const MAX_BATCH_LINES: usize = 10_000;
/// Most line bytes in one batch.
const MAX_BATCH_BYTES: usize = 2 << 20;
/// While change notifications stream in, rounds start at most this often: a steady
/// trickle of writes (1,500 lines/s over 50 files) is read in at most 5 rounds a
/// second, not one per line; a lone write after quiet is read at once. Every round
/// costs a batch through the buffer and the collector: at 50 ms the trickle cost the
/// agent 5.1% of a core, at 200 ms (see docs/benchmarks.md).
const MIN_ROUND_GAP: Duration = Duration::from_millis(200);
/// Without change notifications (no inotify instance to be had), open files are read
/// this often; the globs are still scanned every scan interval.
const POLL_WITHOUT_EVENTS: Duration = Duration::from_secs(1);

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
    /// How often to scan the globs and read every open file whatever was reported (the
    /// fallback for lost events).
    pub scan_interval: Duration,
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
    watcher: Watcher,
    /// Acknowledged positions not yet in the checkpoint file.
    unsaved: bool,
    last_save: Instant,
    /// When the last round that scanned and read everything started.
    last_full: Option<Instant>,
    /// When the last round started.
    last_round: Option<Instant>,
    /// Directory scans already counted in the metrics.
    scans_counted: u64,
    /// Batches with positions delivered so far (compared with the acknowledged ones).
    delivered_batches: u64,
}

impl FileSource {
    /// Validates the globs, loads the checkpoints and starts watching the directories.
    pub fn new(
        cfg: SourceConfig,
        acks: AckBoard,
        metrics: AgentMetrics,
    ) -> crate::Result<FileSource> {
        let tailer = Tailer::new(cfg.tailer.clone())?;
        if let Some(dir) = cfg.checkpoint_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(crate::Error::io(format!("create {}", dir.display())))?;
        }
        let checkpoints = Checkpoints::load(&cfg.checkpoint_path).map_err(crate::Error::io(
            format!("load checkpoints {}", cfg.checkpoint_path.display()),
        ))?;
        let watcher = Watcher::new(&cfg.tailer.include);
        Ok(FileSource {
            cfg,
            tailer,
            checkpoints,
            decoders: HashMap::new(),
            acks,
            metrics,
            watcher,
            unsaved: false,
            last_save: Instant::now(),
            last_full: None,
            last_round: None,
            scans_counted: 0,
            delivered_batches: 0,
        })
    }

    /// A handle that makes the running source look up at once: call it after `stop`
    /// turned true, or the source notices only at its next wake-up.
    pub fn waker(&self) -> Waker {
        self.watcher.waker()
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
        self.last_save = Instant::now();
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

    /// When the source must look even if nothing is reported.
    fn deadline(&self) -> Instant {
        let mut due = self
            .last_full
            .map_or_else(Instant::now, |t| t + self.cfg.scan_interval);
        if let Some(t) = self.tailer.next_deadline() {
            due = due.min(t);
        }
        if self.unsaved {
            due = due.min(self.last_save + CHECKPOINT_EVERY);
        }
        if self.delivered_batches > self.acks.acknowledged_batches() {
            // Acknowledgements are due: take them into the checkpoints within about
            // as long as a checkpoint waits anyway.
            let last = self.last_round.unwrap_or(self.last_save);
            due = due.min(last + CHECKPOINT_EVERY);
        }
        if !self.watcher.is_live() {
            let polled = self
                .last_round
                .map_or_else(Instant::now, |t| t + POLL_WITHOUT_EVENTS);
            due = due.min(polled);
        }
        due
    }

    /// Sleeps until there is work (see the module docs) and says what it is.
    fn wait_for_work(&mut self) -> Changes {
        let deadline = self.deadline();
        let mut changes = self.watcher.wait(Some(deadline));
        let now = Instant::now();
        let files_changed = changes.rescan || changes.lost || !changes.modified.is_empty();
        let reason = if files_changed {
            "event"
        } else if changes.woken {
            "wake"
        } else {
            "timer"
        };
        self.metrics.source_wakeup(reason);
        if files_changed
            && !changes.woken
            && let Some(last) = self.last_round
            && now < last + MIN_ROUND_GAP
        {
            // Events stream in: gather the rest of them into one round.
            std::thread::sleep(last + MIN_ROUND_GAP - now);
            changes.merge(self.watcher.take());
        }
        changes
    }

    /// What the next round looks at, given what was reported.
    fn scope(&mut self, changes: Changes) -> Scope {
        let now = Instant::now();
        let full = changes.lost
            || self
                .last_full
                .is_none_or(|t| now >= t + self.cfg.scan_interval);
        let polled = !self.watcher.is_live()
            && self
                .last_round
                .is_none_or(|t| now >= t + POLL_WITHOUT_EVENTS);
        if full {
            self.last_full = Some(now);
        }
        self.last_round = Some(now);
        if full || changes.rescan {
            // A directory that did not exist (or was replaced) is watched from now on.
            self.watcher.watch_roots();
        }
        Scope {
            scan: full || changes.rescan,
            all: full || polled,
            changed: changes.modified,
        }
    }

    /// One round of the tailer, with the bookkeeping around it.
    fn poll(&mut self, scope: &Scope) -> Vec<Line> {
        let lines = self.tailer.poll_scoped(&self.checkpoints, scope);
        let scans = self.tailer.scans();
        self.metrics
            .directory_scans
            .inc_by(scans - self.scans_counted);
        self.scans_counted = scans;
        // Symlinked files (container logs) are written where their targets live.
        self.watcher
            .watch_extra(target_dirs(self.tailer.locations()));
        self.metrics.open_files.set(self.tailer.open_files() as i64);
        self.metrics.set_file_lag(&self.tailer.lags());
        lines
    }

    /// Delivers a batch (see [`deliver_with_retry`]), counting those whose positions
    /// are to be acknowledged.
    fn deliver(
        &mut self,
        sink: &dyn Sink,
        batch: Batch,
        block_on: &impl Fn(DeliverFuture<'_>) -> Result<(), Refused>,
        stop: &impl Fn() -> bool,
    ) -> bool {
        let acknowledged = !batch.positions.is_empty();
        let delivered = deliver_with_retry(sink, batch, block_on, stop);
        if delivered && acknowledged {
            self.delivered_batches += 1;
        }
        delivered
    }

    /// Runs until `stop` returns true: poll, decode, deliver (retrying), checkpoint.
    /// `block_on` drives the sink's future (a runtime handle's `block_on`). Whoever
    /// turns `stop` true wakes the source with [`FileSource::waker`].
    pub fn run(
        mut self,
        sink: Arc<dyn Sink>,
        block_on: impl Fn(DeliverFuture<'_>) -> Result<(), Refused>,
        stop: impl Fn() -> bool,
    ) {
        // The first round scans and reads everything.
        let mut busy = true;
        while !stop() {
            self.apply_acks(false);
            let changes = if busy {
                // Lines were read in the last round: go on without sleeping, taking
                // what was reported meanwhile.
                self.watcher.take()
            } else {
                self.wait_for_work()
            };
            if stop() {
                break;
            }
            let scope = self.scope(changes);
            let mut lines = self.poll(&scope);
            let flushed = self.flush_closed();
            let skips = self.skipped_positions();
            if lines.is_empty() && flushed.is_empty() {
                busy = false;
                if !skips.is_empty() {
                    // Checkpointed behind everything delivered before, like lines.
                    let batch = Batch {
                        records: Vec::new(),
                        positions: skips,
                    };
                    if !self.deliver(&*sink, batch, &block_on, &stop) {
                        self.apply_acks(true);
                        return;
                    }
                }
                continue;
            }
            busy = true;
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
                if !self.deliver(&*sink, batch, &block_on, &stop) {
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

pub use triad_model::host_name;
