//! Silences: label matchers with a time window; a matching alert is not notified while
//! the silence is active. The API and JSON shapes are Alertmanager's v2
//! (`POST /api/v2/silences`, `GET /api/v2/silences`, `DELETE /api/v2/silence/{id}`), so
//! `amtool` and Grafana can manage them. Silences are kept in a JSON file rewritten
//! atomically on every change, or in the metastore that every process shares (any
//! query server's API adds them; the alerting leader reads them before it notifies).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use triad_metastore::{AlertKind, AlertRecord};
use triad_model::metric::{Labels, MatchOp, Matcher};

use super::{StateStore, write_atomic};

/// Expired silences are kept (and listed) this long, as Alertmanager's retention.
const EXPIRED_RETENTION_MS: i64 = 5 * 86_400_000;

/// One matcher of a silence, in Alertmanager's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value or regular expression.
    pub value: String,
    /// Whether `value` is a regular expression.
    #[serde(default)]
    pub is_regex: bool,
    /// Whether the matcher is positive (`=`/`=~`) rather than negated.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn matcher(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(op, self.name.clone(), self.value.clone()).map_err(|e| e.to_string())
    }
}

/// A silence as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    /// Identifier.
    pub id: String,
    /// All must match an alert's labels.
    pub matchers: Vec<SilenceMatcher>,
    /// Start, ms.
    pub starts_at_ms: i64,
    /// End, ms.
    pub ends_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change, ms.
    pub updated_at_ms: i64,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if now_ms >= self.ends_at_ms {
            "expired"
        } else if now_ms < self.starts_at_ms {
            "pending"
        } else {
            "active"
        }
    }

    fn mutes(&self, labels: &Labels, now_ms: i64) -> bool {
        self.state(now_ms) == "active"
            && self
                .matchers
                .iter()
                .all(|m| m.matcher().is_ok_and(|m| m.matches_labels(labels)))
    }
}

/// What a client sends to create or update a silence.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceRequest {
    /// Set to replace an existing silence.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers (at least one).
    pub matchers: Vec<SilenceMatcher>,
    /// RFC 3339 start; now when absent.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339 end.
    pub ends_at: String,
    /// Who creates it.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// Why a silence request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// The request is invalid; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// No silence with that ID.
    #[error("silence {0} not found")]
    NotFound(String),
    /// The file could not be written.
    #[error("cannot store silences: {0}")]
    Io(String),
}

/// The silences, shared between the API and the notifier: kept in memory for the
/// notifier's checks, written through to their [`StateStore`], and re-read from the
/// metastore (where other processes add them) by [`Silences::refresh`].
pub struct Silences {
    store: StateStore,
    items: Mutex<Vec<Silence>>,
    /// One change at a time (a change rewrites the file, or reads before it writes).
    writing: tokio::sync::Mutex<()>,
}

const FILE: &str = "silences.json";

impl Silences {
    /// Loads the silences kept in `store` (none when there are none yet).
    pub async fn open(store: StateStore) -> Result<Silences, SilenceError> {
        let items = load(&store).await?;
        Ok(Silences {
            store,
            items: Mutex::new(items),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Silence>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the silences from the metastore (other processes' changes); nothing to
    /// do for files, which this process alone writes.
    pub async fn refresh(&self) -> Result<(), SilenceError> {
        if let StateStore::Metastore(_) = &self.store {
            let items = load(&self.store).await?;
            *self.lock() = items;
        }
        Ok(())
    }

    /// Makes `changed` durable (with `all`, the whole set after the change).
    async fn save(
        &self,
        changed: &Silence,
        all: &[Silence],
        now_ms: i64,
    ) -> Result<(), SilenceError> {
        match &self.store {
            StateStore::Files(dir) => {
                let bytes =
                    serde_json::to_vec_pretty(all).map_err(|e| SilenceError::Io(e.to_string()))?;
                let path = dir.join(FILE);
                tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
                    .await
                    .map_err(|e| SilenceError::Io(e.to_string()))?
                    .map_err(|e| SilenceError::Io(e.to_string()))
            }
            StateStore::Metastore(m) => {
                let record = AlertRecord {
                    key: changed.id.clone(),
                    until_ms: changed.ends_at_ms,
                    body: serde_json::to_string(changed)
                        .map_err(|e| SilenceError::Io(e.to_string()))?,
                };
                m.put_alert_record(AlertKind::Silence, &record)
                    .await
                    .map_err(|e| SilenceError::Io(e.to_string()))?;
                m.forget_alert_records(AlertKind::Silence, now_ms - EXPIRED_RETENTION_MS)
                    .await
                    .map_err(|e| SilenceError::Io(e.to_string()))?;
                Ok(())
            }
        }
    }

    /// Applies `change` to the current set (re-read first from the metastore), saves the
    /// silence it returns, then keeps the new set.
    async fn change(
        &self,
        now_ms: i64,
        change: impl FnOnce(&mut Vec<Silence>) -> Result<Silence, SilenceError>,
    ) -> Result<Silence, SilenceError> {
        let _one = self.writing.lock().await;
        self.refresh().await?;
        let mut next = self.lock().clone();
        let changed = change(&mut next)?;
        next.retain(|s| now_ms - s.ends_at_ms < EXPIRED_RETENTION_MS);
        self.save(&changed, &next, now_ms).await?;
        *self.lock() = next;
        Ok(changed)
    }

    /// Creates (or, with an ID, replaces) a silence; returns its ID.
    pub async fn upsert(&self, req: SilenceRequest, now_ms: i64) -> Result<String, SilenceError> {
        if req.matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "a silence needs at least one matcher".into(),
            ));
        }
        for m in &req.matchers {
            if !triad_model::metric::is_label_name(&m.name) {
                return Err(SilenceError::Invalid(format!(
                    "{:?} is not a label name",
                    m.name
                )));
            }
            m.matcher().map_err(SilenceError::Invalid)?;
        }
        if req
            .matchers
            .iter()
            .all(|m| m.matcher().is_ok_and(|m| m.matches_empty()))
        {
            return Err(SilenceError::Invalid(
                "at least one matcher must not match the empty string, or the silence would mute every alert".into(),
            ));
        }
        let time = |s: &str, key: &str| {
            crate::time::parse_time_ns(s)
                .map(|ns| ns / 1_000_000)
                .map_err(|e| SilenceError::Invalid(format!("{key}: {e}")))
        };
        let starts = match &req.starts_at {
            Some(s) if !s.is_empty() => time(s, "startsAt")?.max(now_ms),
            _ => now_ms,
        };
        let ends = time(&req.ends_at, "endsAt")?;
        if ends <= starts {
            return Err(SilenceError::Invalid(
                "endsAt must be after startsAt and in the future".into(),
            ));
        }
        let created = self
            .change(now_ms, |items| {
                let id = match &req.id {
                    Some(id) if !id.is_empty() => {
                        if !items.iter().any(|s| &s.id == id) {
                            return Err(SilenceError::NotFound(id.clone()));
                        }
                        id.clone()
                    }
                    _ => new_id(now_ms),
                };
                items.retain(|s| s.id != id);
                let s = Silence {
                    id,
                    matchers: req.matchers,
                    starts_at_ms: starts,
                    ends_at_ms: ends,
                    created_by: req.created_by,
                    comment: req.comment,
                    updated_at_ms: now_ms,
                };
                items.push(s.clone());
                Ok(s)
            })
            .await?;
        Ok(created.id)
    }

    /// Ends a silence now.
    pub async fn expire(&self, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        self.change(now_ms, |items| {
            let s = items
                .iter_mut()
                .find(|s| s.id == id)
                .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
            if s.state(now_ms) != "expired" {
                s.ends_at_ms = now_ms;
                s.starts_at_ms = s.starts_at_ms.min(now_ms);
                s.updated_at_ms = now_ms;
            }
            Ok(s.clone())
        })
        .await?;
        Ok(())
    }

    /// Every silence (expired ones within retention), newest first, as this process
    /// last read them (see [`Silences::refresh`]).
    pub fn list(&self) -> Vec<Silence> {
        let mut v = self.lock().clone();
        v.sort_by_key(|s| std::cmp::Reverse(s.updated_at_ms));
        v
    }

    /// IDs of the active silences that mute an alert with these labels.
    pub fn muting(&self, labels: &Labels, now_ms: i64) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|s| s.mutes(labels, now_ms))
            .map(|s| s.id.clone())
            .collect()
    }
}

async fn load(store: &StateStore) -> Result<Vec<Silence>, SilenceError> {
    match store {
        StateStore::Files(dir) => {
            let path = dir.join(FILE);
            match std::fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| SilenceError::Io(format!("{}: {e}", path.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(SilenceError::Io(format!("{}: {e}", path.display()))),
            }
        }
        StateStore::Metastore(m) => m
            .alert_records(AlertKind::Silence)
            .await
            .map_err(|e| SilenceError::Io(e.to_string()))?
            .iter()
            .map(|r| {
                serde_json::from_str(&r.body)
                    .map_err(|e| SilenceError::Io(format!("silence {}: {e}", r.key)))
            })
            .collect(),
    }
}

fn new_id(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = triad_model::now_ns() as u64;
    // Format of a UUID, as Alertmanager's IDs; time-ordered and unique in this process.
    let hi = nanos ^ (now_ms as u64).rotate_left(17);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        seq & 0xffff,
        (std::process::id() as u64) << 16 | (seq >> 16 & 0xffff)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(matchers: Vec<SilenceMatcher>, ends: &str) -> SilenceRequest {
        SilenceRequest {
            id: None,
            matchers,
            starts_at: None,
            ends_at: ends.into(),
            created_by: "me".into(),
            comment: "deploy".into(),
        }
    }

    fn m(name: &str, value: &str, is_regex: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal: true,
        }
    }

    #[tokio::test]
    async fn mutes_while_active_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Files(dir.path().to_path_buf());
        let s = Silences::open(store.clone()).await.unwrap();
        let now = 1_700_000_000_000;
        let id = s
            .upsert(
                req(vec![m("service", "check.*", true)], "2023-11-14T23:13:20Z"),
                now,
            )
            .await
            .unwrap();
        let labels = Labels::new(vec![("service".into(), "checkout".into())]);
        assert_eq!(s.muting(&labels, now + 1), vec![id.clone()]);
        let other = Labels::new(vec![("service".into(), "feed".into())]);
        assert!(s.muting(&other, now).is_empty());

        let reopened = Silences::open(store).await.unwrap();
        assert_eq!(reopened.muting(&labels, now + 1).len(), 1);
        reopened.expire(&id, now + 10).await.unwrap();
        assert!(reopened.muting(&labels, now + 11).is_empty());
        assert_eq!(reopened.list()[0].state(now + 11), "expired");
    }

    #[tokio::test]
    async fn bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Silences::open(StateStore::Files(dir.path().to_path_buf()))
            .await
            .unwrap();
        let now = 1_700_000_000_000;
        for r in [
            req(vec![], "2023-11-14T23:13:20Z"),
            req(vec![m("a", ".*", true)], "2023-11-14T23:13:20Z"),
            req(vec![m("a", "(", true)], "2023-11-14T23:13:20Z"),
            req(vec![m("a", "x", false)], "2020-01-01T00:00:00Z"),
            req(vec![m("a", "x", false)], "tomorrow"),
        ] {
            assert!(matches!(
                s.upsert(r, now).await,
                Err(SilenceError::Invalid(_))
            ));
        }
        assert!(matches!(
            s.expire("nope", now).await,
            Err(SilenceError::NotFound(_))
        ));
    }
}
