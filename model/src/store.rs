//! The read side of storage, as the query server sees it.
//!
//! The collector implements these traits on its tantivy stores; the query server holds
//! `Arc<dyn LogRead>` / `Arc<dyn TraceRead>` and does not know whether they are
//! in-process (all-in-one) or elsewhere. The calls block: callers on an async runtime
//! run them in `spawn_blocking`.

use crate::{LogRecord, Span, SpanKind, TraceId};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query text or parameters are invalid; the message is for the user.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Storage failed; details are logged by the store.
    #[error("storage error: {0}")]
    Internal(String),
}

/// Result of a read.
pub type StoreResult<T> = Result<T, StoreError>;

/// A log search.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogQuery {
    /// Tenant to search in.
    pub tenant: String,
    /// tantivy query syntax over `body` and the fields (`service:x level:error trace_id:…`);
    /// empty matches everything.
    pub query: String,
    /// Inclusive start, ns.
    pub start_ns: i64,
    /// Exclusive end, ns.
    pub end_ns: i64,
    /// Most hits to return (newest first).
    pub limit: usize,
    /// Number of histogram buckets over `[start_ns, end_ns)`; 0 for none.
    pub histogram_buckets: usize,
    /// Hits oldest first (LogQL's `direction=forward`) instead of newest first.
    #[serde(default)]
    pub oldest_first: bool,
}

/// Result of a log search.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LogSearchResult {
    /// Hits, newest first (oldest first when the query asked so).
    pub hits: Vec<LogRecord>,
    /// Exact number of matching records in the range.
    pub total: u64,
    /// Width of one histogram bucket, ns.
    pub bucket_ns: i64,
    /// Matching records per bucket; bucket `i` starts at `start_ns + i * bucket_ns`.
    pub histogram: Vec<u64>,
    /// Sources that did not answer (the answer is partial when not empty).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl LogSearchResult {
    /// Adds another source's answer to the same query `q`: totals and histograms summed,
    /// hits merged in the query's order and cut at its limit, warnings kept.
    pub fn absorb(&mut self, other: LogSearchResult, q: &LogQuery) {
        self.total += other.total;
        if self.histogram.is_empty() {
            self.histogram = other.histogram;
            self.bucket_ns = other.bucket_ns;
        } else if self.histogram.len() == other.histogram.len() {
            for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
                *a += b;
            }
        }
        self.hits.extend(other.hits);
        if q.oldest_first {
            self.hits.sort_by_key(|h| h.timestamp_ns);
        } else {
            self.hits.sort_by_key(|h| std::cmp::Reverse(h.timestamp_ns));
        }
        self.hits.truncate(q.limit);
        self.warnings.extend(other.warnings);
    }
}

/// New records for a live tail, and where to continue from.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TailBatch {
    /// Matching records that arrived after the cursor, in arrival order.
    pub records: Vec<LogRecord>,
    /// Cursor to pass next time.
    pub cursor: u64,
}

/// The log index splits text into words — runs of alphanumeric characters and `_`,
/// lowercased — and indexes a word longer than this many bytes as [`LOG_LONG_WORD`].
/// Query builders that turn substrings into index terms (LogQL's line filters) rely on
/// both.
pub const LOG_WORD_MAX_BYTES: usize = 255;
/// The term a word over [`LOG_WORD_MAX_BYTES`] is indexed as.
pub const LOG_LONG_WORD: &str = "triad_long_word";

/// The log fields whose values [`LogRead::field_values`] lists.
pub const LOG_VALUE_FIELDS: [&str; 4] = ["service", "level", "host", "source"];

/// Read access to logs.
pub trait LogRead: Send + Sync {
    /// Searches logs in a time range.
    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult>;

    /// Values of the indexed field `field` (one of [`LOG_VALUE_FIELDS`]) in records
    /// of `tenant` stored for `[start_ns, end_ns)`: sorted, at most `limit`. From the
    /// index's term dictionary (a term counts where one of its documents is the
    /// tenant's); time is pruned by split.
    fn field_values(
        &self,
        tenant: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    /// Records matching `query` that became searchable after `cursor` (in arrival order).
    /// With `cursor = None`, returns no records and the cursor of "now".
    fn tail(
        &self,
        tenant: &str,
        query: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<TailBatch>;
}

/// An operation of a service.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Operation {
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
}

/// A trace search, Jaeger-style: traces with at least one span matching all criteria.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TraceQuery {
    /// Tenant to search in.
    pub tenant: String,
    /// Service of the matching span; empty: any service.
    pub service: String,
    /// Operation (span name) of the matching span, if given.
    pub operation: Option<String>,
    /// Attribute (or resource attribute) equalities the matching span must satisfy.
    pub tags: Vec<(String, String)>,
    /// Span start lower bound, ns (inclusive).
    pub start_ns: i64,
    /// Span start upper bound, ns (inclusive).
    pub end_ns: i64,
    /// Minimum span duration, ns.
    pub min_duration_ns: Option<i64>,
    /// Maximum span duration, ns.
    pub max_duration_ns: Option<i64>,
    /// Most traces to return.
    pub limit: usize,
    /// Which traces the limit keeps.
    #[serde(default)]
    pub order: TraceOrder,
}

/// Which matching traces a search returns first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TraceOrder {
    /// The most recent (latest start of a matching span) first.
    #[default]
    Recent,
    /// The slowest (longest matching span) first. Stores that merge several sources
    /// return each source's slowest without cutting to the limit; the caller orders by
    /// the traces' durations.
    Slowest,
}

/// A service-to-service call count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DependencyLink {
    /// Calling service.
    pub parent: String,
    /// Called service.
    pub child: String,
    /// Number of calls in the window.
    pub call_count: u64,
}

/// Read access to traces.
pub trait TraceRead: Send + Sync {
    /// Services that sent spans, sorted.
    fn services(&self, tenant: &str) -> StoreResult<Vec<String>>;
    /// Attribute keys (span and resource; `key` `None`), or the values of attribute
    /// `key`, carried by `tenant`'s spans stored for `[start_ns, end_ns]`: sorted, at
    /// most `limit`. From the tag index's terms (a term counts where one of its spans
    /// is the tenant's).
    fn tag_values(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>>;
    /// Operations of a service, sorted.
    fn operations(&self, tenant: &str, service: &str) -> StoreResult<Vec<Operation>>;
    /// All spans of a trace, at any age within retention; empty when unknown.
    fn trace(&self, tenant: &str, trace_id: TraceId) -> StoreResult<Vec<Span>>;
    /// IDs of traces matching the query, most recent first.
    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>>;
    /// Service call graph from parent/child spans that started in `[start_ns, end_ns]`.
    fn dependencies(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> StoreResult<Vec<DependencyLink>>;

    /// [`TraceRead::trace`], plus a warning for each source that did not answer (see
    /// [`MetricRead::select_partial`]).
    fn trace_partial(
        &self,
        tenant: &str,
        trace_id: TraceId,
    ) -> StoreResult<(Vec<Span>, Vec<String>)> {
        Ok((self.trace(tenant, trace_id)?, Vec::new()))
    }

    /// [`TraceRead::find_trace_ids`], plus a warning for each source that did not
    /// answer.
    fn find_trace_ids_partial(&self, q: &TraceQuery) -> StoreResult<(Vec<TraceId>, Vec<String>)> {
        Ok((self.find_trace_ids(q)?, Vec::new()))
    }
}

/// Read access to metric series. Time bounds are inclusive, in ms.
pub trait MetricRead: Send + Sync {
    /// Samples of every series matching all `matchers` in `[start_ms, end_ms]`, series
    /// sorted by labels. Series with no sample in the range are left out.
    fn select(
        &self,
        tenant: &str,
        matchers: &[crate::metric::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::SeriesSamples>>;

    /// Label sets of series matching any of the matcher sets (all series when empty)
    /// with data in the range, sorted.
    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::Labels>>;

    /// Label names used by those series, sorted.
    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>>;

    /// Values of label `name` in those series, sorted.
    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>>;

    /// Metadata per metric family name (all families when `metric` is `None`).
    fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, Vec<crate::metric::MetricMetadata>>>;

    /// Exemplars of series matching any matcher set, in the range.
    fn exemplars(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::SeriesExemplars>>;

    /// [`MetricRead::select`], plus a warning for each source that did not answer: a
    /// store of several sources ([`MergedMetrics`]) answers with what it has rather than
    /// failing. A store of one source answers fully or fails.
    fn select_partial(
        &self,
        tenant: &str,
        matchers: &[crate::metric::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<(Vec<crate::metric::SeriesSamples>, Vec<String>)> {
        Ok((self.select(tenant, matchers, start_ms, end_ms)?, Vec::new()))
    }
}

/// The sorted, distinct label names of `series`.
pub fn label_names_of(series: &[crate::metric::Labels]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for labels in series {
        for (n, _) in labels.iter() {
            if !names.contains(n) {
                names.insert(n.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// The sorted, distinct values of label `name` in `series`.
pub fn label_values_of(series: &[crate::metric::Labels], name: &str) -> Vec<String> {
    let mut values = std::collections::BTreeSet::new();
    for labels in series {
        if let Some(v) = labels.get(name)
            && !values.contains(v)
        {
            values.insert(v.to_string());
        }
    }
    values.into_iter().collect()
}

/// Write access to metric series, for recording rules and the `ALERTS` series.
pub trait MetricWrite: Send + Sync {
    /// Stores `(labels, timestamp ms, value)` samples durably for a tenant; returns how
    /// many were refused (out of order or duplicate timestamps).
    fn append_samples(
        &self,
        tenant: &str,
        samples: Vec<(crate::metric::Labels, i64, f64)>,
    ) -> StoreResult<usize>;
}

mod merged;
mod retained;
pub use merged::{MergedLogs, MergedMetrics, MergedTraces};
pub use retained::Retained;
