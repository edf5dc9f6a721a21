//! Reads that end at each tenant's retention: a tenant with its own retention
//! (`limits.tenants.<name>.*_retention_secs`) does not see its records past it, though
//! the split holding them stays while another tenant's records in it are kept (see
//! [`crate::config::Retention`]).

use std::sync::Arc;

use super::*;
use crate::config::Retention;

/// A store whose reads start, for each tenant with its own retention, at that
/// retention's horizon.
pub struct Retained<T: ?Sized> {
    inner: Arc<T>,
    retention: Retention,
}

impl<T: ?Sized> Retained<T> {
    /// `inner` read within `retention`.
    pub fn new(inner: Arc<T>, retention: Retention) -> Retained<T> {
        Retained { inner, retention }
    }

    /// The first ns `tenant` may read, when its retention limits it.
    fn horizon_ns(&self, tenant: &str) -> Option<i64> {
        self.retention.horizon_ns(tenant, crate::now_ns())
    }

    /// `start_ns` moved up to `tenant`'s horizon.
    fn start_ns(&self, tenant: &str, start_ns: i64) -> i64 {
        self.horizon_ns(tenant)
            .map_or(start_ns, |h| start_ns.max(h))
    }

    /// `read` of `tenant`'s `[start_ns, end_ns]` from its horizon on: it gets the start
    /// moved up; a range wholly before the horizon reads nothing.
    fn read_from_horizon_ns<R: Default>(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
        read: impl FnOnce(i64) -> StoreResult<R>,
    ) -> StoreResult<R> {
        match self.start_ns(tenant, start_ns) {
            start if start > end_ns => Ok(R::default()),
            start => read(start),
        }
    }

    /// [`Retained::read_from_horizon_ns`] in ms.
    fn read_from_horizon_ms<R: Default>(
        &self,
        tenant: &str,
        start_ms: i64,
        end_ms: i64,
        read: impl FnOnce(i64) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let start = self
            .horizon_ns(tenant)
            .map_or(start_ms, |h| start_ms.max(h.div_euclid(1_000_000)));
        if start > end_ms {
            return Ok(R::default());
        }
        read(start)
    }
}

impl LogRead for Retained<dyn LogRead> {
    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult> {
        let start_ns = self.start_ns(&q.tenant, q.start_ns);
        if start_ns == q.start_ns {
            return self.inner.search(q);
        }
        let q = LogQuery {
            start_ns: start_ns.min(q.end_ns),
            ..q.clone()
        };
        self.inner.search(&q)
    }

    fn field_values(
        &self,
        tenant: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.read_from_horizon_ns(tenant, start_ns, end_ns, |start_ns| {
            self.inner
                .field_values(tenant, field, start_ns, end_ns, limit)
        })
    }

    fn tail(
        &self,
        tenant: &str,
        query: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<TailBatch> {
        // New records only.
        self.inner.tail(tenant, query, cursor, limit)
    }
}

impl Retained<dyn TraceRead> {
    /// `spans` without those that started before `tenant`'s horizon.
    fn within(&self, tenant: &str, mut spans: Vec<Span>) -> Vec<Span> {
        if let Some(h) = self.horizon_ns(tenant) {
            spans.retain(|s| s.start_ns >= h);
        }
        spans
    }

    fn query(&self, q: &TraceQuery) -> Option<TraceQuery> {
        let start_ns = self.start_ns(&q.tenant, q.start_ns);
        (start_ns != q.start_ns).then(|| TraceQuery {
            start_ns: start_ns.min(q.end_ns),
            ..q.clone()
        })
    }
}

impl TraceRead for Retained<dyn TraceRead> {
    fn services(&self, tenant: &str) -> StoreResult<Vec<String>> {
        self.inner.services(tenant)
    }

    fn tag_values(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.read_from_horizon_ns(tenant, start_ns, end_ns, |start_ns| {
            self.inner.tag_values(tenant, key, start_ns, end_ns, limit)
        })
    }

    fn operations(&self, tenant: &str, service: &str) -> StoreResult<Vec<Operation>> {
        self.inner.operations(tenant, service)
    }

    fn trace(&self, tenant: &str, trace_id: TraceId) -> StoreResult<Vec<Span>> {
        Ok(self.within(tenant, self.inner.trace(tenant, trace_id)?))
    }

    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>> {
        match self.query(q) {
            Some(q) => self.inner.find_trace_ids(&q),
            None => self.inner.find_trace_ids(q),
        }
    }

    fn dependencies(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> StoreResult<Vec<DependencyLink>> {
        self.read_from_horizon_ns(tenant, start_ns, end_ns, |start_ns| {
            self.inner.dependencies(tenant, start_ns, end_ns)
        })
    }

    fn trace_partial(
        &self,
        tenant: &str,
        trace_id: TraceId,
    ) -> StoreResult<(Vec<Span>, Vec<String>)> {
        let (spans, warnings) = self.inner.trace_partial(tenant, trace_id)?;
        Ok((self.within(tenant, spans), warnings))
    }

    fn find_trace_ids_partial(&self, q: &TraceQuery) -> StoreResult<(Vec<TraceId>, Vec<String>)> {
        match self.query(q) {
            Some(q) => self.inner.find_trace_ids_partial(&q),
            None => self.inner.find_trace_ids_partial(q),
        }
    }
}

impl MetricRead for Retained<dyn MetricRead> {
    fn select(
        &self,
        tenant: &str,
        matchers: &[crate::metric::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::SeriesSamples>> {
        self.read_from_horizon_ms(tenant, start_ms, end_ms, |start_ms| {
            self.inner.select(tenant, matchers, start_ms, end_ms)
        })
    }

    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::Labels>> {
        self.read_from_horizon_ms(tenant, start_ms, end_ms, |start_ms| {
            self.inner.series(tenant, matcher_sets, start_ms, end_ms)
        })
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        self.read_from_horizon_ms(tenant, start_ms, end_ms, |start_ms| {
            self.inner
                .label_names(tenant, matcher_sets, start_ms, end_ms)
        })
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        self.read_from_horizon_ms(tenant, start_ms, end_ms, |start_ms| {
            self.inner
                .label_values(tenant, name, matcher_sets, start_ms, end_ms)
        })
    }

    fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, Vec<crate::metric::MetricMetadata>>> {
        self.inner.metadata(tenant, metric)
    }

    fn exemplars(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<crate::metric::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<crate::metric::SeriesExemplars>> {
        self.read_from_horizon_ms(tenant, start_ms, end_ms, |start_ms| {
            self.inner.exemplars(tenant, matcher_sets, start_ms, end_ms)
        })
    }

    fn select_partial(
        &self,
        tenant: &str,
        matchers: &[crate::metric::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<(Vec<crate::metric::SeriesSamples>, Vec<String>)> {
        self.read_from_horizon_ms(tenant, start_ms, end_ms, |start_ms| {
            self.inner
                .select_partial(tenant, matchers, start_ms, end_ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{Labels, Matcher, SeriesSamples};

    /// Every series has a sample each second of the last hour.
    struct Hour;

    impl MetricRead for Hour {
        fn select(
            &self,
            _: &str,
            _: &[Matcher],
            start_ms: i64,
            end_ms: i64,
        ) -> StoreResult<Vec<SeriesSamples>> {
            let now = crate::now_ns() / 1_000_000;
            let samples: Vec<(i64, f64)> = (0..3600)
                .map(|i| (now - i * 1000, 1.0))
                .filter(|(t, _)| *t >= start_ms && *t <= end_ms)
                .collect();
            Ok(vec![SeriesSamples {
                labels: Labels::new(vec![("__name__".into(), "up".into())]),
                samples,
            }])
        }
        fn series(&self, _: &str, _: &[Vec<Matcher>], _: i64, _: i64) -> StoreResult<Vec<Labels>> {
            Ok(Vec::new())
        }
        fn label_names(
            &self,
            _: &str,
            _: &[Vec<Matcher>],
            _: i64,
            _: i64,
        ) -> StoreResult<Vec<String>> {
            Ok(Vec::new())
        }
        fn label_values(
            &self,
            _: &str,
            _: &str,
            _: &[Vec<Matcher>],
            _: i64,
            _: i64,
        ) -> StoreResult<Vec<String>> {
            Ok(Vec::new())
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
            _: &[Vec<Matcher>],
            _: i64,
            _: i64,
        ) -> StoreResult<Vec<crate::metric::SeriesExemplars>> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_tenant_with_its_own_retention_reads_from_its_horizon() {
        let inner: Arc<dyn MetricRead> = Arc::new(Hour);
        let r = Retained::new(
            inner,
            Retention {
                default_secs: 7 * 86_400,
                tenants: [("short".to_string(), 600)].into(),
            },
        );
        let now = crate::now_ns() / 1_000_000;
        let count = |tenant: &str| {
            r.select(tenant, &[], now - 7_200_000, now).unwrap()[0]
                .samples
                .len()
        };
        assert_eq!(count("other"), 3600);
        let short = count("short");
        assert!((599..=601).contains(&short), "{short}");
        // A range wholly past the horizon is empty without asking the store.
        assert!(
            r.select("short", &[], now - 7_200_000, now - 3_600_000)
                .unwrap()
                .is_empty()
        );
    }
}
