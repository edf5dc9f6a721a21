//! copytruncate and truncation: a new file that is a copy of what was read of another
//! (open, truncated, idle or checkpointed) starts after the copied part; a copy of an
//! open file follows it until it is truncated; a truncated file starts over and is
//! remembered as the origin of a copy that may still show up.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Tailer, Watched, head_bytes, next_incarnation};
use crate::checkpoint::Checkpoints;
use crate::fingerprint::{Fingerprint, TailSum, head_is, tail_sum};

/// How long a truncated file is remembered as the possible origin of a copy.
pub(super) const ORIGIN_MEMORY: Duration = Duration::from_secs(600);
/// At most this many truncated files are remembered.
pub(super) const MAX_ORIGINS: usize = 64;
/// Longest wait for a new file that may be a copy still being written to settle.
pub(super) const COPY_SETTLE: Duration = Duration::from_secs(2);
/// What was read of a file, to recognise a copy of it: same head, same bytes before
/// `offset`.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) key: (u64, u64),
    pub(super) fingerprint: Fingerprint,
    /// The first bytes themselves (not kept in checkpoints), to recognise a copy too
    /// short for the checksum.
    pub(super) head: Option<std::sync::Arc<[u8]>>,
    /// End of the last complete line read.
    pub(super) offset: u64,
    pub(super) tail: TailSum,
}

impl Watched {
    pub(super) fn origin(&self) -> Option<Origin> {
        Some(Origin {
            key: (self.fingerprint.dev, self.fingerprint.ino),
            fingerprint: self.fingerprint,
            head: Some(self.head.clone()),
            offset: self.boundary(),
            tail: self.tail?,
        })
    }
}

/// Where a new file starts, and the original it follows if it is a copy of an open one.
#[derive(Default)]
pub(super) struct CopyStart {
    pub(super) offset: u64,
    pub(super) tail: Option<TailSum>,
    pub(super) shadow_of: Option<((u64, u64), u64)>,
    pub(super) sync: Option<(u64, Option<TailSum>)>,
}

/// Notices a file truncated in place (copytruncate, `> file`), also when new writes
/// already grew it past the old offset (the head no longer matches), and starts it over
/// from the beginning, remembering what was read of it. Returns whether it was.
pub(super) fn check_truncated(
    w: &mut Watched,
    now: Instant,
    truncated: &mut Vec<(Instant, Origin)>,
) -> std::io::Result<bool> {
    let len = w.file.metadata()?.len();
    w.size = len;
    let truncated_now = len < w.read_offset || !w.fingerprint.matches(&mut w.file)?;
    if truncated_now {
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
    Ok(truncated_now)
}

/// How much of `copy` (of length `len`) is a copy of what was read of `origin` (up to
/// `boundary`, whose last bytes had the checksum `tail` when read): the end of that
/// part, or `None` if `copy` is not a copy of it. The stored checksum decides when the
/// copy reaches the boundary (the original may be truncated already); a shorter copy,
/// still being written, is compared with the original's bytes.
pub(super) fn copied_part(
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

impl Tailer {
    /// Moves a copy's read position along with its original's. Returns true once the
    /// copy stands on its own (the original was truncated or is gone, or the copy turned
    /// out not to be one) and is to be read.
    pub(super) fn follow(&mut self, key: (u64, u64)) -> bool {
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

    /// If `file` (new, no checkpoint of its own) is a copy of a file read before — an
    /// open one, one found truncated, or one with a checkpoint — where its copied part
    /// that was already read ends.
    pub(super) fn copied_upto(
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

    /// True while a new file should wait: it may be a copy (copytruncate) still being
    /// written — too short for its head to be compared, or its head matches a file read
    /// before but it is not yet as long as what was read — and it grew since the last
    /// scan. Opening it half-copied would read the copied part again; the wait ends
    /// when it stops growing, and after [`COPY_SETTLE`] in any case.
    pub(super) fn is_settling(
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

    pub(super) fn origins<'a>(
        &'a self,
        checkpoints: &'a Checkpoints,
    ) -> impl Iterator<Item = Origin> + 'a {
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
    pub(super) fn partial_copy(&self, file: &File, len: u64, checkpoints: &Checkpoints) -> bool {
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

    /// Where a file with no position of its own starts: after the part that is a copy
    /// of what was read of another file (copytruncate), following that file while it is
    /// open and untruncated; at 0 if it is no copy.
    pub(super) fn copy_start(
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

    /// Files of `keys` opened empty that now have data: decide whether they are copies.
    pub(super) fn check_fresh(&mut self, checkpoints: &Checkpoints, keys: &[(u64, u64)]) {
        let fresh: Vec<(u64, u64)> = keys
            .iter()
            .filter(|k| self.files.get(k).is_some_and(|w| w.fresh))
            .copied()
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
