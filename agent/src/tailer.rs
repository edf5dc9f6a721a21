//! Tailing files: discovery by glob, identity by [`Fingerprint`], and reading that
//! survives rotation by rename-and-create, copytruncate, truncation, deletion while open
//! and symlinks.
//!
//! The tailer is driven by [`Tailer::poll`]: scan the globs, then read what each file
//! gained since the last poll, a bounded amount per file so that one busy file cannot
//! starve the others. A caller that wants low latency polls when `notify` reports a
//! change and on a timer as the fallback for lost events. Each [`Line`] carries the
//! offset just after it, which the caller checkpoints only once the line was delivered.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use triad_model::config::ReadFrom;

use crate::checkpoint::Checkpoints;
use crate::decode::TRUNCATION_MARKER;
use crate::fingerprint::Fingerprint;

/// Tailer settings.
#[derive(Debug, Clone)]
pub struct TailerConfig {
    /// Glob patterns of files to tail.
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone, even if included.
    pub exclude: Vec<String>,
    /// Start position for files found at start-up without a checkpoint; files that
    /// appear later are always read from their beginning.
    pub read_from: ReadFrom,
    /// Longer lines are cut at this many bytes, with [`TRUNCATION_MARKER`].
    pub max_line_bytes: usize,
    /// A last line without a newline is delivered after waiting this long for one.
    pub partial_line_timeout: Duration,
    /// A file no longer matched by the globs (rotated away, deleted) is read to its end
    /// and closed once it has not grown for this long.
    pub rotate_wait: Duration,
    /// Files whose last change is older than this are not opened (0: no limit).
    pub ignore_older: Duration,
    /// Most bytes read from one file per poll: the fairness quantum.
    pub read_quantum_bytes: usize,
    /// Most line bytes one poll returns (files after it wait for the next poll).
    pub poll_budget_bytes: usize,
}

impl Default for TailerConfig {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            max_line_bytes: 256 * 1024,
            partial_line_timeout: Duration::from_secs(1),
            rotate_wait: Duration::from_secs(5),
            ignore_older: Duration::ZERO,
            read_quantum_bytes: 256 * 1024,
            poll_budget_bytes: 4 << 20,
        }
    }
}

/// One complete line read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Device and inode of the file (the checkpoint key).
    pub file: (u64, u64),
    /// Path the file was read from (shared by the file's lines).
    pub path: std::sync::Arc<str>,
    /// The line, without its newline.
    pub bytes: Vec<u8>,
    /// Offset just after the line: the position to checkpoint once it is delivered.
    pub end_offset: u64,
}

struct Watched {
    fingerprint: Fingerprint,
    file: File,
    path: PathBuf,
    /// `path` as text, shared with every line read.
    path_text: std::sync::Arc<str>,
    /// Offset of the first byte not yet read.
    read_offset: u64,
    /// Bytes of an incomplete line, starting at `read_offset - pending.len()`.
    pending: Vec<u8>,
    /// The pending line was cut at `max_line_bytes`; drop the rest until its newline.
    skipping: bool,
    /// When `pending` last grew.
    pending_since: Instant,
    /// When the file was last found by the globs.
    last_seen: Instant,
    /// When the file last grew.
    last_growth: Instant,
    /// Size at the last poll.
    size: u64,
}

/// Tails the files matching the configured globs.
pub struct Tailer {
    cfg: TailerConfig,
    excludes: Vec<glob::Pattern>,
    files: HashMap<(u64, u64), Watched>,
    first_scan: bool,
    /// The file the next poll starts reading at (round robin).
    cursor: (u64, u64),
}

impl Tailer {
    /// A tailer; fails on a malformed glob, naming it.
    pub fn new(cfg: TailerConfig) -> Result<Tailer, String> {
        for p in &cfg.include {
            glob::Pattern::new(p).map_err(|e| format!("include pattern {p:?}: {e}"))?;
        }
        let excludes = cfg
            .exclude
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| format!("exclude pattern {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Tailer {
            cfg,
            excludes,
            files: HashMap::new(),
            first_scan: true,
            cursor: (0, 0),
        })
    }

    /// Number of files currently open.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Per open file: its path and the bytes not yet read.
    pub fn lags(&self) -> Vec<(String, u64)> {
        self.files
            .values()
            .map(|w| {
                let lag = w.size.saturating_sub(w.read_offset);
                (w.path.display().to_string(), lag)
            })
            .collect()
    }

    /// The current fingerprint of an open file.
    pub fn fingerprint(&self, file: (u64, u64)) -> Option<Fingerprint> {
        self.files.get(&file).map(|w| w.fingerprint)
    }

    /// True while the file with this device and inode is open (its checkpoint is live).
    pub fn is_open(&self, file: (u64, u64)) -> bool {
        self.files.contains_key(&file)
    }

    /// Scans the globs, then reads up to `read_quantum_bytes` from every file. Lines come
    /// in file order per file.
    pub fn poll(&mut self, checkpoints: &Checkpoints) -> Vec<Line> {
        let now = Instant::now();
        self.scan(checkpoints, now);
        let mut out = Vec::new();
        // Round robin from where the last poll stopped, until the byte budget is spent:
        // fair across files, and memory stays bounded however many files are busy.
        let mut keys: Vec<(u64, u64)> = self.files.keys().copied().collect();
        keys.sort_unstable();
        let start = keys.partition_point(|k| *k < self.cursor);
        let cfg = &self.cfg;
        let mut bytes = 0;
        for key in keys[start..].iter().chain(&keys[..start]) {
            if bytes >= cfg.poll_budget_bytes {
                self.cursor = *key;
                break;
            }
            let Some(w) = self.files.get_mut(key) else {
                continue;
            };
            let before = out.len();
            if let Err(e) = read_file(w, cfg, now, &mut out) {
                tracing::warn!(path = %w.path.display(), error = %e, "reading log file failed");
            }
            bytes += out[before..].iter().map(|l| l.bytes.len()).sum::<usize>();
        }
        // Close files that left the globs and stopped growing: fully read.
        let rotate_wait = self.cfg.rotate_wait;
        self.files.retain(|_, w| {
            let gone = w.last_seen != now;
            !(gone && now.duration_since(w.last_growth) >= rotate_wait && w.pending.is_empty())
        });
        self.first_scan = false;
        out
    }

    fn scan(&mut self, checkpoints: &Checkpoints, now: Instant) {
        for pattern in &self.cfg.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                if self.excludes.iter().any(|e| e.matches_path(&path)) {
                    continue;
                }
                // `metadata` follows symlinks: a linked file is tailed as its target.
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue; // a directory (or a file replaced by one) is not read
                }
                use std::os::unix::fs::MetadataExt;
                let key = (meta.dev(), meta.ino());
                if let Some(w) = self.files.get_mut(&key) {
                    w.last_seen = now;
                    if w.path != path {
                        w.path_text = path.display().to_string().into();
                        w.path = path;
                    }
                    continue;
                }
                if !self.cfg.ignore_older.is_zero()
                    && meta
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > self.cfg.ignore_older)
                {
                    continue;
                }
                if let Some(w) = self.open(&path, meta.len(), checkpoints, now) {
                    self.files.insert(key, w);
                }
            }
        }
    }

    fn open(
        &self,
        path: &Path,
        len: u64,
        checkpoints: &Checkpoints,
        now: Instant,
    ) -> Option<Watched> {
        let mut file = File::open(path).ok()?;
        let fingerprint = Fingerprint::of(&mut file).ok()?;
        let resume = checkpoints
            .get(fingerprint.dev, fingerprint.ino)
            .filter(|p| p.fingerprint.matches(&mut file).unwrap_or(false))
            .map(|p| p.offset);
        let read_offset = match resume {
            // A checkpoint past the end means the file was truncated since.
            Some(off) if off <= len => off,
            Some(_) => 0,
            None if self.first_scan && self.cfg.read_from == ReadFrom::End => len,
            None => 0,
        };
        Some(Watched {
            fingerprint,
            file,
            path: path.to_path_buf(),
            path_text: path.display().to_string().into(),
            read_offset,
            pending: Vec::new(),
            skipping: false,
            pending_since: now,
            last_seen: now,
            last_growth: now,
            size: len,
        })
    }
}

fn read_file(
    w: &mut Watched,
    cfg: &TailerConfig,
    now: Instant,
    out: &mut Vec<Line>,
) -> std::io::Result<()> {
    let len = w.file.metadata()?.len();
    w.size = len;
    // Truncated in place (copytruncate, `> file`), also when new writes already grew it
    // past the old offset: the head no longer matches. Start over from the beginning.
    if len < w.read_offset || !w.fingerprint.matches(&mut w.file)? {
        w.read_offset = 0;
        w.pending.clear();
        w.skipping = false;
        w.fingerprint = Fingerprint::of(&mut w.file)?;
    }
    if len > w.read_offset {
        w.last_growth = now;
        w.file.seek(SeekFrom::Start(w.read_offset))?;
        let want = ((len - w.read_offset) as usize).min(cfg.read_quantum_bytes);
        let mut chunk = vec![0u8; want];
        let n = w.file.read(&mut chunk)?;
        chunk.truncate(n);
        split_lines(w, &chunk, cfg, now, out);
        // While the file is short, its fingerprint covers fewer bytes: extend it.
        if (w.fingerprint.head_len as usize) < crate::fingerprint::HEAD_BYTES {
            w.fingerprint = Fingerprint::of(&mut w.file)?;
        }
    } else if !w.pending.is_empty()
        && now.duration_since(w.pending_since) >= cfg.partial_line_timeout
    {
        // A last line without a newline: deliver it after waiting for one.
        let bytes = std::mem::take(&mut w.pending);
        if !w.skipping {
            out.push(line_of(w, bytes, w.read_offset));
        }
        w.skipping = false;
    }
    Ok(())
}

fn line_of(w: &Watched, bytes: Vec<u8>, end_offset: u64) -> Line {
    Line {
        file: (w.fingerprint.dev, w.fingerprint.ino),
        path: w.path_text.clone(),
        bytes,
        end_offset,
    }
}

fn split_lines(
    w: &mut Watched,
    chunk: &[u8],
    cfg: &TailerConfig,
    now: Instant,
    out: &mut Vec<Line>,
) {
    let mut start = 0;
    let base = w.read_offset;
    while let Some(nl) = memchr::memchr(b'\n', &chunk[start..]) {
        let end = start + nl;
        let end_offset = base + end as u64 + 1;
        if w.skipping {
            w.skipping = false;
        } else if w.pending.is_empty() {
            let mut bytes = chunk[start..end].to_vec();
            cap(&mut bytes, cfg.max_line_bytes);
            out.push(line_of(w, bytes, end_offset));
        } else {
            let mut bytes = std::mem::take(&mut w.pending);
            bytes.extend_from_slice(&chunk[start..end]);
            cap(&mut bytes, cfg.max_line_bytes);
            out.push(line_of(w, bytes, end_offset));
        }
        start = end + 1;
    }
    let rest = &chunk[start..];
    if !rest.is_empty() && !w.skipping {
        w.pending.extend_from_slice(rest);
        w.pending_since = now;
        if w.pending.len() > cfg.max_line_bytes {
            // Deliver the head now and drop the rest of the line: memory stays bounded.
            let mut bytes = std::mem::take(&mut w.pending);
            cap(&mut bytes, cfg.max_line_bytes);
            let end_offset = base + chunk.len() as u64;
            out.push(line_of(w, bytes, end_offset));
            w.skipping = true;
        }
    }
    w.read_offset = base + chunk.len() as u64;
}

fn cap(bytes: &mut Vec<u8>, max: usize) {
    if bytes.len() > max {
        bytes.truncate(max);
        bytes.extend_from_slice(TRUNCATION_MARKER.as_bytes());
    }
}
