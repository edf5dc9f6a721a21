//! The file source: tail, decode, deliver, and checkpoint only what was acknowledged.
//!
//! It runs on its own thread (file reads and the checkpoint fsync are blocking) and
//! hands batches to a [`Sink`]. A batch is retried with exponential backoff until the
//! sink acknowledges it; meanwhile no new lines are read, so backpressure reaches the
//! files instead of memory. After each acknowledgement the checkpoint file is written
//! atomically: a crash replays at most the last unacknowledged batch (at-least-once).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use triad_model::{KeyValue, LogRecord, Value};

use crate::checkpoint::{Checkpoints, Position};
use crate::decode::{Decoder, Format};
use crate::fields::LineContext;
use crate::tailer::{Line, Tailer, TailerConfig};

/// Per file: the offset up to which every line is in a delivered record, and its path.
type SafeOffsets = HashMap<(u64, u64), (u64, String)>;

/// Most lines delivered in one batch.
const MAX_BATCH_LINES: usize = 5_000;

/// Where records go. `deliver` resolves once they are durable at the destination.
pub trait Sink: Send + Sync {
    /// Delivers a batch; an error means "not delivered, retry".
    fn deliver(
        &self,
        records: Vec<LogRecord>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// Settings of the file source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// What to tail and how.
    pub tailer: TailerConfig,
    /// Checkpoint file.
    pub checkpoint_path: PathBuf,
    /// How often to look for new lines.
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
}

impl FileSource {
    /// Validates the globs and loads the checkpoints.
    pub fn new(cfg: SourceConfig) -> Result<FileSource, String> {
        let tailer = Tailer::new(cfg.tailer.clone())?;
        if let Some(dir) = cfg.checkpoint_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        let checkpoints = Checkpoints::load(&cfg.checkpoint_path)
            .map_err(|e| format!("load checkpoints {}: {e}", cfg.checkpoint_path.display()))?;
        Ok(FileSource {
            cfg,
            tailer,
            checkpoints,
            decoders: HashMap::new(),
        })
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

    /// Decodes lines; also returns, per file, the offset up to which every line is in a
    /// returned record. Pieces of a split line still waiting in the decoder lie beyond
    /// it, so checkpointing that offset never skips them after a crash.
    fn decode(&mut self, lines: &[Line]) -> (Vec<LogRecord>, SafeOffsets) {
        let now = triad_model::now_ns();
        let mut out = Vec::with_capacity(lines.len());
        let mut safe = HashMap::new();
        for l in lines {
            if !self.decoders.contains_key(&l.file) {
                let d = Decoder::new(
                    Format::sniff(&l.bytes),
                    self.context(&l.path),
                    self.cfg.tailer.max_line_bytes,
                );
                self.decoders.insert(l.file, d);
            }
            if let Some(d) = self.decoders.get_mut(&l.file) {
                out.extend(d.push(&l.bytes, now));
                if !d.has_pending() {
                    safe.insert(l.file, (l.end_offset, l.path.clone()));
                }
            }
        }
        (out, safe)
    }

    fn checkpoint(&mut self, safe: SafeOffsets) {
        for (file, (offset, path)) in safe {
            if let Some(fingerprint) = self.tailer.fingerprint(file) {
                self.checkpoints.set(Position {
                    fingerprint,
                    offset,
                    path,
                });
            }
        }
        let tailer = &self.tailer;
        self.checkpoints.retain(|p| {
            tailer.is_open((p.fingerprint.dev, p.fingerprint.ino))
                || std::path::Path::new(&p.path).exists()
        });
        self.decoders.retain(|k, _| tailer.is_open(*k));
        if let Err(e) = self.checkpoints.save() {
            // The data was delivered; a stale checkpoint only means replay after a crash.
            tracing::error!(path = %self.cfg.checkpoint_path.display(), error = %e, "saving checkpoints failed");
        }
    }

    /// Runs until `stop` returns true: poll, decode, deliver (retrying), checkpoint.
    /// `block_on` drives the sink's future (a runtime handle's `block_on`).
    pub fn run(
        mut self,
        sink: Arc<dyn Sink>,
        block_on: impl Fn(
            Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>,
        ) -> Result<(), String>,
        stop: impl Fn() -> bool,
    ) {
        while !stop() {
            let mut lines = self.tailer.poll(&self.checkpoints);
            if lines.is_empty() {
                std::thread::sleep(self.cfg.poll_interval);
                continue;
            }
            while !lines.is_empty() && !stop() {
                let rest = lines.split_off(lines.len().min(MAX_BATCH_LINES));
                let (records, safe) = self.decode(&lines);
                let mut backoff = Duration::from_millis(100);
                loop {
                    match block_on(sink.deliver(records.clone())) {
                        Ok(()) => break,
                        Err(e) if stop() => {
                            tracing::warn!(error = %e, "stopping with an undelivered batch; it is re-read at the next start");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "delivering log lines failed; retrying");
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                self.checkpoint(safe);
                lines = rest;
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
