//! The trace store: spans in time-bounded tantivy splits.
//!
//! - **Trace by ID** looks the `trace_id` term up in every split's term dictionary: no
//!   time window is involved, so a trace is found at any age within retention (unlike
//!   Quickwit #5579). One FST lookup per split keeps it in the sub-millisecond range for
//!   the hundreds of splits a week of hourly splits makes.
//! - **Search** (service, operation, tags, duration, time range) is a boolean query over
//!   indexed terms and fast fields; a collector keeps, per trace, its latest matching
//!   span start, so one busy trace cannot crowd the others out of the result.
//! - **Services and operations** live in an in-memory catalog, updated on append and
//!   rebuilt at start and after retention from the `svc_op` terms of the splits.
//!
//! | field | indexed as | for |
//! |---|---|---|
//! | `tenant`, `service`, `operation` | raw term | filters |
//! | `svc_op` | raw term `tenant␟service␟kind␟name` | the catalog |
//! | `trace_id` | raw bytes term | trace by ID |
//! | `trace_hi`, `trace_lo`, `span_id`, `parent_id` | u64 fast fields | dedupe, dependencies |
//! | `start`, `duration` | i64 fast fields | time and duration filters, sort |
//! | `tags` | raw terms `key=value` | Jaeger tag search (attributes, resource, `error`, `span.kind`) |
//! | `doc` | stored bytes (postcard) | the span returned to the user |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{BytesOptions, FAST, Field, IndexRecordOption, Schema, Value};
use tantivy::{DocId, Index, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};
use triad_model::store::{
    DependencyLink, Operation, StoreError, StoreResult, TraceOrder, TraceQuery, TraceRead,
};
use triad_model::{Span, SpanId, SpanKind, TraceId};

use crate::error::Result;
use crate::store::{Signal, Store};

/// Separator inside `svc_op` terms (ASCII unit separator; cannot occur in sane names).
const SEP: char = '\u{1f}';
/// Most spans returned for one trace; a larger trace is cut (and says so in the log).
const MAX_SPANS_PER_TRACE: usize = 100_000;
/// Most spans a dependency computation reads.
const MAX_DEPENDENCY_SPANS: usize = 20_000_000;

/// Field handles of the span schema.
#[derive(Clone)]
pub struct SpanSignal {
    schema: Schema,
    tenant: Field,
    trace_id: Field,
    trace_hi: Field,
    trace_lo: Field,
    span_id: Field,
    parent_id: Field,
    service: Field,
    operation: Field,
    svc_op: Field,
    start: Field,
    duration: Field,
    seq: Field,
    tags: Field,
    doc: Field,
}

impl Default for SpanSignal {
    fn default() -> Self {
        Self::new()
    }
}

fn split_trace_id(t: TraceId) -> (u64, u64) {
    let hi = u64::from_be_bytes(t.0[..8].try_into().unwrap_or_default());
    let lo = u64::from_be_bytes(t.0[8..].try_into().unwrap_or_default());
    (hi, lo)
}

fn join_trace_id(hi: u64, lo: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    TraceId(b)
}

/// The tag terms a span is searchable by, as Jaeger shows them.
fn tag_terms(s: &Span) -> Vec<String> {
    let mut tags: Vec<String> = s
        .attributes
        .iter()
        .chain(&s.resource)
        .map(|kv| format!("{}={}", kv.key, kv.value.to_text()))
        .collect();
    if s.is_error() {
        tags.push("error=true".into());
        tags.push("otel.status_code=ERROR".into());
    }
    if s.kind != SpanKind::Unspecified {
        tags.push(format!("span.kind={}", s.kind.as_str()));
    }
    tags
}

impl SpanSignal {
    /// Builds the schema.
    pub fn new() -> Self {
        let mut b = Schema::builder();
        let raw = crate::tokenizer::term_options("raw");
        let tenant = b.add_text_field("tenant", raw.clone());
        let trace_id = b.add_bytes_field("trace_id", BytesOptions::default().set_indexed());
        let trace_hi = b.add_u64_field("trace_hi", FAST);
        let trace_lo = b.add_u64_field("trace_lo", FAST);
        let span_id = b.add_u64_field("span_id", FAST);
        let parent_id = b.add_u64_field("parent_id", FAST);
        let service = b.add_text_field("service", raw.clone() | FAST);
        let operation = b.add_text_field("operation", raw.clone());
        let svc_op = b.add_text_field("svc_op", raw.clone());
        let start = b.add_i64_field("start", FAST);
        let duration = b.add_i64_field("duration", FAST);
        let seq = b.add_u64_field("seq", FAST);
        let tags = b.add_text_field("tags", raw);
        let doc = b.add_bytes_field("doc", BytesOptions::default().set_stored());
        Self {
            schema: b.build(),
            tenant,
            trace_id,
            trace_hi,
            trace_lo,
            span_id,
            parent_id,
            service,
            operation,
            svc_op,
            start,
            duration,
            seq,
            tags,
            doc,
        }
    }

    fn term_query(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    }
}

impl Signal for SpanSignal {
    type Record = Span;
    const NAME: &'static str = "traces";

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn configure(&self, _index: &Index) {}

    fn document(&self, s: &Span, seq: u64) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        let (hi, lo) = split_trace_id(s.trace_id);
        d.add_text(self.tenant, &s.tenant);
        d.add_bytes(self.trace_id, &s.trace_id.0);
        d.add_u64(self.trace_hi, hi);
        d.add_u64(self.trace_lo, lo);
        d.add_u64(self.span_id, s.span_id.to_u64());
        d.add_u64(
            self.parent_id,
            s.parent_span_id.map(SpanId::to_u64).unwrap_or(0),
        );
        d.add_text(self.service, &s.service);
        d.add_text(self.operation, &s.name);
        d.add_text(
            self.svc_op,
            catalog_term(&s.tenant, &s.service, s.kind, &s.name),
        );
        d.add_i64(self.start, s.start_ns);
        d.add_i64(self.duration, s.duration_ns());
        d.add_u64(self.seq, seq);
        for t in tag_terms(s) {
            d.add_text(self.tags, t);
        }
        d.add_bytes(self.doc, &postcard::to_stdvec(s).unwrap_or_default());
        d
    }

    fn timestamp_ns(s: &Span) -> i64 {
        s.start_ns
    }
}

fn catalog_term(tenant: &str, service: &str, kind: SpanKind, name: &str) -> String {
    format!("{tenant}{SEP}{service}{SEP}{}{SEP}{name}", kind.as_str())
}

type Catalog = HashMap<String, BTreeMap<String, BTreeSet<Operation>>>;

/// An entry of the services catalog: tenant, service, operation.
pub type CatalogEntry = (String, String, Operation);

/// The trace store: a [`Store`] of [`SpanSignal`] with the read operations.
pub struct TraceStore {
    store: Arc<Store<SpanSignal>>,
    catalog: RwLock<Catalog>,
}

impl TraceStore {
    /// Wraps an opened store and builds the service catalog from its splits.
    pub fn new(store: Arc<Store<SpanSignal>>) -> Result<Self> {
        let ts = Self {
            store,
            catalog: RwLock::new(HashMap::new()),
        };
        ts.rebuild_catalog()?;
        Ok(ts)
    }

    /// Wraps a store without building a catalog: for short-lived views that answer
    /// trace, search and dependency reads only (services and operations come back empty).
    pub fn without_catalog(store: Arc<Store<SpanSignal>>) -> Self {
        Self {
            store,
            catalog: RwLock::new(HashMap::new()),
        }
    }

    /// The underlying store (append, retention, shutdown).
    pub fn store(&self) -> &Arc<Store<SpanSignal>> {
        &self.store
    }

    /// Makes spans durable and adds their services and operations to the catalog.
    pub async fn append(&self, spans: Vec<Span>) -> Result<()> {
        let mut new_ops: Vec<(String, String, Operation)> = Vec::new();
        {
            let cat = self.catalog.read().unwrap_or_else(|e| e.into_inner());
            for s in &spans {
                let op = Operation {
                    name: s.name.clone(),
                    kind: s.kind,
                };
                let known = cat
                    .get(&s.tenant)
                    .and_then(|t| t.get(&s.service))
                    .is_some_and(|ops| ops.contains(&op));
                if !known {
                    new_ops.push((s.tenant.clone(), s.service.clone(), op));
                }
            }
        }
        self.store.append(spans).await?;
        if !new_ops.is_empty() {
            let mut cat = self.catalog.write().unwrap_or_else(|e| e.into_inner());
            for (tenant, service, op) in new_ops {
                cat.entry(tenant)
                    .or_default()
                    .entry(service)
                    .or_default()
                    .insert(op);
            }
        }
        Ok(())
    }

    /// Rebuilds the catalog from the splits' `svc_op` terms (after open and retention).
    pub fn rebuild_catalog(&self) -> Result<()> {
        let mut entries = Vec::new();
        for searcher in self.store.all_searchers() {
            entries.extend(self.searcher_operations(&searcher)?);
        }
        self.set_catalog(entries);
        Ok(())
    }

    /// Replaces the catalog: for a view whose catalog is kept elsewhere (the
    /// metastore's, in object-storage mode).
    pub fn set_catalog(&self, entries: impl IntoIterator<Item = CatalogEntry>) {
        let mut cat: Catalog = HashMap::new();
        for (tenant, service, op) in entries {
            cat.entry(tenant)
                .or_default()
                .entry(service)
                .or_default()
                .insert(op);
        }
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = cat;
    }

    /// Every entry of the catalog.
    pub fn catalog_entries(&self) -> Vec<CatalogEntry> {
        let cat = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        cat.iter()
            .flat_map(|(tenant, services)| {
                services.iter().flat_map(move |(service, ops)| {
                    ops.iter()
                        .map(move |op| (tenant.clone(), service.clone(), op.clone()))
                })
            })
            .collect()
    }

    /// Distinct attribute keys (`key` `None`) or values of attribute `key` among the
    /// `key=value` terms of the `tags` field of `tenant`'s spans, in the splits
    /// overlapping `[start_ns, end_ns]`: sorted, at most `limit`. The term dictionary
    /// answers without reading a document (a term is the tenant's if one of its
    /// postings is); listing keys seeks past each key's values.
    pub fn tag_terms(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let field = self.store.signal().tags;
        let mut out = std::collections::BTreeSet::new();
        for searcher in self.store.searchers(start_ns, end_ns) {
            for seg in searcher.segment_readers() {
                let mine =
                    crate::tenant_terms::TenantTerms::new(seg, self.store.signal().tenant, tenant)?;
                if mine.absent() {
                    continue;
                }
                let inv = seg.inverted_index(field)?;
                let dict = inv.terms();
                match key {
                    Some(k) => {
                        let prefix = format!("{k}=");
                        // '>' follows '=': the first term past every `k=…`.
                        let end = format!("{k}>");
                        let mut stream = dict
                            .range()
                            .ge(prefix.as_bytes())
                            .lt(end.as_bytes())
                            .into_stream()
                            .map_err(crate::Error::io("read tag terms"))?;
                        while stream.advance() {
                            if let Ok(t) = std::str::from_utf8(stream.key())
                                && mine.admits(&inv, stream.value())?
                            {
                                out.insert(t[prefix.len()..].to_string());
                            }
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                    None => {
                        let mut from: Vec<u8> = Vec::new();
                        loop {
                            let mut stream = dict
                                .range()
                                .ge(&from)
                                .into_stream()
                                .map_err(crate::Error::io("read tag terms"))?;
                            if !stream.advance() {
                                break;
                            }
                            let term = stream.key();
                            let Some(eq) = term.iter().position(|b| *b == b'=') else {
                                // Not a key=value term: step past it.
                                from = term.to_vec();
                                from.push(0);
                                continue;
                            };
                            let key = term[..eq].to_vec();
                            // The key is the tenant's if one of its values is.
                            let mut end = key.clone();
                            end.push(b'>');
                            let mut values = dict
                                .range()
                                .ge(term)
                                .lt(&end)
                                .into_stream()
                                .map_err(crate::Error::io("read tag terms"))?;
                            let mut theirs = false;
                            while !theirs && values.advance() {
                                theirs = mine.admits(&inv, values.value())?;
                            }
                            if theirs && let Ok(k) = std::str::from_utf8(&key) {
                                out.insert(k.to_string());
                            }
                            from = end;
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(out.into_iter().take(limit).collect())
    }

    /// The operations a split holds (from its `svc_op` terms).
    pub fn split_operations(&self, split: &crate::split::Split) -> Result<Vec<CatalogEntry>> {
        self.searcher_operations(&split.searcher())
    }

    fn searcher_operations(&self, searcher: &tantivy::Searcher) -> Result<Vec<CatalogEntry>> {
        let field = self.store.signal().svc_op;
        let mut out = Vec::new();
        for seg in searcher.segment_readers() {
            let inv = seg.inverted_index(field)?;
            let mut stream = inv
                .terms()
                .stream()
                .map_err(crate::Error::io("read svc_op terms"))?;
            while stream.advance() {
                let Ok(text) = std::str::from_utf8(stream.key()) else {
                    continue;
                };
                let mut parts = text.splitn(4, SEP);
                let (Some(t), Some(svc), Some(kind), Some(name)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                out.push((
                    t.to_string(),
                    svc.to_string(),
                    Operation {
                        name: name.to_string(),
                        kind: SpanKind::parse(kind).unwrap_or(SpanKind::Unspecified),
                    },
                ));
            }
        }
        Ok(out)
    }

    fn decode(&self, doc: &TantivyDocument) -> Result<Span> {
        let bytes = doc
            .get_first(self.store.signal().doc)
            .and_then(|v| v.as_bytes())
            .unwrap_or_default();
        postcard::from_bytes(bytes).map_err(|e| crate::Error::Corrupt(format!("span: {e}")))
    }

    fn trace_spans(&self, tenant: &str, trace_id: TraceId) -> Result<Vec<Span>> {
        let s = self.store.signal();
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_bytes(s.trace_id, &trace_id.0),
                    IndexRecordOption::Basic,
                )),
            ),
            (Occur::Must, s.term_query(s.tenant, tenant)),
        ]);
        let mut spans = Vec::new();
        // Newest first; splits whose trace filter rules the trace out are not opened.
        let splits = self.store.splits();
        let candidates = splits
            .iter()
            .rev()
            .filter(|s| s.meta().docs > 0 && s.may_contain_trace(&trace_id));
        for split in candidates {
            let searcher = split.searcher();
            let mut addrs: Vec<_> = searcher
                .search(&query, &tantivy::collector::DocSetCollector)?
                .into_iter()
                .collect();
            // In storage order: a doc-store block is decompressed once for all the spans
            // in it, not once per span (the set comes unordered).
            addrs.sort_unstable();
            for addr in addrs {
                if spans.len() >= MAX_SPANS_PER_TRACE {
                    tracing::warn!(trace_id = %trace_id, limit = MAX_SPANS_PER_TRACE, "trace cut at span limit");
                    break;
                }
                spans.push(self.decode(&searcher.doc(addr)?)?);
            }
        }
        // The same span may arrive twice (client retries); keep one.
        spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
        spans.dedup_by(|a, b| a.span_id == b.span_id && a.start_ns == b.start_ns);
        Ok(spans)
    }
}

/// Collects, per trace, the latest start among matching spans; keeps the `limit` latest traces.
/// The `limit` traces with the highest `field` (`start`: the most recent; `duration`:
/// the slowest) among the matching spans.
struct LatestTraces {
    limit: usize,
    field: &'static str,
}

struct LatestTracesSegment {
    hi: tantivy::columnar::Column<u64>,
    lo: tantivy::columnar::Column<u64>,
    start: tantivy::columnar::Column<i64>,
    best: HashMap<(u64, u64), i64>,
}

impl Collector for LatestTraces {
    type Fruit = HashMap<(u64, u64), i64>;
    type Child = LatestTracesSegment;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        seg: &SegmentReader,
    ) -> tantivy::Result<LatestTracesSegment> {
        let ff = seg.fast_fields();
        Ok(LatestTracesSegment {
            hi: ff.u64("trace_hi")?,
            lo: ff.u64("trace_lo")?,
            start: ff.i64(self.field)?,
            best: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<(u64, u64), i64>>) -> tantivy::Result<Self::Fruit> {
        let mut all: HashMap<(u64, u64), i64> = HashMap::new();
        for f in fruits {
            for (k, v) in f {
                let e = all.entry(k).or_insert(v);
                *e = (*e).max(v);
            }
        }
        Ok(keep_latest(all, self.limit))
    }
}

fn keep_latest(map: HashMap<(u64, u64), i64>, limit: usize) -> HashMap<(u64, u64), i64> {
    if map.len() <= limit {
        return map;
    }
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v.truncate(limit);
    v.into_iter().collect()
}

impl SegmentCollector for LatestTracesSegment {
    type Fruit = HashMap<(u64, u64), i64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let (Some(hi), Some(lo), Some(start)) = (
            self.hi.first(doc),
            self.lo.first(doc),
            self.start.first(doc),
        ) else {
            return;
        };
        let e = self.best.entry((hi, lo)).or_insert(start);
        *e = (*e).max(start);
    }

    fn harvest(self) -> Self::Fruit {
        self.best
    }
}

/// Reads (trace, span, parent, service) of every span in range, for dependencies.
struct SpanEdges;

struct SpanEdgesSegment {
    lo: tantivy::columnar::Column<u64>,
    span: tantivy::columnar::Column<u64>,
    parent: tantivy::columnar::Column<u64>,
    service: Option<tantivy::columnar::StrColumn>,
    out: Vec<(u64, u64, u64, String)>,
    buf: String,
}

impl Collector for SpanEdges {
    type Fruit = Vec<(u64, u64, u64, String)>;
    type Child = SpanEdgesSegment;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        seg: &SegmentReader,
    ) -> tantivy::Result<SpanEdgesSegment> {
        let ff = seg.fast_fields();
        Ok(SpanEdgesSegment {
            lo: ff.u64("trace_lo")?,
            span: ff.u64("span_id")?,
            parent: ff.u64("parent_id")?,
            service: ff.str("service")?,
            out: Vec::new(),
            buf: String::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SpanEdgesSegment {
    type Fruit = Vec<(u64, u64, u64, String)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.out.len() >= MAX_DEPENDENCY_SPANS {
            return;
        }
        let (Some(lo), Some(span)) = (self.lo.first(doc), self.span.first(doc)) else {
            return;
        };
        let parent = self.parent.first(doc).unwrap_or(0);
        self.buf.clear();
        if let Some(col) = &self.service
            && let Some(ord) = col.term_ords(doc).next()
            && col.ord_to_str(ord, &mut self.buf).is_err()
        {
            self.buf.clear();
        }
        self.out.push((lo, span, parent, self.buf.clone()));
    }

    fn harvest(self) -> Self::Fruit {
        self.out
    }
}

impl TraceRead for TraceStore {
    fn tag_values(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        Ok(self.tag_terms(tenant, key, start_ns, end_ns, limit)?)
    }

    fn services(&self, tenant: &str) -> StoreResult<Vec<String>> {
        let cat = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        Ok(cat
            .get(tenant)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn operations(&self, tenant: &str, service: &str) -> StoreResult<Vec<Operation>> {
        let cat = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        Ok(cat
            .get(tenant)
            .and_then(|t| t.get(service))
            .map(|ops| ops.iter().cloned().collect())
            .unwrap_or_default())
    }

    fn trace(&self, tenant: &str, trace_id: TraceId) -> StoreResult<Vec<Span>> {
        Ok(self.trace_spans(tenant, trace_id)?)
    }

    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>> {
        if q.end_ns < q.start_ns {
            return Err(StoreError::InvalidQuery(
                "end must not be before start".into(),
            ));
        }
        let s = self.store.signal();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, s.term_query(s.tenant, &q.tenant)),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(s.start, q.start_ns)),
                    Bound::Included(Term::from_field_i64(s.start, q.end_ns)),
                )),
            ),
        ];
        if !q.service.is_empty() {
            clauses.push((Occur::Must, s.term_query(s.service, &q.service)));
        }
        if let Some(op) = &q.operation {
            clauses.push((Occur::Must, s.term_query(s.operation, op)));
        }
        for (k, v) in &q.tags {
            clauses.push((Occur::Must, s.term_query(s.tags, &format!("{k}={v}"))));
        }
        if q.min_duration_ns.is_some() || q.max_duration_ns.is_some() {
            let lower = q
                .min_duration_ns
                .map(|d| Bound::Included(Term::from_field_i64(s.duration, d)));
            let upper = q
                .max_duration_ns
                .map(|d| Bound::Included(Term::from_field_i64(s.duration, d)));
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    lower.unwrap_or(Bound::Unbounded),
                    upper.unwrap_or(Bound::Unbounded),
                )),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let collector = LatestTraces {
            limit: q.limit.max(1),
            field: match q.order {
                TraceOrder::Recent => "start",
                TraceOrder::Slowest => "duration",
            },
        };
        let mut all: HashMap<(u64, u64), i64> = HashMap::new();
        for searcher in self.store.searchers(q.start_ns, q.end_ns.saturating_add(1)) {
            for (k, v) in searcher
                .search(&query, &collector)
                .map_err(crate::Error::from)?
            {
                let e = all.entry(k).or_insert(v);
                *e = (*e).max(v);
            }
        }
        let mut v: Vec<_> = all.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(q.limit);
        Ok(v.into_iter()
            .map(|((hi, lo), _)| join_trace_id(hi, lo))
            .collect())
    }

    fn dependencies(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> StoreResult<Vec<DependencyLink>> {
        let s = self.store.signal();
        let query = BooleanQuery::new(vec![
            (Occur::Must, s.term_query(s.tenant, tenant)),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(s.start, start_ns)),
                    Bound::Included(Term::from_field_i64(s.start, end_ns)),
                )),
            ),
        ]);
        let mut rows = Vec::new();
        for searcher in self.store.searchers(start_ns, end_ns.saturating_add(1)) {
            rows.extend(
                searcher
                    .search(&query, &SpanEdges)
                    .map_err(crate::Error::from)?,
            );
        }
        let services: HashMap<(u64, u64), &str> =
            rows.iter().map(|r| ((r.0, r.1), r.3.as_str())).collect();
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (lo, _, parent, child_svc) in &rows {
            if *parent == 0 {
                continue;
            }
            if let Some(parent_svc) = services.get(&(*lo, *parent))
                && *parent_svc != child_svc.as_str()
            {
                *counts
                    .entry((parent_svc.to_string(), child_svc.clone()))
                    .or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|((parent, child), call_count)| DependencyLink {
                parent,
                child,
                call_count,
            })
            .collect())
    }
}
