//! Tailing files: discovery by glob, identity by [`Fingerprint`], and reading that
//! survives rotation by rename-and-create, copytruncate, truncation, deletion while open
//! and symlinks.
//!
//! The tailer is driven by [`Tailer::poll_scoped`]: scan the globs if asked, then read
//! what the files in [`Scope`] gained since they were last read, a bounded amount per
//! file so that one busy file cannot starve the others. The caller (the file source)
//! puts into the scope what change notifications named, and sleeps until the next
//! event or [`Tailer::next_deadline`]: the tailer's own timers (a partial line waiting
//! for its newline, a rotated-away file waiting to be closed, an idle file to close, a
//! new file settling). [`Tailer::poll`] scans and reads everything: the fallback for
//! lost events. Each [`Line`] carries the offset just after it, which the caller
//! checkpoints only once the line was delivered.
//!
//! copytruncate and truncation are recognised in `copies.rs`; lines are cut from the
//! bytes read in `lines.rs`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use triad_model::config::ReadFrom;

use crate::checkpoint::Checkpoints;
use crate::fingerprint::{Fingerprint, TailSum, tail_sum};

mod copies;
mod lines;

use copies::{COPY_SETTLE, CopyStart, MAX_ORIGINS, ORIGIN_MEMORY, Origin, check_truncated};
use lines::read_file;

/// Identities of file contents: a file gets a new one when opened and when truncated,
/// so a copy can tell whether the original it follows is still the same.
static INCARNATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(super) fn next_incarnation() -> u64 {
    INCARNATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// While new files settle, the globs are scanned this often to see whether they still
/// grow.
const SETTLE_SCAN: Duration = Duration::from_millis(200);
/// Files the globs no longer match (rotated away, deleted) are read this often until
/// they are closed: writes to a deleted file, or under a name no glob matches, raise
/// no event that names them.
const GONE_POLL: Duration = Duration::from_millis(250);

/// Which files one [`Tailer::poll_scoped`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Scan the globs for new, renamed and deleted files.
    pub scan: bool,
    /// Read every open file, not only the changed ones.
    pub all: bool,
    /// Paths whose content changed: open files found at (or really living at) these
    /// paths are read; a path of no open file that a glob matches calls for a scan.
    pub changed: HashSet<PathBuf>,
}

impl Scope {
    /// Scan and read everything.
    pub fn everything() -> Scope {
        Scope {
            scan: true,
            all: true,
            changed: HashSet::new(),
        }
    }
}

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
    /// A fully read file that has not grown for this long is closed (its descriptor
    /// freed) and reopened, where it stopped, once it grows (0: never).
    pub close_idle: Duration,
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
            read_quantum_bytes: 512 * 1024,
            poll_budget_bytes: 4 << 20,
            close_idle: Duration::from_secs(300),
        }
    }
}

/// A file whose read position moved past bytes that were read elsewhere (the part of a
/// copy read from its original): to be checkpointed like delivered lines.
#[derive(Debug, Clone)]
pub struct Skip {
    /// Device and inode.
    pub file: (u64, u64),
    /// The file's fingerprint.
    pub fingerprint: Fingerprint,
    /// The new position.
    pub offset: u64,
    /// Path the file was read from.
    pub path: std::sync::Arc<str>,
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
    /// `path` made absolute, and where the file really is (symlinks resolved): change
    /// notifications name one of them.
    event_paths: [PathBuf; 2],
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
    /// Found by the last scan of the globs (false: rotated away or deleted).
    matched: bool,
    /// When the file last grew.
    last_growth: Instant,
    /// Size at the last poll.
    size: u64,
    /// Checksum of the bytes before the end of the last complete line read.
    tail: Option<TailSum>,
    /// The bytes the fingerprint covers.
    head: std::sync::Arc<[u8]>,
    /// Identity of the content: new at every open and truncation.
    generation: u64,
    /// This file is a copy of an open file (its key, and its generation when linked):
    /// it is not read while that file lives untruncated — its read position follows
    /// the original's — and takes over from there once the original is truncated or
    /// gone (copytruncate).
    shadow_of: Option<((u64, u64), u64)>,
    /// The original's read boundary and its checksum at the last follow.
    shadow_sync: Option<(u64, Option<TailSum>)>,
    /// Opened empty, with no position of its own: whether it is a copy is decided when
    /// its first data arrives.
    fresh: bool,
    /// The read position moved without lines (the part of a copy read elsewhere): the
    /// caller checkpoints it, so a restart does not read that part again.
    skipped: bool,
}

impl Watched {
    /// End of the last complete line read.
    fn boundary(&self) -> u64 {
        self.read_offset - self.pending.len() as u64
    }
}

/// The paths change notifications may name for a file found at `path`: the path made
/// absolute, and the file's real location (symlinks resolved).
fn event_paths(path: &Path) -> [PathBuf; 2] {
    let found = crate::watch::absolute(path);
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| found.clone());
    [found, real]
}

/// The first [`crate::fingerprint::HEAD_BYTES`] bytes of a file (fewer if it is shorter).
pub(super) fn head_bytes(file: &File) -> std::sync::Arc<[u8]> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; crate::fingerprint::HEAD_BYTES];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    buf.truncate(n);
    buf.into()
}

/// Tails the files matching the configured globs.
pub struct Tailer {
    cfg: TailerConfig,
    includes: Vec<glob::Pattern>,
    excludes: Vec<glob::Pattern>,
    files: HashMap<(u64, u64), Watched>,
    first_scan: bool,
    /// The file the next poll starts reading at (round robin).
    cursor: (u64, u64),
    /// Files closed while idle: where reading stopped, to resume there when they grow.
    idle: HashMap<(u64, u64), Idle>,
    /// Files recently found truncated, with what had been read of them: a new file
    /// that is a copy (copytruncate) starts after that.
    truncated: Vec<(Instant, Origin)>,
    /// New files waiting to be opened while they may be a copy still being written:
    /// when first seen, and their size at the last scan.
    settling: HashMap<(u64, u64), (Instant, u64)>,
    /// When the globs were last scanned.
    last_scan: Option<Instant>,
    /// Scans of the globs so far.
    scans: u64,
}

/// A file closed for inactivity.
struct Idle {
    /// Where change notifications about it come from, as for open files.
    event_paths: [PathBuf; 2],
    fingerprint: Fingerprint,
    /// What was read of it, to recognise a copy.
    origin: Option<Origin>,
    offset: u64,
    modified: Option<std::time::SystemTime>,
    /// Found by the last scan (entries no scan finds are forgotten).
    seen: bool,
}

impl Tailer {
    /// A tailer; fails on a malformed glob, naming it.
    pub fn new(cfg: TailerConfig) -> crate::Result<Tailer> {
        fn bad(key: &'static str, p: &str) -> impl FnOnce(glob::PatternError) -> crate::Error {
            let pattern = p.to_string();
            move |e| crate::Error::Pattern {
                key,
                pattern,
                reason: e.to_string(),
            }
        }
        // Absolute, to match the paths that change notifications name.
        let includes = cfg
            .include
            .iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(bad("include", p))?;
                glob::Pattern::new(&crate::watch::absolute(Path::new(p)).to_string_lossy())
                    .map_err(bad("include", p))
            })
            .collect::<crate::Result<_>>()?;
        let excludes = cfg
            .exclude
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(bad("exclude", p)))
            .collect::<crate::Result<_>>()?;
        Ok(Tailer {
            cfg,
            includes,
            excludes,
            files: HashMap::new(),
            first_scan: true,
            cursor: (0, 0),
            idle: HashMap::new(),
            truncated: Vec::new(),
            settling: HashMap::new(),
            last_scan: None,
            scans: 0,
        })
    }

    /// How many times the globs were scanned (directories listed) so far.
    pub fn scans(&self) -> u64 {
        self.scans
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
        self.poll_scoped(checkpoints, &Scope::everything())
    }

    /// One round: scans the globs if `scope` asks (or new files are settling), then
    /// reads up to `read_quantum_bytes` from each file in scope — the files it names,
    /// or all — and from the files that need it whatever happened: those with unread
    /// data left by the last round, a partial line past its timeout, and files the
    /// globs no longer match. Lines come in file order per file.
    pub fn poll_scoped(&mut self, checkpoints: &Checkpoints, scope: &Scope) -> Vec<Line> {
        let now = Instant::now();
        let mut scan = scope.scan
            || self.last_scan.is_none()
            || self.settle_scan_due(now)
            || scope.changed.iter().any(|p| self.wants_scan(p));
        let timeout = self.cfg.partial_line_timeout;
        let mut keys: Vec<(u64, u64)> = self
            .files
            .iter()
            .filter(|(_, w)| {
                scope.all
                    || !w.matched
                    || w.read_offset < w.size
                    || w.shadow_of.is_some()
                    || (!w.pending.is_empty() && now.duration_since(w.pending_since) >= timeout)
                    || w.event_paths.iter().any(|p| scope.changed.contains(p))
            })
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        // Truncations first: a copy the scan finds is then matched against what was
        // read before the truncation, not against the new content.
        for key in &keys {
            let Some(w) = self.files.get_mut(key) else {
                continue;
            };
            match check_truncated(w, now, &mut self.truncated) {
                // A file that was truncated may be the original of a copy in the
                // directory: look for it now.
                Ok(true) => scan = true,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %w.path.display(), error = %e, "checking a log file failed");
                }
            }
        }
        // Then files opened empty that got data: are they copies of others read so far?
        self.check_fresh(checkpoints, &keys);
        if scan {
            self.scan(checkpoints, now);
            // The scan opened files: they are read in this round.
            for k in self.files.keys() {
                if keys.binary_search(k).is_err() {
                    keys.push(*k);
                }
            }
            keys.sort_unstable();
            keys.dedup();
        }
        let mut out = Vec::new();
        // Round robin from where the last poll stopped, until the byte budget is spent:
        // fair across files, and memory stays bounded however many files are busy.
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
            if w.shadow_of.is_some() {
                continue;
            }
            let before = out.len();
            if let Err(e) = read_file(w, cfg, now, &mut out) {
                // Tried again at the next event or scan, not at once.
                w.size = w.read_offset;
                tracing::warn!(path = %w.path.display(), error = %e, "reading log file failed");
            }
            bytes += out[before..].iter().map(|l| l.bytes.len()).sum::<usize>();
        }
        // Copies follow their originals, once these were read.
        for key in keys {
            if self.files.get(&key).is_some_and(|w| w.shadow_of.is_some()) && self.follow(key) {
                let cfg = &self.cfg;
                if let Some(w) = self.files.get_mut(&key)
                    && let Err(e) = read_file(w, cfg, now, &mut out)
                {
                    tracing::warn!(path = %w.path.display(), error = %e, "reading log file failed");
                }
            }
        }
        // Close files that left the globs and stopped growing: fully read. Close idle
        // files too, remembering where they stopped.
        let (rotate_wait, close_idle) = (self.cfg.rotate_wait, self.cfg.close_idle);
        let idle = &mut self.idle;
        self.files.retain(|key, w| {
            let quiet = now.duration_since(w.last_growth);
            let gone = !w.matched;
            if gone && quiet >= rotate_wait && w.pending.is_empty() {
                return false;
            }
            // (A copy following its original stays open: its position is the original's.)
            let done = w.pending.is_empty() && w.read_offset == w.size && w.shadow_of.is_none();
            if !gone && !close_idle.is_zero() && quiet >= close_idle && done {
                idle.insert(
                    *key,
                    Idle {
                        event_paths: w.event_paths.clone(),
                        fingerprint: w.fingerprint,
                        origin: w.origin(),
                        offset: w.read_offset,
                        modified: w.file.metadata().and_then(|m| m.modified()).ok(),
                        seen: true,
                    },
                );
                return false;
            }
            true
        });
        self.truncated
            .retain(|(at, _)| now.duration_since(*at) < ORIGIN_MEMORY);
        let excess = self.truncated.len().saturating_sub(MAX_ORIGINS);
        self.truncated.drain(..excess);
        self.first_scan = false;
        out
    }

    /// True when a changed path that is no open file's calls for a scan: a glob matches
    /// it (a new file, or an idle one that grew), or an idle file lives there. (A file
    /// the globs no longer match keeps its old path, which may name a new file by now.)
    fn wants_scan(&self, path: &Path) -> bool {
        if self
            .files
            .values()
            .any(|w| w.matched && w.event_paths.iter().any(|p| p == path))
        {
            return false;
        }
        self.idle
            .values()
            .any(|i| i.event_paths.iter().any(|p| p == path))
            || (self.includes.iter().any(|g| g.matches_path(path))
                && !self.excludes.iter().any(|e| e.matches_path(path)))
    }

    fn settle_scan_due(&self, now: Instant) -> bool {
        !self.settling.is_empty()
            && self
                .last_scan
                .is_none_or(|at| now.duration_since(at) >= SETTLE_SCAN)
    }

    /// When the next round must run even if nothing is reported: the earliest of a
    /// partial line's timeout, a rotated-away file's next look or closing, an idle
    /// file's closing and a settling file's next scan; now if files have unread data;
    /// `None` if nothing is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut due: Option<Instant> = None;
        let mut at = |t: Instant| due = Some(due.map_or(t, |d| d.min(t)));
        if !self.settling.is_empty() {
            at(self.last_scan.map_or(now, |s| s + SETTLE_SCAN));
        }
        for w in self.files.values() {
            if w.read_offset < w.size {
                at(now);
            }
            if !w.pending.is_empty() && w.shadow_of.is_none() {
                at(w.pending_since + self.cfg.partial_line_timeout);
            }
            if !w.matched {
                at((now + GONE_POLL).min(w.last_growth + self.cfg.rotate_wait));
            } else if !self.cfg.close_idle.is_zero() && w.shadow_of.is_none() {
                at(w.last_growth + self.cfg.close_idle);
            }
            if let Some((origin, _)) = w.shadow_of
                && !self.files.contains_key(&origin)
            {
                // The original was closed: the copy stands on its own from now on.
                at(now);
            }
        }
        due
    }

    /// Each open and idle file's path and where it really lives (symlinks resolved),
    /// for watching the directories of symlinks' targets.
    pub fn locations(&self) -> impl Iterator<Item = (&Path, &Path)> {
        let open = self.files.values().map(|w| &w.event_paths);
        let idle = self.idle.values().map(|i| &i.event_paths);
        open.chain(idle).map(|[a, r]| (a.as_path(), r.as_path()))
    }

    /// Files whose read position moved past bytes without returning them as lines
    /// (the part of a copy that was read from its original), since the last call: their
    /// key, fingerprint, position and path, to checkpoint like delivered lines.
    pub fn take_skips(&mut self) -> Vec<Skip> {
        self.files
            .iter_mut()
            .filter(|(_, w)| w.skipped && w.pending.is_empty())
            .map(|(k, w)| {
                w.skipped = false;
                Skip {
                    file: *k,
                    fingerprint: w.fingerprint,
                    offset: w.read_offset,
                    path: w.path_text.clone(),
                }
            })
            .collect()
    }

    /// The checksum of the bytes of an open file that end at `offset`, for its
    /// checkpoint.
    pub fn tail_sum(&self, file: (u64, u64), offset: u64) -> Option<TailSum> {
        tail_sum(&self.files.get(&file)?.file, offset)
    }

    fn scan(&mut self, checkpoints: &Checkpoints, now: Instant) {
        self.last_scan = Some(now);
        self.scans += 1;
        for i in self.idle.values_mut() {
            i.seen = false;
        }
        for w in self.files.values_mut() {
            w.matched = false;
        }
        let include = self.cfg.include.clone();
        for pattern in &include {
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
                    w.matched = true;
                    if w.path != path {
                        w.path_text = path.display().to_string().into();
                        w.event_paths = event_paths(&path);
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
                let mut resume = None;
                if let Some(i) = self.idle.get_mut(&key) {
                    i.seen = true;
                    if meta.len() == i.offset && meta.modified().ok() == i.modified {
                        continue; // still idle
                    }
                    // (Nothing was read of an empty file: it has nothing to resume.)
                    let same = i.offset > 0
                        && File::open(&path)
                            .is_ok_and(|mut f| i.fingerprint.matches(&mut f).unwrap_or(false));
                    let closed = self.idle.remove(&key);
                    if same {
                        resume = closed;
                    } else if let Some(o) = closed.and_then(|i| i.origin) {
                        // Truncated while closed, or the inode now holds another file: a
                        // copy of what was read may show up, and this may be one.
                        self.truncated.push((now, o));
                    }
                }
                if resume.is_none()
                    && !(self.first_scan && self.cfg.read_from == ReadFrom::End)
                    && self.is_settling(key, &path, meta.len(), checkpoints, now)
                {
                    // (Files found at start-up with `read_from: end` start at their end
                    // and must be opened now to know where that is.)
                    continue;
                }
                if let Some(w) = self.open(&path, meta.len(), checkpoints, resume, now) {
                    self.files.insert(key, w);
                }
            }
        }
        self.idle.retain(|_, i| i.seen);
        self.settling
            .retain(|_, (since, _)| now.duration_since(*since) < COPY_SETTLE * 2);
    }

    fn open(
        &self,
        path: &Path,
        len: u64,
        checkpoints: &Checkpoints,
        idle: Option<Idle>,
        now: Instant,
    ) -> Option<Watched> {
        let mut file = File::open(path).ok()?;
        let fingerprint = Fingerprint::of(&mut file).ok()?;
        // Where reading stopped before an idle close is ahead of the checkpoint (which
        // waits for acknowledgements); it wins when the file is still the same.
        // (An empty file's fingerprint matches any file: nothing to resume there.)
        let resume = idle
            .filter(|i| i.offset > 0 && i.fingerprint.matches(&mut file).unwrap_or(false))
            .map(|i| i.offset)
            .or_else(|| {
                checkpoints
                    .get(fingerprint.dev, fingerprint.ino)
                    .filter(|p| p.fingerprint.matches(&mut file).unwrap_or(false))
                    .map(|p| p.offset)
            });
        let head = head_bytes(&file);
        let key = (fingerprint.dev, fingerprint.ino);
        let mut copy = CopyStart::default();
        let read_offset = match resume {
            // A checkpoint past the end means the file was truncated since.
            Some(off) if off <= len => off,
            Some(_) => 0,
            None if self.first_scan && self.cfg.read_from == ReadFrom::End => len,
            None => {
                copy = self.copy_start(key, &file, &head, len, checkpoints, path);
                copy.offset
            }
        };
        // An empty new file may yet be filled with a copy: look again at its first data.
        let fresh = resume.is_none() && len == 0 && read_offset == 0;
        Some(Watched {
            fingerprint,
            file,
            event_paths: event_paths(path),
            path: path.to_path_buf(),
            path_text: path.display().to_string().into(),
            read_offset,
            pending: Vec::new(),
            skipping: false,
            pending_since: now,
            matched: true,
            last_growth: now,
            size: len,
            tail: copy.tail,
            head,
            generation: next_incarnation(),
            shadow_sync: copy.sync,
            shadow_of: copy.shadow_of,
            fresh,
            skipped: copy.offset > 0,
        })
    }
}
