//! Reads over two sources — what query servers read from object storage and what a
//! collector has not published yet — answered as one store would.

use super::*;

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
            Ok(r) => out.absorb(r, q),
            Err(StoreError::InvalidQuery(e)) => return Err(StoreError::InvalidQuery(e)),
            Err(e) => out
                .warnings
                .push(format!("{} did not answer: {e}", self.recent_name)),
        }
        Ok(out)
    }

    fn field_values(
        &self,
        tenant: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let a = self
            .published
            .field_values(tenant, field, start_ns, end_ns, limit)?;
        let b = match self
            .recent
            .field_values(tenant, field, start_ns, end_ns, limit)
        {
            Ok(b) => Some(b),
            Err(StoreError::InvalidQuery(e)) => return Err(StoreError::InvalidQuery(e)),
            Err(e) => {
                tracing::warn!(source = %self.recent_name, error = %e, "log field values: a source did not answer");
                None
            }
        };
        let mut all = union_sorted(a, b);
        all.truncate(limit);
        Ok(all)
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
/// be in both. A failing `recent` source is left out: the `_partial` reads say so,
/// the others log it.
pub struct MergedTraces {
    /// The published splits.
    pub published: std::sync::Arc<dyn TraceRead>,
    /// The collector's unpublished data.
    pub recent: std::sync::Arc<dyn TraceRead>,
    /// Name of `recent` in logs.
    pub recent_name: String,
}

impl MergedTraces {
    /// `r`, or the warning that says it is missing.
    fn recent_or_warning<T>(&self, r: StoreResult<T>) -> StoreResult<Result<T, String>> {
        match r {
            Ok(v) => Ok(Ok(v)),
            Err(StoreError::InvalidQuery(e)) => Err(StoreError::InvalidQuery(e)),
            Err(e) => Ok(Err(format!("{} did not answer: {e}", self.recent_name))),
        }
    }

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
    fn tag_values(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let a = self
            .published
            .tag_values(tenant, key, start_ns, end_ns, limit)?;
        let b = self.recent(
            "tags",
            self.recent.tag_values(tenant, key, start_ns, end_ns, limit),
        )?;
        let mut all = union_sorted(a, b);
        all.truncate(limit);
        Ok(all)
    }

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
        let (spans, warnings) = self.trace_partial(tenant, trace_id)?;
        for w in warnings {
            tracing::warn!(warning = %w, "partial answer");
        }
        Ok(spans)
    }

    fn trace_partial(
        &self,
        tenant: &str,
        trace_id: TraceId,
    ) -> StoreResult<(Vec<Span>, Vec<String>)> {
        let (mut spans, mut warnings) = self.published.trace_partial(tenant, trace_id)?;
        match self.recent_or_warning(self.recent.trace_partial(tenant, trace_id))? {
            Ok((more, w)) => {
                spans.extend(more);
                warnings.extend(w);
            }
            Err(w) => warnings.push(w),
        }
        spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
        spans.dedup_by(|a, b| a.span_id == b.span_id && a.start_ns == b.start_ns);
        Ok((spans, warnings))
    }

    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>> {
        let (ids, warnings) = self.find_trace_ids_partial(q)?;
        for w in warnings {
            tracing::warn!(warning = %w, "partial answer");
        }
        Ok(ids)
    }

    fn find_trace_ids_partial(&self, q: &TraceQuery) -> StoreResult<(Vec<TraceId>, Vec<String>)> {
        // Each source's most recent `limit` traces: the most recent `limit` overall are
        // among them. Recent data first, as it is newer.
        let (mut ids, mut warnings) =
            match self.recent_or_warning(self.recent.find_trace_ids_partial(q))? {
                Ok(r) => r,
                Err(w) => (Vec::new(), vec![w]),
            };
        let (published, w) = self.published.find_trace_ids_partial(q)?;
        warnings.extend(w);
        for id in published {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if q.order == super::TraceOrder::Recent {
            ids.truncate(q.limit);
        }
        Ok((ids, warnings))
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

/// Metric reads over two sources that may hold the same samples — published blocks in
/// object storage and a collector's head and local blocks, which keep a block's samples
/// for a grace period after it is published — merged as one store would answer: the
/// series united, a series' samples merged by timestamp (a sample in both counts once).
/// A failing `recent` source leaves the answer partial: [`MetricRead::select_partial`]
/// says so; label listings log it. Metadata and exemplars live in the collector's head
/// only, as in Prometheus, and come from `recent`.
pub struct MergedMetrics {
    /// The published blocks.
    pub published: std::sync::Arc<dyn MetricRead>,
    /// The collector's head and local blocks.
    pub recent: std::sync::Arc<dyn MetricRead>,
    /// Name of `recent` in warnings.
    pub recent_name: String,
}

impl MergedMetrics {
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

impl MetricRead for MergedMetrics {
    fn select(
        &self,
        tenant: &str,
        matchers: &[crate::metric::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::SeriesSamples>> {
        let (series, warnings) = self.select_partial(tenant, matchers, start_ms, end_ms)?;
        for w in warnings {
            tracing::warn!(warning = %w, "partial answer");
        }
        Ok(series)
    }

    fn select_partial(
        &self,
        tenant: &str,
        matchers: &[crate::metric::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<(Vec<crate::metric::SeriesSamples>, Vec<String>)> {
        let (recent, mut warnings) = match self
            .recent
            .select_partial(tenant, matchers, start_ms, end_ms)
        {
            Ok(r) => r,
            Err(StoreError::InvalidQuery(e)) => return Err(StoreError::InvalidQuery(e)),
            Err(e) => (
                Vec::new(),
                vec![format!("{} did not answer: {e}", self.recent_name)],
            ),
        };
        let (published, more) = self
            .published
            .select_partial(tenant, matchers, start_ms, end_ms)?;
        warnings.extend(more);
        let parts = recent
            .into_iter()
            .chain(published)
            .map(|s| (s.labels, s.samples))
            .collect();
        Ok((crate::metric::merge_series(parts), warnings))
    }

    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::Labels>> {
        let a = self
            .published
            .series(tenant, matcher_sets, start_ms, end_ms)?;
        let b = self.recent(
            "series",
            self.recent.series(tenant, matcher_sets, start_ms, end_ms),
        )?;
        Ok(union_sorted(a, b))
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let a = self
            .published
            .label_names(tenant, matcher_sets, start_ms, end_ms)?;
        let b = self.recent(
            "label names",
            self.recent
                .label_names(tenant, matcher_sets, start_ms, end_ms),
        )?;
        Ok(union_sorted(a, b))
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let a = self
            .published
            .label_values(tenant, name, matcher_sets, start_ms, end_ms)?;
        let b = self.recent(
            "label values",
            self.recent
                .label_values(tenant, name, matcher_sets, start_ms, end_ms),
        )?;
        Ok(union_sorted(a, b))
    }

    fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, Vec<crate::metric::MetricMetadata>>> {
        Ok(self
            .recent("metadata", self.recent.metadata(tenant, metric))?
            .unwrap_or_default())
    }

    fn exemplars(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::SeriesExemplars>> {
        Ok(self
            .recent(
                "exemplars",
                self.recent
                    .exemplars(tenant, matcher_sets, start_ms, end_ms),
            )?
            .unwrap_or_default())
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
        fn field_values(
            &self,
            _: &str,
            _: &str,
            _: i64,
            _: i64,
            _: usize,
        ) -> StoreResult<Vec<String>> {
            Ok(Vec::new())
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
            oldest_first: false,
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

    /// Fixed series, or a failure.
    struct Series(Option<Vec<crate::metric::SeriesSamples>>);

    impl MetricRead for Series {
        fn select(
            &self,
            _: &str,
            _: &[crate::metric::Matcher],
            _: i64,
            _: i64,
        ) -> StoreResult<Vec<crate::metric::SeriesSamples>> {
            self.0
                .clone()
                .ok_or_else(|| StoreError::Internal("connection refused".into()))
        }
        fn series(
            &self,
            t: &str,
            _: &[Vec<crate::metric::Matcher>],
            a: i64,
            b: i64,
        ) -> StoreResult<Vec<crate::metric::Labels>> {
            Ok(self
                .select(t, &[], a, b)?
                .into_iter()
                .map(|s| s.labels)
                .collect())
        }
        fn label_names(
            &self,
            t: &str,
            m: &[Vec<crate::metric::Matcher>],
            a: i64,
            b: i64,
        ) -> StoreResult<Vec<String>> {
            Ok(label_names_of(&self.series(t, m, a, b)?))
        }
        fn label_values(
            &self,
            t: &str,
            n: &str,
            m: &[Vec<crate::metric::Matcher>],
            a: i64,
            b: i64,
        ) -> StoreResult<Vec<String>> {
            Ok(label_values_of(&self.series(t, m, a, b)?, n))
        }
        fn metadata(
            &self,
            _: &str,
            _: Option<&str>,
        ) -> StoreResult<std::collections::BTreeMap<String, Vec<crate::metric::MetricMetadata>>>
        {
            Ok(Default::default())
        }
        fn exemplars(
            &self,
            _: &str,
            _: &[Vec<crate::metric::Matcher>],
            _: i64,
            _: i64,
        ) -> StoreResult<Vec<crate::metric::SeriesExemplars>> {
            Ok(Vec::new())
        }
    }

    fn series(job: &str, samples: &[(i64, f64)]) -> crate::metric::SeriesSamples {
        crate::metric::SeriesSamples {
            labels: crate::metric::Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("job".into(), job.into()),
            ]),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn merged_metrics_count_a_sample_in_both_sources_once_and_say_when_one_is_missing() {
        let merged = MergedMetrics {
            // A published block holds 1..=3 of "a"; the collector still holds 2..=3 of
            // it locally and 4 in its head, and "b" only.
            published: Arc::new(Series(Some(vec![series(
                "a",
                &[(1, 1.0), (2, 2.0), (3, 3.0)],
            )]))),
            recent: Arc::new(Series(Some(vec![
                series("a", &[(2, 2.0), (3, 3.0), (4, 4.0)]),
                series("b", &[(1, 9.0)]),
            ]))),
            recent_name: "collector".into(),
        };
        let (got, warnings) = merged.select_partial("t", &[], 0, 10).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].samples, vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]);
        assert_eq!(got[1].samples, vec![(1, 9.0)]);
        assert_eq!(
            merged.label_values("t", "job", &[], 0, 10).unwrap(),
            vec!["a", "b"]
        );

        let down = MergedMetrics {
            recent: Arc::new(Series(None)),
            ..merged
        };
        let (got, warnings) = down.select_partial("t", &[], 0, 10).unwrap();
        assert_eq!(got.len(), 1, "what is published is served");
        assert_eq!(warnings.len(), 1, "and the answer says it is partial");
        assert!(warnings[0].contains("collector did not answer"));
        assert_eq!(
            down.label_values("t", "job", &[], 0, 10).unwrap(),
            vec!["a"]
        );
    }
}
