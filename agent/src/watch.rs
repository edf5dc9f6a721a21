//! Change notifications for the tailed directories (`notify`: inotify on Linux).
//!
//! Events only wake the file source early; what changed is found by the tailer's own
//! scan, so a lost or overflowed event costs latency (until the next periodic scan),
//! never data.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use notify::{RecursiveMode, Watcher as _};

/// Watches the directories of the include globs; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
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

impl Watcher {
    /// Starts watching; the receiver gets a unit whenever something changed (bursts
    /// coalesce: the channel holds one wake-up).
    pub fn new(include: &[String]) -> notify::Result<(Watcher, Receiver<()>)> {
        let (tx, rx): (SyncSender<()>, Receiver<()>) = std::sync::mpsc::sync_channel(1);
        // An event or an error (e.g. a queue overflow) alike means "look again".
        let mut inner = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
            match tx.try_send(()) {
                // Full: a wake-up is already pending. Disconnected: the source stopped.
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        })?;
        for pattern in include {
            let (root, deeper) = watch_root(pattern);
            let mode = if deeper {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            if let Err(e) = inner.watch(&root, mode) {
                // A directory that does not exist yet is found by the periodic scan.
                tracing::info!(dir = %root.display(), error = %e, "not watching a log directory; relying on the periodic scan");
            }
        }
        Ok((Watcher { _inner: inner }, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
