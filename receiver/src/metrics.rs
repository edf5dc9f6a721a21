//! Receiver metrics, registered under the component's prefix (`triad_collector_…`,
//! `triad_agent_…`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Labels of receiver metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecvLabels {
    /// `traces` or `logs`.
    pub signal: &'static str,
    /// `grpc` or `http`.
    pub transport: &'static str,
}

/// Labels of request outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `traces` or `logs`.
    pub signal: &'static str,
    /// `grpc` or `http`.
    pub transport: &'static str,
    /// `ok`, `partial`, `invalid`, `too_large`, `unsupported_media_type`, `unavailable`.
    pub outcome: &'static str,
}

triad_model::metric_set! {
    /// Receiver counters; the component registers them under its own prefix.
    pub struct ReceiverMetrics {
        /// Spans and log records accepted and acknowledged.
        pub accepted as "accepted_items": Family<RecvLabels, Counter>,
        /// Spans and log records rejected one by one (invalid IDs, absurd timestamps)
        /// inside a decodable request.
        pub rejected as "rejected_items": Family<RecvLabels, Counter>,
        /// Export requests by outcome.
        pub requests: Family<OutcomeLabels, Counter>,
        /// Request body bytes as received (before decompression).
        pub bytes as "received_bytes": Family<RecvLabels, Counter>,
    }
}

impl ReceiverMetrics {
    /// Creates the counters and registers them under `prefix` (`triad_collector`,
    /// `triad_agent`).
    pub fn register_under(
        registry: &mut prometheus_client::registry::Registry,
        prefix: &str,
    ) -> Self {
        Self::register(registry.sub_registry_with_prefix(prefix))
    }
}
