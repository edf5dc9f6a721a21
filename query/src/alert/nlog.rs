//! The notification log: for each (group, receiver), which alerts the last successful
//! notification reported firing and resolved, and when. It decides whether a group needs
//! a notification (Alertmanager's dedup stage). It is kept in a JSON file rewritten
//! atomically after every delivery, or in the metastore (one record per group and
//! receiver), so neither a restart nor another process taking over alerting loses or
//! repeats one. It also keeps the firing alerts themselves, so that whoever evaluates
//! next can resolve an alert that ended while nobody was evaluating.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use triad_metastore::{AlertKind, AlertRecord};

use super::{StateStore, write_atomic};

/// Entries older than this are forgotten (Alertmanager's default data retention).
const RETENTION_MS: i64 = 5 * 86_400_000;

const FILE: &str = "notifications.json";

/// A firing alert as notified: enough to tell the receiver it resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedAlert {
    /// Its tenant (absent in logs written before alerts had tenants).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Annotations.
    pub annotations: Vec<(String, String)>,
    /// When it started firing, ms.
    pub starts_at_ms: i64,
    /// When its condition started to hold, ms.
    pub active_at_ms: i64,
    /// The rule's expression.
    pub expr: String,
    /// Link to the expression.
    pub generator_url: String,
}

/// What the last notification of a group said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Fingerprints reported firing.
    pub firing: BTreeSet<u64>,
    /// Fingerprints reported resolved.
    pub resolved: BTreeSet<u64>,
    /// When it was delivered, ms.
    pub sent_at_ms: i64,
    /// The alerts reported firing, by fingerprint.
    #[serde(default)]
    pub alerts: BTreeMap<u64, LoggedAlert>,
}

/// A group's entry with whom it was for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    /// The receiver.
    pub receiver: String,
    /// The group's key.
    pub group_key: String,
    /// What was delivered.
    pub entry: Entry,
}

/// The log.
pub struct NotificationLog {
    store: StateStore,
    entries: BTreeMap<String, Logged>,
}

/// The key of a group and receiver: a JSON array, unambiguous and without NUL bytes.
fn key(group_key: &str, receiver: &str) -> String {
    serde_json::json!([receiver, group_key]).to_string()
}

impl NotificationLog {
    /// Loads the log kept in `store` (empty when there is none yet).
    pub async fn open(store: StateStore) -> std::io::Result<NotificationLog> {
        let entries = load(&store).await?;
        Ok(NotificationLog { store, entries })
    }

    /// Re-reads the log from the metastore, where the process that led alerting before
    /// this one wrote it; nothing to do for a file, which this process alone writes.
    pub async fn refresh(&mut self) -> std::io::Result<()> {
        if let StateStore::Metastore(_) = &self.store {
            self.entries = load(&self.store).await?;
        }
        Ok(())
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &Logged> {
        self.entries.values()
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
        let Some(e) = self
            .entries
            .get(&key(group_key, receiver))
            .map(|l| &l.entry)
        else {
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

    /// Records a delivered notification and saves it.
    pub async fn record(
        &mut self,
        group_key: &str,
        receiver: &str,
        entry: Entry,
    ) -> std::io::Result<()> {
        let now = entry.sent_at_ms;
        let logged = Logged {
            receiver: receiver.to_string(),
            group_key: group_key.to_string(),
            entry,
        };
        let k = key(group_key, receiver);
        match &self.store {
            StateStore::Files(dir) => {
                let mut next = self.entries.clone();
                next.insert(k, logged);
                next.retain(|_, l| now - l.entry.sent_at_ms < RETENTION_MS);
                let bytes = serde_json::to_vec(&next.values().collect::<Vec<_>>())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                let path = dir.join(FILE);
                tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
                    .await
                    .map_err(std::io::Error::other)??;
                self.entries = next;
            }
            StateStore::Metastore(m) => {
                let record = AlertRecord {
                    key: k.clone(),
                    until_ms: now,
                    body: serde_json::to_string(&logged)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
                };
                m.put_alert_record(AlertKind::Notification, &record)
                    .await
                    .map_err(std::io::Error::other)?;
                m.forget_alert_records(AlertKind::Notification, now - RETENTION_MS)
                    .await
                    .map_err(std::io::Error::other)?;
                self.entries.insert(k, logged);
                self.entries
                    .retain(|_, l| now - l.entry.sent_at_ms < RETENTION_MS);
            }
        }
        Ok(())
    }
}

async fn load(store: &StateStore) -> std::io::Result<BTreeMap<String, Logged>> {
    let invalid = |e: serde_json::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let list: Vec<Logged> = match store {
        StateStore::Files(dir) => match std::fs::read(dir.join(FILE)) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(list) => list,
                // The earlier format: a map from "receiver\0group" to the entry.
                Err(e) => serde_json::from_slice::<BTreeMap<String, Entry>>(&bytes)
                    .map_err(|_| invalid(e))?
                    .into_iter()
                    .map(|(k, entry)| {
                        let (receiver, group_key) = k.split_once('\0').unwrap_or(("", &k));
                        Logged {
                            receiver: receiver.to_string(),
                            group_key: group_key.to_string(),
                            entry,
                        }
                    })
                    .collect(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        },
        StateStore::Metastore(m) => m
            .alert_records(AlertKind::Notification)
            .await
            .map_err(std::io::Error::other)?
            .iter()
            .map(|r| serde_json::from_str(&r.body).map_err(invalid))
            .collect::<std::io::Result<_>>()?,
    };
    Ok(list
        .into_iter()
        .map(|l| (key(&l.group_key, &l.receiver), l))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[tokio::test]
    async fn dedup_as_alertmanager() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Files(dir.path().to_path_buf());
        let mut log = NotificationLog::open(store.clone()).await.unwrap();
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
                ..Entry::default()
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
                ..Entry::default()
            },
        )
        .await
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
        let log = NotificationLog::open(store).await.unwrap();
        assert!(!needs(&log, "r", &[1], &[], true, 1000));
        assert!(needs(&log, "other", &[1], &[], true, 1000));
    }

    #[tokio::test]
    async fn reads_the_earlier_file_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            br#"{"hook\u0000{}:{alertname=\"A\"}":{"firing":[7],"resolved":[],"sent_at_ms":5}}"#,
        )
        .unwrap();
        let log = NotificationLog::open(StateStore::Files(dir.path().to_path_buf()))
            .await
            .unwrap();
        let all: Vec<&Logged> = log.entries().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].receiver.as_str(), all[0].group_key.as_str()),
            ("hook", "{}:{alertname=\"A\"}")
        );
        assert_eq!(all[0].entry.firing, set(&[7]));
    }
}
