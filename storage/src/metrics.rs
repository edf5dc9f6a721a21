//! Telemetry of the storage of sealed files (`triad_storage_*`).

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// An object store request and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpOutcome {
    /// `put`, `get`, `head`, `delete`, `list`.
    pub op: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// The operation of a latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// `put`, `get`, `head`, `delete`, `list`.
    pub op: &'static str,
}

/// Whether a cache lookup found its block.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `hit` or `miss`.
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.5, 14))
}

triad_model::metric_set! {
    /// Requests to the object store and the read cache in front of it.
    pub struct StorageMetrics in "triad_storage" {
        /// Object store requests by operation and outcome (after the client's retries).
        pub requests: Family<OpOutcome, Counter>,
        /// Latency of object store requests by operation, seconds.
        pub request_seconds: Family<OpLabel, Histogram> =
            Family::new_with_constructor(latency_histogram),
        /// Bytes written to the object store.
        pub uploaded_bytes: Counter,
        /// Bytes read from the object store.
        pub downloaded_bytes: Counter,
        /// Block lookups in the read cache by result (hit, miss).
        pub cache_lookups: Family<ResultLabel, Counter>,
        /// Bytes held by the read cache on disk.
        pub cache_bytes: Gauge,
        /// Bytes of the read cache's hot blocks held in memory.
        pub cache_memory_bytes: Gauge,
        /// Blocks evicted from the read cache to stay within its size.
        pub cache_evictions: Counter,
    }
}

impl StorageMetrics {
    /// Counts one request and its latency.
    pub(crate) fn observe(&self, op: &'static str, ok: bool, started: Instant) {
        let outcome = if ok { "ok" } else { "error" };
        self.requests
            .get_or_create(&OpOutcome { op, outcome })
            .inc();
        self.request_seconds
            .get_or_create(&OpLabel { op })
            .observe(started.elapsed().as_secs_f64());
    }
}
