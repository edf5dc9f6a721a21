//! The notification log: for each (group, receiver), which alerts the last successful
//! notification reported firing and resolved, and when. It decides whether a group needs
//! a notification (Alertmanager's dedup stage) and is kept in a JSON file rewritten
//! atomically after every delivery, so a restart neither loses nor repeats one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::write_atomic;

/// Entries older than this are forgotten (Alertmanager's default data retention).
const RETENTION_MS: i64 = 5 * 86_400_000;

/// What the last notification of a group said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Fingerprints reported firing.
    pub firing: BTreeSet<u64>,
    /// Fingerprints reported resolved.
    pub resolved: BTreeSet<u64>,
    /// When it was delivered, ms.
    pub sent_at_ms: i64,
}

/// The log.
pub struct NotificationLog {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl NotificationLog {
    /// Loads the log at `path` (empty when the file does not exist).
    pub fn open(path: PathBuf) -> std::io::Result<NotificationLog> {
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(NotificationLog { path, entries })
    }

    fn key(group_key: &str, receiver: &str) -> String {
        format!("{receiver}\u{0}{group_key}")
    }

    /// Whether a group whose alerts are now as in `now` (`sent_at_ms` being the current
    /// time) needs a notification (Alertmanager's `DedupStage.needsUpdate`).
    pub fn needs_update(
        &self,
        group_key: &str,
        receiver: &str,
        now: &Entry,
        send_resolved: bool,
        repeat_interval_ms: i64,
    ) -> bool {
        let (firing, resolved, now_ms) = (&now.firing, &now.resolved, now.sent_at_ms);
        let Some(e) = self.entries.get(&Self::key(group_key, receiver)) else {
            return !firing.is_empty();
        };
        if !firing.is_subset(&e.firing) {
            return true;
        }
        if firing.is_empty() {
            // Everything resolved: notify (so the log forgets the firing alerts), unless
            // the receiver never heard of them.
            return !e.firing.is_empty();
        }
        if send_resolved && !resolved.is_subset(&e.resolved) {
            return true;
        }
        now_ms - e.sent_at_ms >= repeat_interval_ms
    }

    /// Records a delivered notification and saves the log.
    pub fn record(&mut self, group_key: &str, receiver: &str, entry: Entry) -> std::io::Result<()> {
        let now = entry.sent_at_ms;
        self.entries.insert(Self::key(group_key, receiver), entry);
        self.entries
            .retain(|_, e| now - e.sent_at_ms < RETENTION_MS);
        let bytes = serde_json::to_vec(&self.entries)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_as_alertmanager() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nlog.json");
        let mut log = NotificationLog::open(path.clone()).unwrap();
        let g = "{}:{alertname=\"A\"}";
        let hour = 3_600_000;
        let needs = |log: &NotificationLog,
                     recv: &str,
                     firing: &[u64],
                     resolved: &[u64],
                     send_resolved: bool,
                     now: i64| {
            let e = Entry {
                firing: set(firing),
                resolved: set(resolved),
                sent_at_ms: now,
            };
            log.needs_update(g, recv, &e, send_resolved, hour)
        };
        assert!(needs(&log, "r", &[1], &[], true, 0));
        assert!(!needs(&log, "r", &[], &[1], true, 0));
        log.record(
            g,
            "r",
            Entry {
                firing: set(&[1]),
                resolved: set(&[]),
                sent_at_ms: 0,
            },
        )
        .unwrap();
        // Same alerts, within the repeat interval: nothing.
        assert!(!needs(&log, "r", &[1], &[], true, 1000));
        // A new firing alert.
        assert!(needs(&log, "r", &[1, 2], &[], true, 1000));
        // One of two resolved.
        assert!(needs(&log, "r", &[], &[1], false, 1000));
        // Repeat interval over.
        assert!(needs(&log, "r", &[1], &[], true, hour));

        // The log survives a restart.
        let log = NotificationLog::open(path).unwrap();
        assert!(!needs(&log, "r", &[1], &[], true, 1000));
        assert!(needs(&log, "other", &[1], &[], true, 1000));
    }
}
