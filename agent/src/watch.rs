//! Change notifications for the tailed files (`notify`: inotify on Linux), sorted into
//! the work they call for.
//!
//! The file source sleeps until this tells it something happened: a file's content
//! changed (read that file), or an entry was created, removed or renamed in a watched
//! directory (scan the globs). Events of the agent's own doing — opening a directory to
//! list it, opening a file to check its head — are dropped here: inotify reports them
//! like anyone else's (`IN_OPEN`, `IN_CLOSE_NOWRITE`), and waking on them made every
//! scan cause the next one, a busy loop over the watched directories.
//!
//! Events only say where to look; what changed is found by the tailer itself, so a lost
//! or overflowed event costs latency (until the source's fallback scan), never data.
//!
//! Watched are the directories of the include globs (recursively where the glob has a
//! wildcard above the file name), and the directories that symlinked files really live
//! in (`/var/log/containers/*.log` links into `/var/log/pods/…`, where the container
//! runtime writes: inotify on the link's directory sees none of those writes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

/// Most distinct changed paths remembered between two rounds; past it the round reads
/// every open file instead (memory stays bounded however many files change).
const MAX_CHANGED_PATHS: usize = 4096;

/// What happened since the file source last looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Files whose content changed (written, truncated), by the path the event named.
    pub modified: HashSet<PathBuf>,
    /// An entry was created, removed or renamed in a watched directory: scan the globs.
    pub rescan: bool,
    /// Events were lost (queue overflow, watcher error, too many changed paths): scan
    /// and read every open file.
    pub lost: bool,
    /// Someone asked the source to look now (e.g. to stop).
    pub woken: bool,
}

impl Changes {
    /// True when nothing happened.
    pub fn is_empty(&self) -> bool {
        self.modified.is_empty() && !self.rescan && !self.lost && !self.woken
    }

    /// Adds what `other` saw.
    pub fn merge(&mut self, other: Changes) {
        self.rescan |= other.rescan;
        self.lost |= other.lost;
        self.woken |= other.woken;
        self.add_modified(other.modified.into_iter());
    }

    /// Remembers changed paths, up to [`MAX_CHANGED_PATHS`]; past it (or once events
    /// were lost) the next round reads everything instead.
    fn add_modified(&mut self, paths: impl ExactSizeIterator<Item = PathBuf>) {
        if self.modified.len() + paths.len() > MAX_CHANGED_PATHS {
            self.modified.clear();
            self.lost = true;
        } else if !self.lost {
            self.modified.extend(paths);
        }
    }

    /// Takes one notify event (or error) into account.
    fn record(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(e) => e,
            Err(_) => {
                // E.g. the inotify queue overflowed, or a watch could not be added.
                self.lost = true;
                return;
            }
        };
        if event.need_rescan() {
            self.lost = true;
            return;
        }
        match event.kind {
            // Opening, reading and closing change nothing — and most are the agent's own.
            EventKind::Access(_) => {}
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_) | ModifyKind::Any) => {
                self.add_modified(event.paths.into_iter());
            }
            EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(_)) => {
                self.rescan = true;
            }
            EventKind::Modify(ModifyKind::Other) | EventKind::Any | EventKind::Other => {
                self.lost = true;
            }
        }
    }
}

/// Where watcher events meet the waiting file source.
#[derive(Default)]
struct Mailbox {
    changes: Mutex<Changes>,
    arrived: Condvar,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wakes a waiting file source (to stop it, say); cheap to clone.
#[derive(Clone)]
pub struct Waker(Arc<Mailbox>);

impl Waker {
    /// Makes the source's current or next wait return at once.
    pub fn wake(&self) {
        self.0.lock().woken = true;
        self.0.arrived.notify_all();
    }
}

/// A glob's directory: where its matches can appear.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Root {
    dir: PathBuf,
    recursive: bool,
    /// False until `notify` accepted the watch (the directory may not exist yet).
    watched: bool,
}

/// Watches the tailed directories and collects what happened in them.
pub struct Watcher {
    mailbox: Arc<Mailbox>,
    inner: Option<notify::RecommendedWatcher>,
    roots: Vec<Root>,
    /// Directories watched for the targets of symlinked files, beside the roots.
    extra: HashSet<PathBuf>,
}

/// The directory a glob pattern lives under (its part before the first wildcard), and
/// whether files may lie deeper than directly inside it.
pub fn watch_root(pattern: &str) -> (PathBuf, bool) {
    let mut root = PathBuf::new();
    let mut parts = Path::new(pattern).components().peekable();
    while let Some(c) = parts.next() {
        let text = c.as_os_str().to_string_lossy();
        let wild = text.contains(['*', '?', '[']);
        if wild || parts.peek().is_none() {
            // The last component is the file name (or its pattern); a wildcard before
            // it means matches may be in several directories.
            let deeper = wild && parts.peek().is_some();
            return (root, deeper);
        }
        root.push(c);
    }
    (root, false)
}

/// `path` made absolute against the working directory (as `notify` reports paths).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Watcher {
    /// Watches the directories of the include globs. Without notifications (no inotify
    /// instance to be had) the watcher still works as a mailbox for [`Waker`]s, and
    /// [`Watcher::is_live`] says so: the source then polls.
    pub fn new(include: &[String]) -> Watcher {
        let mailbox = Arc::new(Mailbox::default());
        let sink = mailbox.clone();
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let mut changes = sink.lock();
            let before = changes.is_empty();
            changes.record(event);
            // Only a change in state wakes the source: its own reads add nothing.
            if before && !changes.is_empty() {
                drop(changes);
                sink.arrived.notify_all();
            }
        });
        let inner = match inner {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e,
                    "file change notifications unavailable (inotify instances used up? see fs.inotify.max_user_instances); polling the files instead");
                None
            }
        };
        let mut roots: Vec<Root> = Vec::new();
        for pattern in include {
            let (dir, recursive) = watch_root(pattern);
            let dir = absolute(&dir);
            match roots.iter_mut().find(|r| r.dir == dir) {
                Some(r) => r.recursive |= recursive,
                None => roots.push(Root {
                    dir,
                    recursive,
                    watched: false,
                }),
            }
        }
        let mut w = Watcher {
            mailbox,
            inner,
            roots,
            extra: HashSet::new(),
        };
        w.watch_roots();
        w
    }

    /// True when change notifications arrive; false when the source must poll.
    pub fn is_live(&self) -> bool {
        self.inner.is_some()
    }

    /// A handle that wakes the waiting source.
    pub fn waker(&self) -> Waker {
        Waker(self.mailbox.clone())
    }

    /// Starts watching roots that are not watched yet (they did not exist, or were
    /// removed since). Called on every scan: a directory created after the start is
    /// watched from the first scan that finds it.
    pub fn watch_roots(&mut self) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        for r in self.roots.iter_mut().filter(|r| !r.watched) {
            let mode = if r.recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match inner.watch(&r.dir, mode) {
                Ok(()) => r.watched = true,
                Err(e) => {
                    tracing::debug!(dir = %r.dir.display(), error = %e, "log directory not watched yet; the scans look for it");
                }
            }
        }
    }

    /// Marks roots whose watch ended (the directory was removed or renamed) so that
    /// the next [`Watcher::watch_roots`] adds them again.
    fn forget_removed_roots(&mut self) {
        for r in self.roots.iter_mut().filter(|r| r.watched) {
            if !r.dir.is_dir() {
                r.watched = false;
            }
        }
    }

    /// True when `dir` is already watched through a root.
    fn covered(&self, dir: &Path) -> bool {
        self.roots
            .iter()
            .any(|r| r.watched && (dir == r.dir || (r.recursive && dir.starts_with(&r.dir))))
    }

    /// Watches exactly these directories beside the roots (those of symlinked files'
    /// targets); directories a root already covers are left to it.
    pub fn watch_extra(&mut self, dirs: HashSet<PathBuf>) {
        let wanted: HashSet<PathBuf> = dirs.into_iter().filter(|d| !self.covered(d)).collect();
        if wanted == self.extra {
            return;
        }
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        for gone in self.extra.difference(&wanted) {
            let _ = inner.unwatch(gone);
        }
        let mut now = HashSet::new();
        for dir in wanted {
            if self.extra.contains(&dir) || inner.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
                now.insert(dir);
            }
        }
        self.extra = now;
    }

    /// Waits until something happened or `deadline` passed (`None`: no deadline), and
    /// takes what happened.
    pub fn wait(&mut self, deadline: Option<Instant>) -> Changes {
        let mut changes = self.mailbox.lock();
        loop {
            if !changes.is_empty() {
                break;
            }
            match deadline {
                None => {
                    changes = self
                        .mailbox
                        .arrived
                        .wait(changes)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    changes = self
                        .mailbox
                        .arrived
                        .wait_timeout(changes, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        let taken = std::mem::take(&mut *changes);
        drop(changes);
        if taken.rescan || taken.lost {
            self.forget_removed_roots();
        }
        taken
    }

    /// Takes what happened so far, without waiting.
    pub fn take(&mut self) -> Changes {
        self.wait(Some(Instant::now()))
    }
}

/// The directories of these files' targets, for [`Watcher::watch_extra`]: for each
/// file whose real location differs from the path it was found at (a symlink).
pub fn target_dirs<'a>(files: impl Iterator<Item = (&'a Path, &'a Path)>) -> HashSet<PathBuf> {
    files
        .filter(|(found, real)| found != real)
        .filter_map(|(_, real)| real.parent())
        .map(Path::to_path_buf)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, Event, RenameMode};

    #[test]
    fn roots_of_patterns() {
        assert_eq!(
            watch_root("/var/log/containers/*.log"),
            ("/var/log/containers".into(), false)
        );
        assert_eq!(
            watch_root("/var/log/pods/*/*/*.log"),
            ("/var/log/pods".into(), true)
        );
        assert_eq!(watch_root("/srv/app.log"), ("/srv".into(), false));
        assert_eq!(watch_root("/a/**/x.log"), ("/a".into(), true));
    }

    fn ev(kind: EventKind, path: &str) -> notify::Result<Event> {
        Ok(Event::new(kind).add_path(path.into()))
    }

    #[test]
    fn the_agents_own_opens_and_reads_change_nothing() {
        // Regression (busy loop): every scan opened the watched directory and the
        // files, inotify reported IN_OPEN / IN_CLOSE_NOWRITE, and that woke the next scan.
        let mut c = Changes::default();
        c.record(ev(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            "/l",
        ));
        c.record(ev(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            "/l/a.log",
        ));
        c.record(ev(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "/l/a.log",
        ));
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn writes_name_files_and_entries_ask_for_a_scan() {
        let mut c = Changes::default();
        c.record(ev(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "/l/a.log",
        ));
        c.record(ev(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "/l/a.log",
        ));
        assert_eq!(c.modified.len(), 1);
        assert!(!c.rescan && !c.lost);
        c.record(ev(EventKind::Create(CreateKind::File), "/l/b.log"));
        assert!(c.rescan);
        let mut r = Changes::default();
        r.record(ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            "/l/a.log",
        ));
        assert!(r.rescan && !r.lost);
    }

    #[test]
    fn errors_overflows_and_floods_mean_look_at_everything() {
        let mut c = Changes::default();
        c.record(Err(notify::Error::generic("queue overflow")));
        assert!(c.lost);
        let mut o = Changes::default();
        o.record(Ok(
            Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)
        ));
        assert!(o.lost);
        let mut f = Changes::default();
        for i in 0..=MAX_CHANGED_PATHS {
            f.record(ev(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &format!("/l/{i}.log"),
            ));
        }
        assert!(
            f.lost && f.modified.is_empty(),
            "bounded: {}",
            f.modified.len()
        );
    }

    #[test]
    fn a_waker_ends_a_wait_without_a_deadline() {
        let mut w = Watcher::new(&[]);
        let waker = w.waker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            waker.wake();
        });
        let c = w.wait(None);
        assert!(c.woken);
        t.join().unwrap();
        // Taken: the next look finds nothing.
        assert!(w.take().is_empty());
    }

    #[test]
    fn symlinked_files_add_their_targets_directories() {
        let found = [
            (
                Path::new("/var/log/containers/a.log"),
                Path::new("/var/log/pods/x/c/0.log"),
            ),
            (Path::new("/srv/app.log"), Path::new("/srv/app.log")),
        ];
        let dirs = target_dirs(found.iter().map(|(a, b)| (*a, *b)));
        assert_eq!(dirs, HashSet::from([PathBuf::from("/var/log/pods/x/c")]));
    }
}
