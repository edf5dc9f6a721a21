//! The query server's view of every live collector: what none of them has published yet,
//! asked of all of them in parallel and merged as one store would answer.
//!
//! The collectors are the nodes whose lease in the metastore lasts (or a fixed list,
//! `query.collector_url`), refreshed with the listing of published splits. Each question
//! goes to all of them at once, each with the query timeout; answers are merged —
//! log hits newest first with totals and histograms summed, a trace's spans united
//! without duplicates (a trace's spans may land on several collectors), call counts
//! summed, PromQL series united with samples merged by timestamp — and a collector that
//! did not answer is named in the answer's warnings (`partial: true`) rather than
//! failing it. Live tail keeps one cursor per collector behind the cursor it hands out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use triad_metastore::Metastore;
use triad_model::metric::{
    Labels, Matcher, MetricMetadata, SeriesExemplars, SeriesSamples, merge_series,
};
use triad_model::store::{
    DependencyLink, LogQuery, LogRead, LogSearchResult, MetricRead, Operation, StoreError,
    StoreResult, TailBatch, TraceQuery, TraceRead,
};
use triad_model::{Span, TraceId};

use crate::internal::{CollectorReader, Exclusions};
use crate::remote_read::RemoteReader;

/// One collector's readers.
struct Member {
    /// Its node ID (or address, for a fixed list).
    name: String,
    address: String,
    reader: CollectorReader,
    remote_read: RemoteReader,
}

/// Live tail sessions kept at most (the oldest is forgotten: its next poll starts over
/// from "now").
const MAX_TAILS: usize = 1024;

/// Every live collector, as one store; see the module docs.
pub struct Collectors {
    /// `Some`: these addresses, always; `None`: the live nodes of the metastore.
    fixed: Option<Vec<String>>,
    metastore: Metastore,
    timeout: Duration,
    exclusions: Exclusions,
    members: RwLock<Vec<Arc<Member>>>,
    /// The runtime the readers' requests run on (each question's threads enter it).
    handle: tokio::runtime::Handle,
    /// Warnings for registered collectors whose lease expired without leaving cleanly:
    /// what they had not published is missing until they return.
    down: RwLock<Vec<String>>,
    /// Tail cursor handed out → each collector's cursor.
    tails: Mutex<BTreeMap<u64, HashMap<String, u64>>>,
}

impl Collectors {
    /// The collectors at `fixed` addresses, or (empty) the live nodes `metastore` lists;
    /// call [`Collectors::refresh`] before serving. Must be created inside the Tokio
    /// runtime its readers use.
    pub fn new(
        fixed: Vec<String>,
        metastore: Metastore,
        timeout: Duration,
        exclusions: Exclusions,
    ) -> Result<Collectors, String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "the collectors' readers need the Tokio runtime".to_string())?;
        Ok(Collectors {
            handle,
            fixed: (!fixed.is_empty()).then_some(fixed),
            metastore,
            timeout,
            exclusions,
            members: RwLock::new(Vec::new()),
            down: RwLock::new(Vec::new()),
            tails: Mutex::new(BTreeMap::new()),
        })
    }

    /// Updates the list of collectors: the live nodes' addresses (or the fixed list).
    /// Returns how many there are.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut down = Vec::new();
        let wanted: Vec<(String, String)> = match &self.fixed {
            Some(urls) => urls.iter().map(|u| (u.clone(), u.clone())).collect(),
            None => {
                let nodes = self
                    .metastore
                    .nodes()
                    .await
                    .map_err(|e| format!("listing live collectors: {e}"))?;
                let now_ms = triad_model::now_ns() / 1_000_000;
                for n in nodes.iter().filter(|n| !n.live && n.lease_until_ms > 0) {
                    down.push(format!(
                        "collector {} has been down for {} s (its lease expired): what it \
                         had not published yet is missing until it returns",
                        n.node_id,
                        (now_ms - n.lease_until_ms).max(0) / 1000
                    ));
                }
                nodes
                    .into_iter()
                    .filter(|n| n.live)
                    .map(|n| (n.node_id, n.address))
                    .collect()
            }
        };
        if let Ok(mut d) = self.down.write() {
            *d = down;
        }
        let current = self.members();
        let mut next = Vec::with_capacity(wanted.len());
        for (name, address) in wanted {
            match current
                .iter()
                .find(|m| m.name == name && m.address == address)
            {
                Some(m) => next.push(m.clone()),
                None => {
                    let base = address.trim_end_matches('/');
                    next.push(Arc::new(Member {
                        reader: CollectorReader::new(base, self.timeout, self.exclusions.clone())?,
                        remote_read: RemoteReader::new(
                            &format!("{base}/api/v1/read"),
                            self.timeout,
                        )?,
                        name,
                        address,
                    }));
                }
            }
        }
        let n = next.len();
        *self
            .members
            .write()
            .map_err(|_| "collectors lock poisoned".to_string())? = next;
        Ok(n)
    }

    /// The collectors' base URLs, as of the last refresh.
    pub fn addresses(&self) -> Vec<String> {
        self.members().iter().map(|m| m.address.clone()).collect()
    }

    fn members(&self) -> Vec<Arc<Member>> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Asks every collector `ask` at once; each answer, or the warning that says it
    /// is missing. An invalid query is the same for all: it fails the whole.
    fn each<T: Send>(
        &self,
        ask: impl Fn(&Member) -> StoreResult<T> + Sync,
    ) -> StoreResult<(Vec<T>, Vec<String>)> {
        let members = self.members();
        let mut warnings = self.down.read().map(|d| d.clone()).unwrap_or_default();
        if members.is_empty() {
            warnings.push("no live collector to ask for unpublished data".into());
            return Ok((Vec::new(), warnings));
        }
        let results: Vec<(String, StoreResult<T>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = members
                .iter()
                .map(|m| {
                    let (ask, handle) = (&ask, &self.handle);
                    (
                        m.name.clone(),
                        scope.spawn(move || {
                            // The HTTP client sets its timers up in the runtime.
                            let _entered = handle.enter();
                            ask(m)
                        }),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err(StoreError::Internal("reader panicked".into())));
                    (name, r)
                })
                .collect()
        });
        let mut answers = Vec::with_capacity(results.len());
        for (name, r) in results {
            match r {
                Ok(v) => answers.push(v),
                Err(StoreError::InvalidQuery(e)) => return Err(StoreError::InvalidQuery(e)),
                Err(e) => warnings.push(format!("collector {name} did not answer: {e}")),
            }
        }
        Ok((answers, warnings))
    }

    /// Like [`Collectors::each`], the warnings logged (for answers without a place for
    /// them).
    fn each_logged<T: Send>(
        &self,
        what: &str,
        ask: impl Fn(&Member) -> StoreResult<T> + Sync,
    ) -> StoreResult<Vec<T>> {
        let (answers, warnings) = self.each(ask)?;
        for w in warnings {
            tracing::warn!(what, warning = %w, "partial answer");
        }
        Ok(answers)
    }
}

fn union_sorted<T: Ord>(lists: Vec<Vec<T>>) -> Vec<T> {
    let mut all: Vec<T> = lists.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    all
}

impl LogRead for Collectors {
    fn field_values(
        &self,
        tenant: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut all = union_sorted(self.each_logged("log field values", |m| {
            m.reader
                .field_values(tenant, field, start_ns, end_ns, limit)
        })?);
        all.truncate(limit);
        Ok(all)
    }

    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult> {
        let (answers, warnings) = self.each(|m| m.reader.search(q))?;
        let mut out = LogSearchResult {
            hits: Vec::new(),
            total: 0,
            bucket_ns: 0,
            histogram: Vec::new(),
            warnings,
        };
        for r in answers {
            out.absorb(r, q);
        }
        if out.histogram.is_empty() && q.histogram_buckets > 0 {
            out.histogram = vec![0; q.histogram_buckets];
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
        let known: HashMap<String, u64> = cursor
            .and_then(|c| {
                self.tails
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&c)
                    .cloned()
            })
            .unwrap_or_default();
        // A collector new to this session starts at "now", as the session did.
        let answers = self.each_logged("tail", |m| {
            let batch = m
                .reader
                .tail(tenant, query, known.get(&m.name).copied(), limit)?;
            Ok((m.name.clone(), batch))
        })?;
        let mut cursors = known;
        let mut records = Vec::new();
        for (name, batch) in answers {
            cursors.insert(name, batch.cursor);
            records.extend(batch.records);
        }
        records.sort_by_key(|r| r.observed_ns);
        let mut tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        let handle = match cursor.filter(|c| tails.contains_key(c)) {
            Some(c) => c,
            None => {
                let next = tails.keys().next_back().map_or(1, |k| k + 1);
                while tails.len() >= MAX_TAILS {
                    tails.pop_first();
                }
                next
            }
        };
        tails.insert(handle, cursors);
        Ok(TailBatch {
            records,
            cursor: handle,
        })
    }
}

impl TraceRead for Collectors {
    fn tag_values(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut all = union_sorted(self.each_logged("tags", |m| {
            m.reader.tag_values(tenant, key, start_ns, end_ns, limit)
        })?);
        all.truncate(limit);
        Ok(all)
    }

    fn services(&self, tenant: &str) -> StoreResult<Vec<String>> {
        Ok(union_sorted(
            self.each_logged("services", |m| m.reader.services(tenant))?,
        ))
    }

    fn operations(&self, tenant: &str, service: &str) -> StoreResult<Vec<Operation>> {
        Ok(union_sorted(self.each_logged("operations", |m| {
            m.reader.operations(tenant, service)
        })?))
    }

    fn trace(&self, tenant: &str, trace_id: TraceId) -> StoreResult<Vec<Span>> {
        Ok(self.trace_partial(tenant, trace_id)?.0)
    }

    fn trace_partial(
        &self,
        tenant: &str,
        trace_id: TraceId,
    ) -> StoreResult<(Vec<Span>, Vec<String>)> {
        let (answers, warnings) = self.each(|m| m.reader.trace(tenant, trace_id))?;
        let mut spans: Vec<Span> = answers.into_iter().flatten().collect();
        spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
        spans.dedup_by(|a, b| a.span_id == b.span_id && a.start_ns == b.start_ns);
        Ok((spans, warnings))
    }

    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>> {
        Ok(self.find_trace_ids_partial(q)?.0)
    }

    fn find_trace_ids_partial(&self, q: &TraceQuery) -> StoreResult<(Vec<TraceId>, Vec<String>)> {
        // Each collector's most recent `limit`; interleaved so that none crowds out
        // the others before the cut.
        let (answers, warnings) = self.each(|m| m.reader.find_trace_ids(q))?;
        let mut ids = Vec::new();
        let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for a in &answers {
                if let Some(id) = a.get(i)
                    && !ids.contains(id)
                {
                    ids.push(*id);
                }
            }
        }
        if q.order == triad_model::store::TraceOrder::Recent {
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
        let mut links: Vec<DependencyLink> = Vec::new();
        for l in self
            .each_logged("dependencies", |m| {
                m.reader.dependencies(tenant, start_ns, end_ns)
            })?
            .into_iter()
            .flatten()
        {
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

impl MetricRead for Collectors {
    fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesSamples>> {
        let (series, warnings) = self.select_partial(tenant, matchers, start_ms, end_ms)?;
        for w in warnings {
            tracing::warn!(warning = %w, "partial answer");
        }
        Ok(series)
    }

    fn select_partial(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<(Vec<SeriesSamples>, Vec<String>)> {
        let (answers, warnings) =
            self.each(|m| m.remote_read.select(tenant, matchers, start_ms, end_ms))?;
        let parts = answers
            .into_iter()
            .flatten()
            .map(|s| (s.labels, s.samples))
            .collect();
        Ok((merge_series(parts), warnings))
    }

    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<Labels>> {
        Ok(union_sorted(self.each_logged("series", |m| {
            m.remote_read.series(tenant, matcher_sets, start_ms, end_ms)
        })?))
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(union_sorted(self.each_logged("label names", |m| {
            m.remote_read
                .label_names(tenant, matcher_sets, start_ms, end_ms)
        })?))
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(union_sorted(self.each_logged("label values", |m| {
            m.remote_read
                .label_values(tenant, name, matcher_sets, start_ms, end_ms)
        })?))
    }

    fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StoreResult<BTreeMap<String, Vec<MetricMetadata>>> {
        let mut out: BTreeMap<String, Vec<MetricMetadata>> = BTreeMap::new();
        for answer in self.each_logged("metadata", |m| m.remote_read.metadata(tenant, metric))? {
            for (name, ms) in answer {
                let entry = out.entry(name).or_default();
                for md in ms {
                    if !entry.contains(&md) {
                        entry.push(md);
                    }
                }
            }
        }
        Ok(out)
    }

    fn exemplars(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesExemplars>> {
        Ok(self
            .each_logged("exemplars", |m| {
                m.remote_read
                    .exemplars(tenant, matcher_sets, start_ms, end_ms)
            })?
            .into_iter()
            .flatten()
            .collect())
    }
}
