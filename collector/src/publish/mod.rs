//! Object-storage mode, the collector's side: sealed log and trace splits and metric
//! blocks go to object storage and into the metastore (blocks: see [`blocks`]).
//!
//! Every round (each second), for each signal, the sealed splits not published yet,
//! oldest first, each:
//!
//! 1. is packed into a bundle file next to the store (blocking thread);
//! 2. gets a **staged** row in the metastore (ID `node/split`, time range, tenants);
//! 3. is uploaded (create-if-absent: a retry after a crash finds its own object);
//! 4. is **published** together with the WAL position it covers (and, for a trace
//!    split, its operations in the services catalog), in one transaction.
//!
//! A crash anywhere in between leaves the split sealed on local disk and at most a
//! staged row and an object: the next round (or the next start) redoes the steps, each
//! idempotent, so nothing acknowledged is lost and nothing is published twice. Once
//! published, the split's directory records it (`bundle::PUBLISHED_MARKER`, with the
//! time), so a restart knows it — and when its grace period started — even while the
//! metastore is away or after its row was merged and deleted. Until
//! published the split is searched locally; once published, query servers find it in
//! the metastore, and the collector keeps its local copy for
//! `storage.local_grace_secs` (longer than a listing refresh plus the longest query)
//! before deleting it — and only once the metastore has answered for a whole grace
//! period without a break, since query servers cannot list a publication while it is
//! away. Splits are published in order: a failure stops the round, and
//! rounds back off (up to 30 s) while object storage or the metastore is unreachable;
//! ingest goes on meanwhile and the sealed splits wait on local disk.

mod blocks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use triad_metastore::{
    ListQuery, Metastore, MetastoreError, OperationRow, Publish, Signal as Kind, SplitRow,
    SplitState,
};
use triad_splits::log_index::LogStore;
use triad_splits::store::{Signal, Store};
use triad_splits::trace_store::TraceStore;
use triad_storage::Storage;
use triad_tsdb::metric_store::MetricStore;

use crate::metrics::{PublishMetrics, SignalLabel, SignalStage};

/// Pause between rounds when nothing failed.
const ROUND: Duration = Duration::from_secs(1);
/// Longest pause after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Publishes the collector's sealed splits; see the module docs.
pub struct Publisher {
    storage: Storage,
    metastore: Metastore,
    node_id: String,
    scratch: PathBuf,
    logs: Arc<LogStore>,
    traces: Arc<TraceStore>,
    metric_store: Arc<MetricStore>,
    grace: Duration,
    metrics: PublishMetrics,
    backlog: Arc<Backlog>,
    /// The collector's lease: publications carry it (fencing).
    membership: Option<Arc<crate::membership::Membership>>,
}

/// What a round failed at, for the error counter and the log.
struct Failed {
    stage: &'static str,
    split: String,
    error: String,
}

/// Bytes of sealed splits waiting for object storage, and how many are allowed before
/// new writes are refused (backpressure instead of a full disk).
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: AtomicU64,
    limit: AtomicU64,
}

impl Backlog {
    /// Sets the bound (0: none).
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The waiting bytes when they exceed the bound.
    pub fn over(&self) -> Option<u64> {
        let (bytes, limit) = (
            self.bytes.load(Ordering::Relaxed),
            self.limit.load(Ordering::Relaxed),
        );
        (limit > 0 && bytes > limit).then_some(bytes)
    }
}

/// Published local splits of one signal and when they were published (wall clock, ms).
type Seen = HashMap<String, i64>;

fn now_ms() -> i64 {
    triad_model::now_ns() / 1_000_000
}

/// The environment variable naming a crash point, for the crash tests.
pub const CRASH_AT: &str = "TRIAD_CRASH_AT";

/// Test hook: with `TRIAD_CRASH_AT=<point>` in the environment the process aborts at
/// that point of its first publication (`after-stage`, `after-upload`, `after-publish`),
/// as a `kill -9` landing there would. Read once; unset in production.
fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var(CRASH_AT).ok()).as_deref() == Some(point) {
        tracing::error!(
            point,
            "crash point reached: aborting as asked by {CRASH_AT}"
        );
        std::process::abort();
    }
}

impl Publisher {
    /// A publisher of `logs`, `traces` and the blocks of `metric_store` as `node_id`;
    /// bundles are written under `scratch` while they upload.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Storage,
        metastore: Metastore,
        node_id: String,
        scratch: PathBuf,
        logs: Arc<LogStore>,
        traces: Arc<TraceStore>,
        metric_store: Arc<MetricStore>,
        grace: Duration,
        metrics: PublishMetrics,
        backlog: Arc<Backlog>,
    ) -> Publisher {
        Publisher {
            backlog,
            storage,
            metastore,
            node_id,
            scratch,
            logs,
            traces,
            metric_store,
            grace,
            metrics,
            membership: None,
        }
    }

    /// Publishes under the lease of `membership` (none: unfenced, for tests and tools).
    pub fn with_membership(mut self, membership: Arc<crate::membership::Membership>) -> Self {
        self.membership = Some(membership);
        self
    }

    /// The lease publications carry: `Err` while there is none yet (or this process
    /// was fenced off).
    fn fence(&self) -> Result<Option<triad_metastore::Lease>, String> {
        match &self.membership {
            None => Ok(None),
            Some(m) if m.is_fenced() => {
                self.metrics.fenced.set(1);
                Err("fenced: another process registered as this node".into())
            }
            Some(m) => m
                .lease()
                .map(Some)
                .ok_or_else(|| "not registered in the metastore yet".into()),
        }
    }

    /// Notes a refused publication's cause: fenced off for good, or to be retried.
    fn refused(&self, e: &MetastoreError) {
        if let (MetastoreError::Fenced(_), Some(m)) = (e, &self.membership) {
            m.fence();
            self.metrics.fenced.set(1);
        }
    }

    /// The local split IDs of `kind` this node already published.
    async fn published(&self, kind: Kind) -> Result<Seen, String> {
        let q = ListQuery {
            node_id: Some(self.node_id.clone()),
            ..ListQuery::in_state(kind, SplitState::Published)
        };
        let rows = self
            .metastore
            .list(&q)
            .await
            .map_err(|e| format!("listing published splits: {e}"))?;
        let prefix = format!("{}/", self.node_id);
        // The grace period counts from the publication, not from this start: query
        // servers stop excluding a split from their questions once it is older.
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.split_id.strip_prefix(&prefix)?.to_string(), r.updated_ms)))
            .collect())
    }

    /// Publishes until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        // Bundles left by a crash are written again when their split is published.
        let _ = tokio::fs::remove_dir_all(&self.scratch).await;
        if let Err(e) = tokio::fs::create_dir_all(&self.scratch).await {
            tracing::error!(dir = %self.scratch.display(), error = %e, "cannot create the upload directory; splits stay local");
            return;
        }
        let mut seen: Option<(Seen, Seen)> = None;
        let mut failures = 0u32;
        // Since when the metastore has answered without a break. Query servers learn of
        // a publication by listing the metastore: while it is away they cannot, so local
        // copies are deleted only after it has been reachable for a whole grace period.
        let mut reachable_since: Option<std::time::Instant> = None;
        loop {
            let pause = if failures == 0 {
                ROUND
            } else {
                (ROUND * 2u32.saturating_pow(failures.min(5))).min(MAX_BACKOFF)
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            if seen.is_none() {
                match (
                    self.published(Kind::Logs).await,
                    self.published(Kind::Traces).await,
                ) {
                    (Ok(l), Ok(t)) => seen = Some((l, t)),
                    (Err(e), _) | (_, Err(e)) => {
                        failures += 1;
                        tracing::warn!(error = %e, "metastore unreachable; sealed splits wait on local disk");
                        continue;
                    }
                }
            }
            let Some((log_seen, trace_seen)) = seen.as_mut() else {
                continue;
            };
            if self.membership.as_ref().is_some_and(|m| m.is_fenced()) {
                self.metrics.fenced.set(1);
            }
            let probe = self.metastore.checkpoint(&self.node_id, Kind::Logs).await;
            reachable_since = match probe {
                Ok(_) => reachable_since.or_else(|| Some(std::time::Instant::now())),
                Err(_) => None,
            };
            let may_delete = reachable_since.is_some_and(|t| t.elapsed() >= self.grace);
            let logs = self
                .round(self.logs.store(), Kind::Logs, log_seen, may_delete)
                .await;
            let traces = self
                .round(self.traces.store(), Kind::Traces, trace_seen, may_delete)
                .await;
            let blocks = self.block_round(may_delete).await;
            self.measure_backlog(log_seen, trace_seen);
            let mut failed = false;
            for (kind, result) in [
                (Kind::Logs, logs),
                (Kind::Traces, traces),
                (Kind::Metrics, blocks),
            ] {
                if let Err(f) = result {
                    failed = true;
                    if f.stage == "stage" || f.stage == "publish" {
                        reachable_since = None;
                    }
                    self.metrics
                        .errors
                        .get_or_create(&SignalStage {
                            signal: kind.as_str(),
                            stage: f.stage,
                        })
                        .inc();
                    tracing::warn!(signal = kind.as_str(), split = %f.split, stage = f.stage, error = %f.error, "publishing a split failed; retrying");
                }
            }
            failures = if failed { failures + 1 } else { 0 };
        }
    }

    /// Counts the bytes of sealed splits and metric blocks not yet published.
    fn measure_backlog(&self, log_seen: &Seen, trace_seen: &Seen) {
        let waiting = |splits: Vec<Arc<triad_splits::split::Split>>, seen: &Seen| -> u64 {
            splits
                .iter()
                .filter(|s| !seen.contains_key(&s.id))
                .map(|s| s.disk_bytes())
                .sum()
        };
        let bytes = waiting(self.logs.store().sealed_splits(), log_seen)
            + waiting(self.traces.store().sealed_splits(), trace_seen)
            + self.unpublished_block_bytes();
        self.backlog.bytes.store(bytes, Ordering::Relaxed);
        self.metrics.pending_bytes.set(bytes as i64);
    }

    /// Deletes local copies past the grace period (when `may_delete`), then publishes
    /// the sealed splits of one store in order.
    async fn round<S: Signal>(
        &self,
        store: &Arc<Store<S>>,
        kind: Kind,
        seen: &mut Seen,
        may_delete: bool,
    ) -> Result<(), Failed> {
        let label = SignalLabel {
            signal: kind.as_str(),
        };
        // First, whatever happens to the publications below: a local copy kept past
        // the grace period would be counted twice by query servers that no longer
        // exclude it from their questions to this collector.
        if may_delete {
            self.cleanup(store, &label, seen).await?;
        }
        let sealed = store.sealed_splits();
        // Publications recorded beside the split (they outlive the metastore's rows).
        for split in &sealed {
            if !seen.contains_key(&split.id)
                && let Some(at) = split
                    .local_dir()
                    .and_then(triad_storage::bundle::published_at)
            {
                seen.insert(split.id.clone(), at);
            }
        }
        let pending: Vec<_> = sealed
            .iter()
            .filter(|s| !seen.contains_key(&s.id))
            .cloned()
            .collect();
        self.metrics
            .pending
            .get_or_create(&label)
            .set(pending.len() as i64);
        for split in pending {
            let meta = split.meta();
            if meta.docs == 0 {
                // Nothing to publish (an empty split left by a crash): just dropped later.
                seen.insert(split.id.clone(), now_ms());
                continue;
            }
            let fail = |stage: &'static str| {
                let id = split.id.clone();
                move |e: String| Failed {
                    stage,
                    split: id,
                    error: e,
                }
            };
            let global = format!("{}/{}", self.node_id, split.id);
            let key = format!("{}/{}/{}.split", kind.as_str(), self.node_id, split.id);
            let file = self
                .scratch
                .join(format!("{}-{}.bundle", kind.as_str(), split.id));
            let (bytes, tenants, operations) = {
                let (split, file) = (split.clone(), file.clone());
                // Trace splits enter their operations in the services catalog.
                let traces = (kind == Kind::Traces).then(|| self.traces.clone());
                tokio::task::spawn_blocking(move || {
                    let bytes = split.write_bundle(&file)?;
                    let operations = match traces {
                        Some(t) => t
                            .split_operations(&split)?
                            .into_iter()
                            .map(|(tenant, service, op)| OperationRow {
                                tenant,
                                service,
                                span_kind: op.kind.as_str().to_string(),
                                name: op.name,
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    Ok::<_, triad_splits::Error>((bytes, split.tenants()?, operations))
                })
                .await
                .map_err(|e| fail("bundle")(e.to_string()))?
                .map_err(|e| fail("bundle")(e.to_string()))?
            };
            let row = SplitRow {
                split_id: global.clone(),
                signal: kind,
                node_id: self.node_id.clone(),
                state: SplitState::Staged,
                object_key: key.clone(),
                bytes,
                docs: meta.docs,
                min_ts: meta.min_ts,
                max_ts: meta.max_ts,
                tenants,
                created_ms: 0,
                updated_ms: 0,
            };
            self.metastore
                .stage(&row)
                .await
                .map_err(|e| fail("stage")(e.to_string()))?;
            crash_point("after-stage");
            self.storage
                .upload_file(&key, &file)
                .await
                .map_err(|e| fail("upload")(e.to_string()))?;
            crash_point("after-upload");
            let fence = self.fence().map_err(fail("publish"))?;
            let published = self
                .metastore
                .publish(&Publish {
                    split_ids: vec![global.clone()],
                    replaces: Vec::new(),
                    checkpoint: Some((self.node_id.clone(), kind, meta.lsn)),
                    operations,
                    fence,
                })
                .await;
            match published {
                Ok(()) => {}
                // Published before a crash, and merged or expired since.
                Err(MetastoreError::Conflict(id)) if id == global => {
                    tracing::info!(split = %global, "split was published before and replaced since");
                }
                Err(e) => {
                    self.refused(&e);
                    return Err(fail("publish")(e.to_string()));
                }
            }
            crash_point("after-publish");
            let _ = tokio::fs::remove_file(&file).await;
            let at = now_ms();
            if let Some(dir) = split.local_dir().map(std::path::Path::to_path_buf) {
                tokio::task::spawn_blocking(move || {
                    triad_storage::bundle::mark_published(&dir, at)
                })
                .await
                .map_err(|e| fail("publish")(e.to_string()))?
                .map_err(|e| fail("publish")(e.to_string()))?;
            }
            seen.insert(split.id.clone(), at);
            self.metrics.splits.get_or_create(&label).inc();
            self.metrics.bytes.get_or_create(&label).inc_by(bytes);
            if meta.first_write_ns > 0 {
                let lag = (triad_model::now_ns() - meta.first_write_ns) as f64 / 1e9;
                self.metrics.lag_seconds.get_or_create(&label).observe(lag);
            }
            tracing::info!(signal = kind.as_str(), split = %split.id, docs = meta.docs, bytes, "published split");
        }
        Ok(())
    }

    /// Deletes the local copies of splits published longer than the grace period ago,
    /// and forgets IDs of splits no longer held.
    async fn cleanup<S: Signal>(
        &self,
        store: &Arc<Store<S>>,
        label: &SignalLabel,
        seen: &mut Seen,
    ) -> Result<(), Failed> {
        // Local copies past the grace period go; so do IDs of splits no longer held.
        let cutoff = now_ms() - self.grace.as_millis() as i64;
        let expired: Vec<String> = seen
            .iter()
            .filter(|(_, at)| **at <= cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            let (store, ids) = (store.clone(), expired.clone());
            let removed = tokio::task::spawn_blocking(move || store.remove_splits(&ids))
                .await
                .map_err(|e| Failed {
                    stage: "cleanup",
                    split: String::new(),
                    error: e.to_string(),
                })?
                .map_err(|e| Failed {
                    stage: "cleanup",
                    split: String::new(),
                    error: e.to_string(),
                })?;
            self.metrics
                .local_removed
                .get_or_create(label)
                .inc_by(removed as u64);
        }
        let held: std::collections::HashSet<String> =
            store.splits().iter().map(|s| s.id.clone()).collect();
        seen.retain(|id, _| held.contains(id));
        Ok(())
    }
}
