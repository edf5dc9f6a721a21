//! The collector's own ingest telemetry: the scraper (`triad_scrape_*`), remote write
//! (`triad_remote_write_*`) and remote read (`triad_remote_read_*`). The receivers'
//! counters are `triad_receiver::metrics`, the stores' live in their crates.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The scrape job of a scraper metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct JobLabel {
    pub(crate) job: String,
}

/// The job and reason of a failed scrape.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FailureLabels {
    pub(crate) job: String,
    pub(crate) reason: &'static str,
}

/// The HTTP status label of the remote write and remote read request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabel {
    pub(crate) code: u16,
}

triad_model::metric_set! {
    /// The scraper's own metrics (`triad_scrape_*`).
    pub struct ScrapeMetrics in "triad_scrape" {
        /// Active scrape targets per job.
        pub(crate) targets: Family<JobLabel, Gauge>,
        /// Scrapes attempted per job.
        pub(crate) scrapes: Family<JobLabel, Counter>,
        /// Failed scrapes per job and reason (http, timeout, too_large, parse,
        /// sample_limit, store).
        pub(crate) failures: Family<FailureLabels, Counter>,
        /// Samples stored by scrapes per job.
        pub(crate) samples: Family<JobLabel, Counter>,
        /// Unreadable or invalid file_sd files.
        pub(crate) discovery_errors: Counter,
    }
}

triad_model::metric_set! {
    /// Remote write receiver metrics (`triad_remote_write_*`).
    pub struct RemoteWriteMetrics in "triad_remote_write" {
        /// Requests by HTTP status code.
        pub(crate) requests: Family<CodeLabel, Counter>,
        /// Samples stored.
        pub(crate) samples: Counter,
        /// Samples refused (invalid series, out of order, duplicate timestamp).
        pub(crate) rejected as "rejected_samples": Counter,
        /// Compressed bytes received.
        pub(crate) bytes as "received_bytes": Counter,
    }
}

triad_model::metric_set! {
    /// Remote read server metrics (`triad_remote_read_*`).
    pub struct RemoteReadMetrics in "triad_remote_read" {
        /// Requests by HTTP status code.
        pub(crate) requests: Family<CodeLabel, Counter>,
        /// Samples returned.
        pub(crate) samples: Counter,
    }
}
