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
use crate::fingerprint::{Fingerprint, TailSum, head_is, tail_sum};

/// How long a truncated file is remembered as the possible origin of a copy.
const ORIGIN_MEMORY: Duration = Duration::from_secs(600);
/// At most this many truncated files are remembered.
const MAX_ORIGINS: usize = 64;
/// Identities of file contents: a file gets a new one when opened and when truncated,
/// so a copy can tell whether the original it follows is still the same.
static INCARNATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_incarnation() -> u64 {
    INCARNATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Longest wait for a new file that may be a copy still being written to settle.
const COPY_SETTLE: Duration = Duration::from_secs(2);

/// What was read of a file, to recognise a copy of it: same head, same bytes before
/// `offset`.
#[derive(Debug, Clone)]
struct Origin {
    key: (u64, u64),
    fingerprint: Fingerprint,
    /// The first bytes themselves (not kept in checkpoints), to recognise a copy too
    /// short for the checksum.
    head: Option<std::sync::Arc<[u8]>>,
    /// End of the last complete line read.
    offset: u64,
    tail: TailSum,
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

/// The first [`crate::fingerprint::HEAD_BYTES`] bytes of a file (fewer if it is shorter).
fn head_bytes(file: &File) -> std::sync::Arc<[u8]> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; crate::fingerprint::HEAD_BYTES];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    buf.truncate(n);
    buf.into()
}

impl Watched {
    fn origin(&self) -> Option<Origin> {
        Some(Origin {
            key: (self.fingerprint.dev, self.fingerprint.ino),
            fingerprint: self.fingerprint,
            head: Some(self.head.clone()),
            offset: self.boundary(),
            tail: self.tail?,
        })
    }
}

/// Tails the files matching the configured globs.
pub struct Tailer {
    cfg: TailerConfig,
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
}

/// A file closed for inactivity.
struct Idle {
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
            idle: HashMap::new(),
            truncated: Vec::new(),
            settling: HashMap::new(),
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
        // Truncations first: a copy the scan finds is then matched against what was
        // read before the truncation, not against the new content.
        for w in self.files.values_mut() {
            if let Err(e) = check_truncated(w, now, &mut self.truncated) {
                tracing::warn!(path = %w.path.display(), error = %e, "checking a log file failed");
            }
        }
        // Then files opened empty that got data: are they copies of others read so far?
        self.check_fresh(checkpoints);
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
            if w.shadow_of.is_some() {
                continue;
            }
            let before = out.len();
            if let Err(e) = read_file(w, cfg, now, &mut out) {
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
            let gone = w.last_seen != now;
            if gone && quiet >= rotate_wait && w.pending.is_empty() {
                return false;
            }
            // (A copy following its original stays open: its position is the original's.)
            let done = w.pending.is_empty() && w.read_offset == w.size && w.shadow_of.is_none();
            if !gone && !close_idle.is_zero() && quiet >= close_idle && done {
                idle.insert(
                    *key,
                    Idle {
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

    /// Moves a copy's read position along with its original's. Returns true once the
    /// copy stands on its own (the original was truncated or is gone, or the copy turned
    /// out not to be one) and is to be read.
    fn follow(&mut self, key: (u64, u64)) -> bool {
        let Some((origin_key, generation)) = self.files.get(&key).and_then(|w| w.shadow_of) else {
            return true;
        };
        let live = self
            .files
            .get(&origin_key)
            .filter(|o| o.generation == generation)
            .map(|o| (o.boundary(), o.tail, o.file.try_clone()));
        let Some(w) = self.files.get_mut(&key) else {
            return false;
        };
        let len = w.file.metadata().map(|m| m.len()).unwrap_or(0);
        w.size = len;
        match live {
            Some((boundary, tail, Ok(origin))) => {
                if let Some(end) = copied_part(&w.file, len, &origin, boundary, tail) {
                    w.skipped |= w.read_offset != end;
                    w.read_offset = end;
                    w.tail = tail_sum(&w.file, end);
                    w.shadow_sync = Some((boundary, tail));
                    return false;
                }
                tracing::info!(path = %w.path.display(), "file is not a copy after all; reading it whole");
                w.read_offset = 0;
            }
            _ => {
                // The original was truncated or closed. What was read of it ends at its
                // last boundary: start there if the copy holds those bytes by now, else
                // where the copy was followed to, if it still holds those.
                let at_boundary = w.shadow_sync.and_then(|(b, t)| {
                    (b <= len && t.is_some() && tail_sum(&w.file, b) == t).then_some(b)
                });
                if let Some(b) = at_boundary {
                    w.skipped |= w.read_offset != b;
                    w.read_offset = b;
                } else if w.read_offset > 0 && tail_sum(&w.file, w.read_offset) != w.tail {
                    w.read_offset = 0;
                }
            }
        }
        w.shadow_of = None;
        w.shadow_sync = None;
        w.tail = None;
        true
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

    /// If `file` (new, no checkpoint of its own) is a copy of a file read before — an
    /// open one, one found truncated, or one with a checkpoint — where its copied part
    /// that was already read ends.
    fn copied_upto(
        &self,
        file: &File,
        fp: &Fingerprint,
        len: u64,
        checkpoints: &Checkpoints,
    ) -> Option<u64> {
        self.origins(checkpoints)
            .filter(|o| {
                o.key != (fp.dev, fp.ino)
                    && o.offset > 0
                    && o.offset <= len
                    && o.fingerprint.head_len > 0
                    && head_is(file, o.fingerprint.head_len, o.fingerprint.head_crc)
                    && tail_sum(file, o.offset) == Some(o.tail)
            })
            .map(|o| o.offset)
            .max()
    }

    fn scan(&mut self, checkpoints: &Checkpoints, now: Instant) {
        for i in self.idle.values_mut() {
            i.seen = false;
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

    /// True while a new file should wait: it may be a copy (copytruncate) still being
    /// written — too short for its head to be compared, or its head matches a file read
    /// before but it is not yet as long as what was read — and it grew since the last
    /// scan. Opening it half-copied would read the copied part again; the wait ends
    /// when it stops growing, and after [`COPY_SETTLE`] in any case.
    fn is_settling(
        &mut self,
        key: (u64, u64),
        path: &Path,
        len: u64,
        checkpoints: &Checkpoints,
        now: Instant,
    ) -> bool {
        // An empty new file has nothing to read yet: waiting costs nothing.
        let suspect =
            len == 0 || File::open(path).is_ok_and(|f| self.partial_copy(&f, len, checkpoints));
        if !suspect {
            self.settling.remove(&key);
            return false;
        }
        let (since, last_len) = self.settling.entry(key).or_insert((now, u64::MAX));
        let growing = *last_len != len;
        *last_len = len;
        let wait = growing && now.duration_since(*since) < COPY_SETTLE;
        if !wait {
            self.settling.remove(&key);
        }
        wait
    }

    fn origins<'a>(&'a self, checkpoints: &'a Checkpoints) -> impl Iterator<Item = Origin> + 'a {
        let open = self.files.values().filter_map(Watched::origin);
        let truncated = self.truncated.iter().map(|(_, o)| o.clone());
        let saved = checkpoints.iter().filter_map(|p| {
            Some(Origin {
                key: (p.fingerprint.dev, p.fingerprint.ino),
                fingerprint: p.fingerprint,
                head: None,
                offset: p.offset,
                tail: p.tail?,
            })
        });
        let idle = self.idle.values().filter_map(|i| i.origin.clone());
        open.chain(truncated).chain(idle).chain(saved)
    }

    /// True when `file` starts like a file read before but is shorter than what was
    /// read of it.
    fn partial_copy(&self, file: &File, len: u64, checkpoints: &Checkpoints) -> bool {
        let mine = head_bytes(file);
        self.origins(checkpoints).any(|o| {
            if len >= o.offset || o.fingerprint.head_len == 0 {
                return false;
            }
            if mine.len() >= o.fingerprint.head_len as usize {
                return head_is(file, o.fingerprint.head_len, o.fingerprint.head_crc);
            }
            // Shorter than the origin's head: compare the bytes it has.
            o.head
                .as_ref()
                .is_some_and(|h| h.len() >= mine.len() && h[..mine.len()] == mine[..])
        })
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
            path: path.to_path_buf(),
            path_text: path.display().to_string().into(),
            read_offset,
            pending: Vec::new(),
            skipping: false,
            pending_since: now,
            last_seen: now,
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

    /// Where a file with no position of its own starts: after the part that is a copy
    /// of what was read of another file (copytruncate), following that file while it is
    /// open and untruncated; at 0 if it is no copy.
    fn copy_start(
        &self,
        key: (u64, u64),
        file: &File,
        head: &[u8],
        len: u64,
        checkpoints: &Checkpoints,
        path: &Path,
    ) -> CopyStart {
        // A copy of an open file: linked to it.
        let open = (!head.is_empty())
            .then(|| {
                self.files.iter().find(|(k, o)| {
                    // Only a file read on its own can be an original: not a copy that
                    // follows one, not an empty file still undecided.
                    if o.shadow_of.is_some() || o.fresh {
                        return false;
                    }
                    // An original read while it was short has grown since, probably.
                    let theirs = if o.head.len() < crate::fingerprint::HEAD_BYTES {
                        head_bytes(&o.file)
                    } else {
                        o.head.clone()
                    };
                    // Either head may be the shorter one (a copy still being written);
                    // `copied_part` then checks the bytes up to what was read.
                    let n = theirs.len().min(head.len());
                    **k != key && n > 0 && theirs[..n] == head[..n]
                })
            })
            .flatten();
        if let Some((k, o)) = open
            && let Some(end) = copied_part(file, len, &o.file, o.boundary(), o.tail)
        {
            tracing::info!(path = %path.display(), original = %o.path.display(),
                "new file is a copy of an open one (copytruncate?): following the original until it is truncated");
            return CopyStart {
                offset: end,
                tail: tail_sum(file, end),
                shadow_of: Some((*k, o.generation)),
                sync: Some((o.boundary(), o.tail)),
            };
        }
        // A copy of a file truncated, closed or read before a restart.
        let fp = Fingerprint {
            dev: key.0,
            ino: key.1,
            head_len: 0,
            head_crc: 0,
        };
        match self.copied_upto(file, &fp, len, checkpoints) {
            Some(off) => {
                tracing::info!(path = %path.display(), offset = off,
                    "new file is a copy of one already read (copytruncate); reading after the copied part");
                CopyStart {
                    offset: off,
                    ..CopyStart::default()
                }
            }
            None => CopyStart::default(),
        }
    }

    /// Files opened empty that now have data: decide whether they are copies.
    fn check_fresh(&mut self, checkpoints: &Checkpoints) {
        let fresh: Vec<(u64, u64)> = self
            .files
            .iter()
            .filter(|(_, w)| w.fresh)
            .map(|(k, _)| *k)
            .collect();
        for key in fresh {
            let Some(w) = self.files.get(&key) else {
                continue;
            };
            let len = w.file.metadata().map(|m| m.len()).unwrap_or(0);
            if len == 0 {
                continue;
            }
            let head = head_bytes(&w.file);
            let copy = match w.file.try_clone() {
                Ok(f) => self.copy_start(key, &f, &head, len, checkpoints, &w.path.clone()),
                Err(_) => CopyStart::default(),
            };
            if let Some(w) = self.files.get_mut(&key) {
                w.fresh = false;
                w.read_offset = copy.offset;
                w.skipped = copy.offset > 0;
                w.tail = copy.tail;
                w.shadow_of = copy.shadow_of;
                w.shadow_sync = copy.sync;
            }
        }
    }
}

/// Where a new file starts, and the original it follows if it is a copy of an open one.
#[derive(Default)]
struct CopyStart {
    offset: u64,
    tail: Option<TailSum>,
    shadow_of: Option<((u64, u64), u64)>,
    sync: Option<(u64, Option<TailSum>)>,
}

/// Notices a file truncated in place (copytruncate, `> file`), also when new writes
/// already grew it past the old offset (the head no longer matches), and starts it over
/// from the beginning, remembering what was read of it. Returns the file's length.
fn check_truncated(
    w: &mut Watched,
    now: Instant,
    truncated: &mut Vec<(Instant, Origin)>,
) -> std::io::Result<u64> {
    let len = w.file.metadata()?.len();
    w.size = len;
    if len < w.read_offset || !w.fingerprint.matches(&mut w.file)? {
        if let Some(o) = w.origin() {
            truncated.push((now, o));
        }
        w.generation = next_incarnation();
        w.tail = None;
        w.head = head_bytes(&w.file);
        w.read_offset = 0;
        w.pending.clear();
        w.skipping = false;
        w.fingerprint = Fingerprint::of(&mut w.file)?;
    }
    Ok(len)
}

/// How much of `copy` (of length `len`) is a copy of what was read of `origin` (up to
/// `boundary`, whose last bytes had the checksum `tail` when read): the end of that
/// part, or `None` if `copy` is not a copy of it. The stored checksum decides when the
/// copy reaches the boundary (the original may be truncated already); a shorter copy,
/// still being written, is compared with the original's bytes.
fn copied_part(
    copy: &File,
    len: u64,
    origin: &File,
    boundary: u64,
    tail: Option<TailSum>,
) -> Option<u64> {
    let end = len.min(boundary);
    let same = if end == 0 {
        true
    } else if end == boundary && tail.is_some() {
        tail_sum(copy, end) == tail
    } else {
        let here = tail_sum(copy, end);
        here.is_some() && here == tail_sum(origin, end)
    };
    same.then_some(end)
}

fn read_file(
    w: &mut Watched,
    cfg: &TailerConfig,
    now: Instant,
    out: &mut Vec<Line>,
) -> std::io::Result<()> {
    // Truncation and the size were checked at the start of this poll.
    let len = w.size;
    if len > w.read_offset {
        w.last_growth = now;
        w.file.seek(SeekFrom::Start(w.read_offset))?;
        let want = ((len - w.read_offset) as usize).min(cfg.read_quantum_bytes);
        let mut chunk = vec![0u8; want];
        let n = w.file.read(&mut chunk)?;
        chunk.truncate(n);
        split_lines(w, &chunk, cfg, now, out);
        w.tail = tail_sum(&w.file, w.read_offset - w.pending.len() as u64);
        // While the file is short, its fingerprint covers fewer bytes: extend it.
        if (w.fingerprint.head_len as usize) < crate::fingerprint::HEAD_BYTES {
            w.fingerprint = Fingerprint::of(&mut w.file)?;
            w.head = head_bytes(&w.file);
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
