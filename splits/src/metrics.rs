//! The collector's own telemetry, exposed on `/metrics` (Prometheus text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of store metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    /// `traces` or `logs`.
    pub signal: &'static str,
}

/// Labels of store error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `traces` or `logs`.
    pub signal: &'static str,
    /// Where it failed: `wal`, `index`, `commit`, `retention`.
    pub stage: &'static str,
}

/// Store metrics, labelled by signal.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Records made durable in the write-ahead log.
    pub wal_records: Family<SignalLabel, Counter>,
    /// Bytes written to the write-ahead log.
    pub wal_bytes: Family<SignalLabel, Counter>,
    /// Duration of a WAL group commit (write + fdatasync).
    pub wal_sync_seconds: Family<SignalLabel, Histogram>,
    /// Records replayed from the WAL at start.
    pub wal_replayed: Family<SignalLabel, Counter>,
    /// Documents handed to the index writer.
    pub indexed_docs: Family<SignalLabel, Counter>,
    /// Index commits.
    pub commits: Family<SignalLabel, Counter>,
    /// Duration of an index commit.
    pub commit_seconds: Family<SignalLabel, Histogram>,
    /// Batches waiting between the WAL and the indexer.
    pub index_queue_depth: Family<SignalLabel, Gauge>,
    /// Number of splits (sealed and active).
    pub splits: Family<SignalLabel, Gauge>,
    /// Bytes on disk of the splits.
    pub disk_bytes: Family<SignalLabel, Gauge>,
    /// Splits removed by retention.
    pub retention_removed_splits: Family<SignalLabel, Counter>,
    /// Errors by stage.
    pub errors: Family<StageLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 14))
}

impl StoreMetrics {
    /// Creates and registers the store metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            wal_records: Family::default(),
            wal_bytes: Family::default(),
            wal_sync_seconds: Family::new_with_constructor(latency_histogram),
            wal_replayed: Family::default(),
            indexed_docs: Family::default(),
            commits: Family::default(),
            commit_seconds: Family::new_with_constructor(latency_histogram),
            index_queue_depth: Family::default(),
            splits: Family::default(),
            disk_bytes: Family::default(),
            retention_removed_splits: Family::default(),
            errors: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("triad_store");
        r.register(
            "wal_records",
            "Records made durable in the write-ahead log",
            m.wal_records.clone(),
        );
        r.register(
            "wal_bytes",
            "Bytes written to the write-ahead log",
            m.wal_bytes.clone(),
        );
        r.register(
            "wal_sync_seconds",
            "Duration of a WAL group commit",
            m.wal_sync_seconds.clone(),
        );
        r.register(
            "wal_replayed_records",
            "Records replayed from the WAL at start",
            m.wal_replayed.clone(),
        );
        r.register(
            "indexed_docs",
            "Documents handed to the index writer",
            m.indexed_docs.clone(),
        );
        r.register("commits", "Index commits", m.commits.clone());
        r.register(
            "commit_seconds",
            "Duration of an index commit",
            m.commit_seconds.clone(),
        );
        r.register(
            "index_queue_depth",
            "Batches waiting between the WAL and the indexer",
            m.index_queue_depth.clone(),
        );
        r.register("splits", "Splits held by the store", m.splits.clone());
        r.register(
            "disk_bytes",
            "Bytes on disk of the store's splits",
            m.disk_bytes.clone(),
        );
        r.register(
            "retention_removed_splits",
            "Splits removed by retention",
            m.retention_removed_splits.clone(),
        );
        r.register("errors", "Storage errors by stage", m.errors.clone());
        m
    }

    /// A metrics set registered nowhere, for tests and benchmarks.
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }
}
