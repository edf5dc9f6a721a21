//! The collector's own ingest telemetry: the scraper (`triad_scrape_*`), remote write
//! (`triad_remote_write_*`) and remote read (`triad_remote_read_*`). The receivers'
//! counters are `triad_receiver::metrics`, the stores' live in their crates.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

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

/// The signal of a publication metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalLabel {
    pub(crate) signal: &'static str,
}

/// The signal and step of a failed publication.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalStage {
    pub(crate) signal: &'static str,
    pub(crate) stage: &'static str,
}

fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

triad_model::metric_set! {
    /// Publication of sealed splits to object storage (`triad_publish_*`).
    pub struct PublishMetrics in "triad_publish" {
        /// Splits published (uploaded and listed in the metastore), by signal.
        pub(crate) splits: Family<SignalLabel, Counter>,
        /// Bytes of the published split bundles, by signal.
        pub(crate) bytes: Family<SignalLabel, Counter>,
        /// Failed publication steps by signal and stage (bundle, stage, upload, publish,
        /// cleanup); each is retried.
        pub(crate) errors: Family<SignalStage, Counter>,
        /// Sealed splits waiting to be published, by signal.
        pub(crate) pending as "pending_splits": Family<SignalLabel, Gauge>,
        /// Bytes of sealed splits waiting to be published (both signals); beyond
        /// `storage.max_unpublished_bytes` new logs and spans are refused.
        pub(crate) pending_bytes: Gauge,
        /// Seconds from a split's first record to its publication, by signal.
        pub(crate) lag_seconds: Family<SignalLabel, Histogram> =
            Family::new_with_constructor(lag_histogram),
        /// Local copies of published splits deleted after the grace period, by signal.
        pub(crate) local_removed as "local_removed_splits": Family<SignalLabel, Counter>,
        /// 1 once another process registered as this collector's node: this one no
        /// longer publishes (its data stays on local disk).
        pub(crate) fenced: Gauge,
    }
}

triad_model::metric_set! {
    /// Retention and deletion in object storage (`triad_janitor_*`).
    pub struct JanitorMetrics in "triad_janitor" {
        /// Published splits marked for deletion by retention, by signal.
        pub(crate) marked as "marked_splits": Family<SignalLabel, Counter>,
        /// Marked splits whose object and row were deleted after the grace period.
        pub(crate) deleted as "deleted_splits": Family<SignalLabel, Counter>,
        /// Orphaned staged splits (object and row) removed, by signal.
        pub(crate) orphans as "orphaned_splits": Family<SignalLabel, Counter>,
        /// Janitor rounds that failed (retried at the next round).
        pub(crate) errors: Counter,
    }
}

triad_model::metric_set! {
    /// Merges of small published splits (`triad_merge_*`).
    pub struct MergeMetrics in "triad_merge" {
        /// Merged splits published, by signal.
        pub(crate) merges: Family<SignalLabel, Counter>,
        /// Splits merged away (marked in the same transaction), by signal.
        pub(crate) merged_splits as "input_splits": Family<SignalLabel, Counter>,
        /// Documents written into merged splits, by signal.
        pub(crate) merged_docs as "docs": Family<SignalLabel, Counter>,
        /// Merge rounds that failed (retried at the next round).
        pub(crate) errors: Counter,
    }
}
