//! Object-storage mode: retention and deletion of objects.
//!
//! Every [`EVERY`], in three steps:
//!
//! 1. **Retention marks**: published splits and metric blocks whose newest record is
//!    older than their signal's `retention_secs` are marked for deletion (readers stop listing them at
//!    their next refresh); operations no trace split published within the trace
//!    retention held leave the services catalog.
//! 2. **Deletion after the grace period**: marked splits whose state changed longer than
//!    `storage.local_grace_secs` ago — longer than a listing refresh plus the longest
//!    query, so no query can still be reading them — lose their object, then their row.
//! 3. **Orphans**: staged rows of this collector older than [`ORPHAN_AGE`] whose split it
//!    no longer holds (a crash, then the local copy expired or was lost) lose their
//!    object, if one was uploaded, and their row. A staged split still held locally is
//!    not an orphan: the publisher finishes it.
//!
//! Objects are deleted before rows, so a crash in between leaves a row whose deletion is
//! simply redone (deleting a missing object succeeds). With several collectors sharing
//! PostgreSQL, one janitor at a time works: each round runs under an advisory lock.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use triad_metastore::{ListQuery, Metastore, Signal as Kind, SplitState};
use triad_splits::log_index::LogStore;
use triad_splits::trace_store::TraceStore;
use triad_storage::Storage;
use triad_tsdb::metric_store::MetricStore;

use crate::metrics::{JanitorMetrics, SignalLabel};

/// Pause between janitor rounds.
pub const EVERY: Duration = Duration::from_secs(60);
/// A staged row this old whose split the collector no longer holds is an orphan.
pub const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Published splits marked by retention.
    pub marked: usize,
    /// Marked splits whose object and row were deleted.
    pub deleted: usize,
    /// Orphaned staged splits removed.
    pub orphans: usize,
}

/// Applies retention in object storage; see the module docs.
pub struct Janitor {
    storage: Storage,
    metastore: Metastore,
    node_id: String,
    logs: Arc<LogStore>,
    traces: Arc<TraceStore>,
    metric_store: Arc<MetricStore>,
    /// Retention of logs, traces and metrics, per tenant.
    retention: triad_model::config::Retentions,
    grace: Duration,
    metrics: JanitorMetrics,
}

impl Janitor {
    /// A janitor for `node_id`'s splits and blocks and the retention of every signal.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Storage,
        metastore: Metastore,
        node_id: String,
        logs: Arc<LogStore>,
        traces: Arc<TraceStore>,
        metric_store: Arc<MetricStore>,
        retention: triad_model::config::Retentions,
        grace: Duration,
        metrics: JanitorMetrics,
    ) -> Janitor {
        Janitor {
            storage,
            metastore,
            node_id,
            logs,
            traces,
            metric_store,
            retention,
            grace,
            metrics,
        }
    }

    /// Runs a round every [`EVERY`] until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let round = self
                .metastore
                .exclusively("triad-janitor", self.round(triad_model::now_ns()))
                .await;
            let result = match round {
                Ok(Some(r)) => r,
                // Another collector's janitor is at work.
                Ok(None) => continue,
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(r) if r != Report::default() => {
                    tracing::info!(
                        marked = r.marked,
                        deleted = r.deleted,
                        orphans = r.orphans,
                        "janitor round"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::warn!(error = %e, "janitor round failed; retrying next round");
                }
            }
        }
    }

    /// One round at `now_ns`.
    pub async fn round(&self, now_ns: i64) -> Result<Report, String> {
        let mut report = Report::default();
        let now_ms = now_ns / 1_000_000;
        for (kind, retention) in [
            (Kind::Logs, &self.retention.logs),
            (Kind::Traces, &self.retention.traces),
            (Kind::Metrics, &self.retention.metrics),
        ] {
            let label = SignalLabel {
                signal: kind.as_str(),
            };
            let shortest = retention.shortest();
            if shortest > 0 {
                // Nothing newer than the shortest retention can have expired; a split
                // goes when the longest retention of its tenants is over (a metric
                // block has one tenant).
                let earliest =
                    now_ns.saturating_sub((shortest as i64).saturating_mul(1_000_000_000));
                let expired: Vec<String> = self
                    .metastore
                    .list(&ListQuery::published(kind, i64::MIN, earliest))
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter(|r| {
                        retention
                            .cutoff_ns(r.tenants.iter().map(String::as_str), now_ns)
                            .is_some_and(|cutoff| r.max_ts < cutoff)
                    })
                    .map(|r| r.split_id)
                    .collect();
                let n = self
                    .metastore
                    .mark(&expired)
                    .await
                    .map_err(|e| e.to_string())?;
                report.marked += n;
                self.metrics.marked.get_or_create(&label).inc_by(n as u64);
                let longest = retention.longest();
                if kind == Kind::Traces && longest > 0 {
                    // Operations no split within any tenant's retention holds leave the
                    // catalog.
                    let cutoff =
                        now_ns.saturating_sub((longest as i64).saturating_mul(1_000_000_000));
                    self.metastore
                        .forget_operations(cutoff / 1_000_000)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            let due = ListQuery {
                updated_before_ms: Some(now_ms - self.grace.as_millis() as i64),
                ..ListQuery::in_state(kind, SplitState::Marked)
            };
            for row in self.metastore.list(&due).await.map_err(|e| e.to_string())? {
                self.delete(&row).await?;
                report.deleted += 1;
                self.metrics.deleted.get_or_create(&label).inc();
            }
            let held = self.held(kind);
            let stale = ListQuery {
                node_id: Some(self.node_id.clone()),
                updated_before_ms: Some(now_ms - ORPHAN_AGE.as_millis() as i64),
                ..ListQuery::in_state(kind, SplitState::Staged)
            };
            for row in self
                .metastore
                .list(&stale)
                .await
                .map_err(|e| e.to_string())?
            {
                if held.contains(&row.split_id) {
                    continue;
                }
                self.delete(&row).await?;
                report.orphans += 1;
                self.metrics.orphans.get_or_create(&label).inc();
            }
        }
        Ok(report)
    }

    /// The metastore IDs of the splits (or blocks) of `kind` this collector holds.
    fn held(&self, kind: Kind) -> HashSet<String> {
        let ids = |splits: Vec<Arc<triad_splits::split::Split>>| -> HashSet<String> {
            splits
                .iter()
                .map(|s| format!("{}/{}", self.node_id, s.id))
                .collect()
        };
        match kind {
            Kind::Logs => ids(self.logs.store().splits()),
            Kind::Traces => ids(self.traces.store().splits()),
            Kind::Metrics => self
                .metric_store
                .tenants()
                .into_iter()
                .flat_map(|(tenant, db)| {
                    db.local_blocks()
                        .iter()
                        .map(|b| crate::blocks::block_id(&self.node_id, &tenant, b.name()))
                        .collect::<Vec<_>>()
                })
                .collect(),
        }
    }

    /// Deletes a split's object, then its row (a crash in between leaves the row, and
    /// the deletion is redone: deleting a missing object succeeds).
    async fn delete(&self, row: &triad_metastore::SplitRow) -> Result<(), String> {
        self.storage
            .delete(&row.object_key)
            .await
            .map_err(|e| e.to_string())?;
        self.metastore
            .remove(std::slice::from_ref(&row.split_id))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
