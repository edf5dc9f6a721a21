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
}

/// Result of a log search.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LogSearchResult {
    /// Hits, newest first.
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

/// New records for a live tail, and where to continue from.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TailBatch {
    /// Matching records that arrived after the cursor, in arrival order.
    pub records: Vec<LogRecord>,
    /// Cursor to pass next time.
    pub cursor: u64,
}

/// Read access to logs.
pub trait LogRead: Send + Sync {
    /// Searches logs in a time range.
    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult>;

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
    /// Service of the matching span.
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

/// Log reads over two sources holding disjoint records — the splits a query server
/// reads from object storage and those a collector has not published yet — merged as
/// one store would answer: totals and histograms summed, hits newest first. A failing
/// `recent` source leaves the answer partial (a warning), never wrong; live tail reads
/// `recent` only, where new records are.
pub struct MergedLogs {
    /// The published splits.
    pub published: std::sync::Arc<dyn LogRead>,
    /// The collector's unpublished data.
    pub recent: std::sync::Arc<dyn LogRead>,
    /// Name of `recent` in warnings.
    pub recent_name: String,
}

impl LogRead for MergedLogs {
    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult> {
        let mut out = self.published.search(q)?;
        match self.recent.search(q) {
            Ok(r) => {
                out.total += r.total;
                if out.histogram.len() == r.histogram.len() {
                    for (a, b) in out.histogram.iter_mut().zip(&r.histogram) {
                        *a += b;
                    }
                }
                out.hits.extend(r.hits);
                out.hits.sort_by_key(|h| std::cmp::Reverse(h.timestamp_ns));
                out.hits.truncate(q.limit);
                out.warnings.extend(r.warnings);
            }
            Err(StoreError::InvalidQuery(e)) => return Err(StoreError::InvalidQuery(e)),
            Err(e) => out
                .warnings
                .push(format!("{} did not answer: {e}", self.recent_name)),
        }
        Ok(out)
    }

    fn tail(
        &self,
        tenant: &str,
        query: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<TailBatch> {
        self.recent.tail(tenant, query, cursor, limit)
    }
}

/// Trace reads over two sources (see [`MergedLogs`]): lists united, a trace's spans
/// united without duplicates (by span ID), call counts summed. Spans of one trace may
/// be in both. A failing `recent` source is logged and its part left out.
pub struct MergedTraces {
    /// The published splits.
    pub published: std::sync::Arc<dyn TraceRead>,
    /// The collector's unpublished data.
    pub recent: std::sync::Arc<dyn TraceRead>,
    /// Name of `recent` in logs.
    pub recent_name: String,
}

impl MergedTraces {
    fn recent<T>(&self, what: &str, r: StoreResult<T>) -> StoreResult<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::InvalidQuery(e)) => Err(StoreError::InvalidQuery(e)),
            Err(e) => {
                tracing::warn!(source = %self.recent_name, what, error = %e, "partial answer: a source did not answer");
                Ok(None)
            }
        }
    }
}

fn union_sorted<T: Ord>(mut a: Vec<T>, b: Option<Vec<T>>) -> Vec<T> {
    a.extend(b.unwrap_or_default());
    a.sort();
    a.dedup();
    a
}

impl TraceRead for MergedTraces {
    fn services(&self, tenant: &str) -> StoreResult<Vec<String>> {
        let a = self.published.services(tenant)?;
        let b = self.recent("services", self.recent.services(tenant))?;
        Ok(union_sorted(a, b))
    }

    fn operations(&self, tenant: &str, service: &str) -> StoreResult<Vec<Operation>> {
        let a = self.published.operations(tenant, service)?;
        let b = self.recent("operations", self.recent.operations(tenant, service))?;
        Ok(union_sorted(a, b))
    }

    fn trace(&self, tenant: &str, trace_id: TraceId) -> StoreResult<Vec<Span>> {
        let mut spans = self.published.trace(tenant, trace_id)?;
        if let Some(more) = self.recent("trace", self.recent.trace(tenant, trace_id))? {
            spans.extend(more);
        }
        spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
        spans.dedup_by(|a, b| a.span_id == b.span_id && a.start_ns == b.start_ns);
        Ok(spans)
    }

    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>> {
        // Each source's most recent `limit` traces: the most recent `limit` overall are
        // among them. Recent data first, as it is newer.
        let mut ids = self
            .recent("trace search", self.recent.find_trace_ids(q))?
            .unwrap_or_default();
        for id in self.published.find_trace_ids(q)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.truncate(q.limit);
        Ok(ids)
    }

    fn dependencies(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> StoreResult<Vec<DependencyLink>> {
        let mut links = self.published.dependencies(tenant, start_ns, end_ns)?;
        let more = self
            .recent(
                "dependencies",
                self.recent.dependencies(tenant, start_ns, end_ns),
            )?
            .unwrap_or_default();
        for l in more {
            match links
                .iter_mut()
                .find(|x| x.parent == l.parent && x.child == l.child)
            {
                Some(x) => x.call_count += l.call_count,
                None => links.push(l),
            }
        }
        links.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        Ok(links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A fixed answer, or a failure.
    struct Fixed(Option<LogSearchResult>);

    impl LogRead for Fixed {
        fn search(&self, _: &LogQuery) -> StoreResult<LogSearchResult> {
            self.0
                .clone()
                .ok_or_else(|| StoreError::Internal("connection refused".into()))
        }
        fn tail(&self, _: &str, _: &str, _: Option<u64>, _: usize) -> StoreResult<TailBatch> {
            Ok(TailBatch::default())
        }
    }

    fn record(ts: i64) -> LogRecord {
        LogRecord {
            tenant: "default".into(),
            timestamp_ns: ts,
            observed_ns: ts,
            severity_text: String::new(),
            severity_number: 0,
            body: String::new(),
            service: String::new(),
            host: String::new(),
            trace_id: None,
            span_id: None,
            source: String::new(),
            attributes: Vec::new(),
        }
    }

    fn result(ts: &[i64], hist: Vec<u64>) -> LogSearchResult {
        LogSearchResult {
            hits: ts.iter().map(|t| record(*t)).collect(),
            total: ts.len() as u64 + 10,
            bucket_ns: 5,
            histogram: hist,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn merged_searches_add_up_and_a_missing_source_is_reported_not_hidden() {
        let q = LogQuery {
            tenant: "default".into(),
            query: String::new(),
            start_ns: 0,
            end_ns: 10,
            limit: 3,
            histogram_buckets: 2,
        };
        let merged = MergedLogs {
            published: Arc::new(Fixed(Some(result(&[9, 5, 1], vec![1, 12])))),
            recent: Arc::new(Fixed(Some(result(&[8, 7], vec![2, 10])))),
            recent_name: "collector".into(),
        };
        let r = merged.search(&q).unwrap();
        assert_eq!(r.total, 13 + 12);
        assert_eq!(r.histogram, vec![3, 22]);
        let ts: Vec<i64> = r.hits.iter().map(|h| h.timestamp_ns).collect();
        assert_eq!(
            ts,
            vec![9, 8, 7],
            "newest first across sources, cut at the limit"
        );
        assert!(r.warnings.is_empty());

        let down = MergedLogs {
            recent: Arc::new(Fixed(None)),
            ..merged
        };
        let r = down.search(&q).unwrap();
        assert_eq!(r.total, 13, "what is there is right");
        assert_eq!(r.warnings.len(), 1, "and it says it is partial");
        assert!(
            r.warnings[0].contains("collector did not answer"),
            "{:?}",
            r.warnings
        );
    }
}
