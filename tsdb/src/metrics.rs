//! The TSDB's own metrics (`triad_tsdb_*`), shared by every tenant.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

triad_model::metric_set! {
    /// The TSDB's own metrics (`triad_tsdb_*`), shared by every tenant.
    pub struct TsdbMetrics in "triad_tsdb" {
        /// Samples stored.
        pub(crate) samples as "samples_appended": Counter,
        /// Samples refused, by reason (out_of_order, duplicate_timestamp).
        pub(crate) rejected as "rejected_samples": Family<ReasonLabel, Counter>,
        /// Series in the in-memory head.
        pub(crate) head_series: Gauge,
        /// Samples in the in-memory head.
        pub(crate) head_samples: Gauge,
        /// Approximate memory held by the head.
        pub(crate) head_bytes: Gauge,
        /// Blocks on disk.
        pub(crate) blocks: Gauge,
        /// Bytes of the blocks on disk.
        pub(crate) block_bytes: Gauge,
        /// Bytes of the write-ahead log.
        pub(crate) wal_bytes: Gauge,
        /// Head cuts into blocks.
        pub(crate) cuts as "head_cuts": Counter,
        /// Block merges.
        pub(crate) compactions: Counter,
        /// Blocks removed by retention.
        pub(crate) retention_removed as "retention_removed_blocks": Counter,
        /// Storage failures (cut, compaction, retention).
        pub(crate) errors: Counter,
    }
}
