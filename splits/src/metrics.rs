//! The collector's own telemetry, exposed on `/metrics` (Prometheus text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

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

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 14))
}

triad_model::metric_set! {
    /// Store metrics, labelled by signal.
    pub struct StoreMetrics in "triad_store" {
        /// Records made durable in the write-ahead log.
        pub wal_records: Family<SignalLabel, Counter>,
        /// Bytes written to the write-ahead log.
        pub wal_bytes: Family<SignalLabel, Counter>,
        /// Duration of a WAL group commit (write + fdatasync).
        pub wal_sync_seconds: Family<SignalLabel, Histogram> =
            Family::new_with_constructor(latency_histogram),
        /// Records replayed from the WAL at start.
        pub wal_replayed as "wal_replayed_records": Family<SignalLabel, Counter>,
        /// Documents handed to the index writer.
        pub indexed_docs: Family<SignalLabel, Counter>,
        /// Index commits.
        pub commits: Family<SignalLabel, Counter>,
        /// Duration of an index commit.
        pub commit_seconds: Family<SignalLabel, Histogram> =
            Family::new_with_constructor(latency_histogram),
        /// Batches waiting between the WAL and the indexer.
        pub index_queue_depth: Family<SignalLabel, Gauge>,
        /// Splits held by the store (sealed and active).
        pub splits: Family<SignalLabel, Gauge>,
        /// Bytes on disk of the store's splits.
        pub disk_bytes: Family<SignalLabel, Gauge>,
        /// Splits removed by retention.
        pub retention_removed_splits: Family<SignalLabel, Counter>,
        /// Storage errors by stage.
        pub errors: Family<StageLabels, Counter>,
        /// Restarts of the store's threads after their WAL or indexer stopped on an
        /// error (a full disk, say).
        pub restarts: Family<SignalLabel, Counter>,
    }
}
