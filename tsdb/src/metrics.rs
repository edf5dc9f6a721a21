//! The TSDB's own metrics (`triad_tsdb_*`), shared by every tenant.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// The TSDB's own metrics (`triad_tsdb_*`), shared by every tenant.
#[derive(Clone)]
pub struct TsdbMetrics {
    pub(crate) samples: Counter,
    pub(crate) rejected: Family<ReasonLabel, Counter>,
    pub(crate) head_series: Gauge,
    pub(crate) head_samples: Gauge,
    pub(crate) head_bytes: Gauge,
    pub(crate) blocks: Gauge,
    pub(crate) block_bytes: Gauge,
    pub(crate) wal_bytes: Gauge,
    pub(crate) cuts: Counter,
    pub(crate) compactions: Counter,
    pub(crate) retention_removed: Counter,
    pub(crate) errors: Counter,
}

impl TsdbMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> TsdbMetrics {
        let m = TsdbMetrics {
            samples: Counter::default(),
            rejected: Family::default(),
            head_series: Gauge::default(),
            head_samples: Gauge::default(),
            head_bytes: Gauge::default(),
            blocks: Gauge::default(),
            block_bytes: Gauge::default(),
            wal_bytes: Gauge::default(),
            cuts: Counter::default(),
            compactions: Counter::default(),
            retention_removed: Counter::default(),
            errors: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("triad_tsdb");
        r.register("samples_appended", "Samples stored", m.samples.clone());
        r.register(
            "rejected_samples",
            "Samples refused, by reason (out_of_order, duplicate_timestamp)",
            m.rejected.clone(),
        );
        r.register(
            "head_series",
            "Series in the in-memory head",
            m.head_series.clone(),
        );
        r.register(
            "head_samples",
            "Samples in the in-memory head",
            m.head_samples.clone(),
        );
        r.register(
            "head_bytes",
            "Approximate memory held by the head",
            m.head_bytes.clone(),
        );
        r.register("blocks", "Blocks on disk", m.blocks.clone());
        r.register(
            "block_bytes",
            "Bytes of the blocks on disk",
            m.block_bytes.clone(),
        );
        r.register(
            "wal_bytes",
            "Bytes of the write-ahead log",
            m.wal_bytes.clone(),
        );
        r.register("head_cuts", "Head cuts into blocks", m.cuts.clone());
        r.register("compactions", "Block merges", m.compactions.clone());
        r.register(
            "retention_removed_blocks",
            "Blocks removed by retention",
            m.retention_removed.clone(),
        );
        r.register(
            "errors",
            "Storage failures (cut, compaction, retention)",
            m.errors.clone(),
        );
        m
    }

    /// Unregistered metrics, for tests and tools.
    pub fn unregistered() -> TsdbMetrics {
        TsdbMetrics::register(&mut Registry::default())
    }
}
