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
    /// The tenant whose members made it, see it and may end it; it mutes only that
    /// tenant's alerts. Empty in silences stored before they had tenants: those are
    /// `alerting.tenant`'s.
    #[serde(default)]
    pub tenant: String,
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

    fn mutes(&self, tenant: &str, labels: &Labels, now_ms: i64) -> bool {
        self.tenant == tenant
            && self.state(now_ms) == "active"
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
    /// `alerting.tenant`: the tenant of silences stored without one.
    primary_tenant: String,
    items: Mutex<Vec<Silence>>,
    /// One change at a time (a change rewrites the file, or reads before it writes).
    writing: tokio::sync::Mutex<()>,
}

const FILE: &str = "silences.json";

impl Silences {
    /// Loads the silences kept in `store` (none when there are none yet); those stored
    /// without a tenant are `primary_tenant`'s.
    pub async fn open(store: StateStore, primary_tenant: &str) -> Result<Silences, SilenceError> {
        let items = load(&store, primary_tenant).await?;
        Ok(Silences {
            store,
            primary_tenant: primary_tenant.to_string(),
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
            let items = load(&self.store, &self.primary_tenant).await?;
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

    /// Creates (or, with an ID, replaces) a silence of `tenant`; returns its ID. Another
    /// tenant's silence cannot be replaced: for this tenant it does not exist.
    pub async fn upsert(
        &self,
        tenant: &str,
        req: SilenceRequest,
        now_ms: i64,
    ) -> Result<String, SilenceError> {
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
                        if !items.iter().any(|s| &s.id == id && s.tenant == tenant) {
                            return Err(SilenceError::NotFound(id.clone()));
                        }
                        id.clone()
                    }
                    _ => new_id(now_ms),
                };
                items.retain(|s| s.id != id);
                let s = Silence {
                    id,
                    tenant: tenant.to_string(),
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

    /// Ends a silence of `tenant` now.
    pub async fn expire(&self, tenant: &str, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        self.change(now_ms, |items| {
            let s = items
                .iter_mut()
                .find(|s| s.id == id && s.tenant == tenant)
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

    /// Every silence of `tenant` (expired ones within retention), newest first, as this
    /// process last read them (see [`Silences::refresh`]).
    pub fn list(&self, tenant: &str) -> Vec<Silence> {
        let mut v: Vec<Silence> = self
            .lock()
            .iter()
            .filter(|s| s.tenant == tenant)
            .cloned()
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.updated_at_ms));
        v
    }

    /// IDs of the active silences that mute an alert of `tenant` with these labels.
    pub fn muting(&self, tenant: &str, labels: &Labels, now_ms: i64) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|s| s.mutes(tenant, labels, now_ms))
            .map(|s| s.id.clone())
            .collect()
    }
}

async fn load(store: &StateStore, primary_tenant: &str) -> Result<Vec<Silence>, SilenceError> {
    let mut items: Vec<Silence> = match store {
        StateStore::Files(dir) => {
            let path = dir.join(FILE);
            match std::fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| SilenceError::Io(format!("{}: {e}", path.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(SilenceError::Io(format!("{}: {e}", path.display()))),
            }?
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
            .collect::<Result<_, _>>()?,
    };
    for s in items.iter_mut().filter(|s| s.tenant.is_empty()) {
        s.tenant = primary_tenant.to_string();
    }
    Ok(items)
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
        let s = Silences::open(store.clone(), "default").await.unwrap();
        let now = 1_700_000_000_000;
        let id = s
            .upsert(
                "default",
                req(vec![m("service", "check.*", true)], "2023-11-14T23:13:20Z"),
                now,
            )
            .await
            .unwrap();
        let labels = Labels::new(vec![("service".into(), "checkout".into())]);
        assert_eq!(s.muting("default", &labels, now + 1), vec![id.clone()]);
        let other = Labels::new(vec![("service".into(), "feed".into())]);
        assert!(s.muting("default", &other, now).is_empty());

        let reopened = Silences::open(store, "default").await.unwrap();
        assert_eq!(reopened.muting("default", &labels, now + 1).len(), 1);
        reopened.expire("default", &id, now + 10).await.unwrap();
        assert!(reopened.muting("default", &labels, now + 11).is_empty());
        assert_eq!(reopened.list("default")[0].state(now + 11), "expired");
    }

    #[tokio::test]
    async fn a_silence_is_its_tenants_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Files(dir.path().to_path_buf());
        let s = Silences::open(store.clone(), "ops").await.unwrap();
        let now = 1_700_000_000_000;
        let end = "2023-11-14T23:13:20Z";
        let id = s
            .upsert("team-b", req(vec![m("service", "api", false)], end), now)
            .await
            .unwrap();
        let labels = Labels::new(vec![("service".into(), "api".into())]);
        assert_eq!(s.muting("team-b", &labels, now + 1), vec![id.clone()]);
        assert!(s.muting("ops", &labels, now + 1).is_empty());
        assert!(s.list("ops").is_empty());
        assert_eq!(s.list("team-b").len(), 1);
        // Another tenant can neither end nor replace it.
        assert!(matches!(
            s.expire("ops", &id, now + 2).await,
            Err(SilenceError::NotFound(_))
        ));
        let mut replace = req(vec![m("service", "web", false)], end);
        replace.id = Some(id.clone());
        assert!(matches!(
            s.upsert("ops", replace, now + 2).await,
            Err(SilenceError::NotFound(_))
        ));
        assert_eq!(s.muting("team-b", &labels, now + 3), vec![id.clone()]);

        // Silences stored before they had tenants are the primary tenant's.
        let old = r#"[{"id":"x","matchers":[{"name":"a","value":"b","isRegex":false,"isEqual":true}],
            "starts_at_ms":0,"ends_at_ms":1800000000000,"created_by":"","comment":"","updated_at_ms":0}]"#;
        std::fs::write(dir.path().join(FILE), old).unwrap();
        let reopened = Silences::open(store, "ops").await.unwrap();
        assert_eq!(reopened.list("ops")[0].id, "x");
        assert!(reopened.list("team-b").is_empty());
    }

    #[tokio::test]
    async fn bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Silences::open(StateStore::Files(dir.path().to_path_buf()), "default")
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
                s.upsert("default", r, now).await,
                Err(SilenceError::Invalid(_))
            ));
        }
        assert!(matches!(
            s.expire("default", "nope", now).await,
            Err(SilenceError::NotFound(_))
        ));
    }
}
