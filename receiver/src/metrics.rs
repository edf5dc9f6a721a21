//! Receiver metrics, registered under the component's prefix (`triad_collector_…`,
//! `triad_agent_…`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

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

/// Receiver counters.
#[derive(Clone)]
pub struct ReceiverMetrics {
    /// Items (spans, log records) accepted and acknowledged.
    pub accepted: Family<RecvLabels, Counter>,
    /// Items rejected one by one (invalid IDs, absurd timestamps) inside a decodable request.
    pub rejected: Family<RecvLabels, Counter>,
    /// Requests by outcome.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Request body bytes as received (before decompression).
    pub bytes: Family<RecvLabels, Counter>,
}

impl ReceiverMetrics {
    /// Creates and registers the receiver metrics.
    pub fn register(registry: &mut Registry, prefix: &str) -> Self {
        let m = Self {
            accepted: Family::default(),
            rejected: Family::default(),
            requests: Family::default(),
            bytes: Family::default(),
        };
        let r = registry.sub_registry_with_prefix(prefix);
        r.register(
            "accepted_items",
            "Spans and log records accepted and acknowledged",
            m.accepted.clone(),
        );
        r.register(
            "rejected_items",
            "Spans and log records rejected as invalid",
            m.rejected.clone(),
        );
        r.register("requests", "Export requests by outcome", m.requests.clone());
        r.register(
            "received_bytes",
            "Request body bytes as received",
            m.bytes.clone(),
        );
        m
    }
}
