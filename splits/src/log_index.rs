//! The log store: log records in time-bounded tantivy splits.
//!
//! Schema (one document per record):
//!
//! | field | indexed as | for |
//! |---|---|---|
//! | `tenant` | raw term | tenant isolation on every query |
//! | `ts` | i64 fast field | time range filter, newest-first sort, histogram |
//! | `seq` | u64 fast field | arrival order, the live-tail cursor |
//! | `level` | lowercased whole value | `level:error` |
//! | `trace_id` | raw bytes term (hex in queries is rewritten) | `trace_id:4bf9…` |
//! | `span_id` | u64 fast field, no term (queries become ranges) | `span_id:00f0…` |
//! | `service`, `host`, `source` | raw term | `service:checkout` |
//! | `body` | `log` tokenizer, with positions | words, identifiers, phrases |
//! | `attributes` | JSON, whole lowercased values | `attributes.user_id:42` |
//! | `doc` | stored bytes (postcard) | the record returned to the user |
//!
//! Only `doc` is stored, and it holds what no fast field holds: the record is read back
//! from one zstd-compressed blob plus `ts` and `span_id`, and nothing is stored twice.

use std::ops::Bound;
use std::sync::Arc;

use std::borrow::Cow;
use tantivy::collector::{Count, HistogramCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, IndexRecordOption, JsonObjectOptions, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::{DocAddress, Index, Order, Searcher, TantivyDocument, Term};
use triad_model::store::{LogQuery, LogRead, LogSearchResult, StoreError, StoreResult, TailBatch};

use serde::{Deserialize, Serialize};
use triad_model::{KeyValue, LogRecord, SpanId, TraceId, attributes_to_json};

use crate::error::Result;
use crate::store::{Signal, Store};
use crate::tokenizer::{self, ID_TOKENIZER, LOG_TOKENIZER, term_indexing, term_options};

/// Field handles of the log schema.
#[derive(Clone)]
pub struct LogSignal {
    schema: Schema,
    tenant: Field,
    ts: Field,
    seq: Field,
    level: Field,
    service: Field,
    host: Field,
    trace_id: Field,
    span_id: Field,
    source: Field,
    body: Field,
    attributes: Field,
    doc: Field,
}

impl Default for LogSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl LogSignal {
    /// Builds the schema.
    pub fn new() -> Self {
        let mut b = Schema::builder();
        let raw = term_options("raw");
        let id_text = term_options(ID_TOKENIZER);
        let log_indexing = TextFieldIndexing::default()
            .set_tokenizer(LOG_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            // Hits are ordered by time, never scored: norms would be dead weight.
            .set_fieldnorms(false);
        // IDs as raw bytes: half the term-dictionary size of hex text.
        let id_bytes = BytesOptions::default().set_indexed();
        let tenant = b.add_text_field("tenant", raw.clone());
        let ts = b.add_i64_field("ts", FAST);
        let seq = b.add_u64_field("seq", FAST);
        let level = b.add_text_field("level", id_text);
        let service = b.add_text_field("service", raw.clone());
        let host = b.add_text_field("host", raw.clone());
        let trace_id = b.add_bytes_field("trace_id", id_bytes);
        let span_id = b.add_u64_field("span_id", FAST);
        let source = b.add_text_field("source", raw);
        let body = b.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(log_indexing.clone()),
        );
        // Attribute values are mostly identifiers (status codes, user IDs, routes):
        // matched whole and case-insensitively, without positions, as Quickwit does for
        // dynamic fields.
        let attributes = b.add_json_field(
            "attributes",
            JsonObjectOptions::default()
                .set_indexing_options(term_indexing(ID_TOKENIZER))
                .set_expand_dots_enabled(),
        );
        let doc = b.add_bytes_field("doc", BytesOptions::default().set_stored());
        Self {
            schema: b.build(),
            tenant,
            ts,
            seq,
            level,
            service,
            host,
            trace_id,
            span_id,
            source,
            body,
            attributes,
            doc,
        }
    }

    /// Reads the records at `addrs` of one searcher, in that order. The fast-field
    /// columns of a segment are opened once, not per record (opening one costs more than
    /// reading a value).
    fn decode_all(&self, searcher: &Searcher, addrs: &[DocAddress]) -> Result<Vec<LogRecord>> {
        type Columns = (Column<i64>, Column<u64>);
        let mut columns: std::collections::HashMap<u32, Columns> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let (ts, span) = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                    e.insert((ff.i64("ts")?, ff.u64("span_id")?))
                }
            };
            let doc: TantivyDocument = searcher.doc(addr)?;
            let bytes = doc
                .get_first(self.doc)
                .and_then(|v| v.as_bytes())
                .unwrap_or_default();
            let stored: StoredLog = postcard::from_bytes(bytes)
                .map_err(|e| crate::Error::Corrupt(format!("log record: {e}")))?;
            let timestamp_ns = ts.first(addr.doc_id).unwrap_or(0);
            let span_id = span.first(addr.doc_id).and_then(SpanId::from_u64);
            out.push(stored.into_record(timestamp_ns, span_id));
        }
        Ok(out)
    }
}

impl Signal for LogSignal {
    type Record = LogRecord;
    const NAME: &'static str = "logs";

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn configure(&self, index: &Index) {
        tokenizer::register(index);
    }

    /// zstd level 7: a tenth smaller than level 3 on log lines, for a few percent of
    /// indexing CPU (measured with triad-bench).
    fn settings(&self) -> tantivy::IndexSettings {
        crate::store::doc_store_settings(7)
    }

    fn document(&self, r: &LogRecord, seq: u64) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.tenant, &r.tenant);
        d.add_i64(self.ts, r.timestamp_ns);
        d.add_u64(self.seq, seq);
        let level = r.level();
        if !level.is_empty() {
            d.add_text(self.level, &level);
        }
        if !r.service.is_empty() {
            d.add_text(self.service, &r.service);
        }
        if !r.host.is_empty() {
            d.add_text(self.host, &r.host);
        }
        if let Some(t) = r.trace_id {
            d.add_bytes(self.trace_id, &t.0);
        }
        // Always a value (0 = no span): a dense column needs no optional-value index.
        d.add_u64(self.span_id, r.span_id.map(SpanId::to_u64).unwrap_or(0));
        d.add_text(self.source, &r.source);
        d.add_text(self.body, &r.body);
        if !r.attributes.is_empty()
            && let serde_json::Value::Object(map) = attributes_to_json(&r.attributes)
        {
            d.add_object(
                self.attributes,
                map.into_iter()
                    .map(|(k, v)| (k, json_to_owned(v)))
                    .collect(),
            );
        }
        // Encoding our own model cannot fail; an empty blob would surface as a decode error.
        d.add_bytes(
            self.doc,
            &postcard::to_stdvec(&StoredLog::of(r)).unwrap_or_default(),
        );
        d
    }

    fn timestamp_ns(r: &LogRecord) -> i64 {
        r.timestamp_ns
    }
}

/// The stored form of a record: everything but what the fast fields already hold
/// (`ts`, `span_id`), and the observed time as a (usually tiny) delta.
#[derive(Serialize, Deserialize)]
struct StoredLog<'a> {
    tenant: Cow<'a, str>,
    observed_delta_ns: i64,
    severity_text: Cow<'a, str>,
    severity_number: i32,
    body: Cow<'a, str>,
    service: Cow<'a, str>,
    host: Cow<'a, str>,
    trace_id: Option<TraceId>,
    source: Cow<'a, str>,
    attributes: Cow<'a, [KeyValue]>,
}

impl<'a> StoredLog<'a> {
    fn of(r: &'a LogRecord) -> Self {
        Self {
            tenant: Cow::Borrowed(&r.tenant),
            observed_delta_ns: r.observed_ns.wrapping_sub(r.timestamp_ns),
            severity_text: Cow::Borrowed(&r.severity_text),
            severity_number: r.severity_number,
            body: Cow::Borrowed(&r.body),
            service: Cow::Borrowed(&r.service),
            host: Cow::Borrowed(&r.host),
            trace_id: r.trace_id,
            source: Cow::Borrowed(&r.source),
            attributes: Cow::Borrowed(&r.attributes),
        }
    }

    fn into_record(self, timestamp_ns: i64, span_id: Option<SpanId>) -> LogRecord {
        LogRecord {
            tenant: self.tenant.into_owned(),
            timestamp_ns,
            observed_ns: timestamp_ns.wrapping_add(self.observed_delta_ns),
            severity_text: self.severity_text.into_owned(),
            severity_number: self.severity_number,
            body: self.body.into_owned(),
            service: self.service.into_owned(),
            host: self.host.into_owned(),
            trace_id: self.trace_id,
            span_id,
            source: self.source.into_owned(),
            attributes: self.attributes.into_owned(),
        }
    }
}

fn json_to_owned(v: serde_json::Value) -> tantivy::schema::OwnedValue {
    tantivy::schema::OwnedValue::from(v)
}

/// The log store: a [`Store`] of [`LogSignal`] with the search operations.
pub struct LogStore {
    store: Arc<Store<LogSignal>>,
}

impl LogStore {
    /// Wraps an opened store.
    pub fn new(store: Arc<Store<LogSignal>>) -> Self {
        Self { store }
    }

    /// The underlying store (append, retention, shutdown).
    pub fn store(&self) -> &Arc<Store<LogSignal>> {
        &self.store
    }

    /// Makes records durable; see [`Store::append`].
    pub async fn append(&self, records: Vec<LogRecord>) -> Result<()> {
        self.store.append(records).await
    }

    fn user_query(&self, text: &str) -> StoreResult<Box<dyn Query>> {
        if text.trim().is_empty() {
            return Ok(Box::new(AllQuery));
        }
        let s = self.store.signal();
        let splits = self.store.splits();
        let Some(split) = splits.last() else {
            return Ok(Box::new(AllQuery));
        };
        let mut parser = QueryParser::for_index(&split.index, vec![s.body]);
        parser.set_conjunction_by_default();
        // `body:/etimed.*/` matches terms by a regular expression over the term
        // dictionary (LogQL's substring filters use it).
        parser.allow_regexes();
        let ast = crate::query_text::parse(text).map_err(StoreError::InvalidQuery)?;
        parser
            .build_query_from_user_input_ast(ast)
            .map_err(|e| StoreError::InvalidQuery(e.to_string()))
    }

    fn with_filters(
        &self,
        tenant: &str,
        user: Box<dyn Query>,
        range: Box<dyn Query>,
    ) -> BooleanQuery {
        let s = self.store.signal();
        let tenant_q = TermQuery::new(
            Term::from_field_text(s.tenant, tenant),
            IndexRecordOption::Basic,
        );
        BooleanQuery::new(vec![
            (Occur::Must, user),
            (Occur::Must, Box::new(tenant_q)),
            (Occur::Must, range),
        ])
    }
}

impl LogRead for LogStore {
    fn field_values(
        &self,
        tenant: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let s = self.store.signal();
        let field = match field {
            "service" => s.service,
            "level" => s.level,
            "host" => s.host,
            "source" => s.source,
            other => {
                return Err(StoreError::InvalidQuery(format!(
                    "{other} is not a field with listed values: use one of {:?}",
                    triad_model::store::LOG_VALUE_FIELDS
                )));
            }
        };
        let mut out = std::collections::BTreeSet::new();
        for searcher in self.store.searchers(start_ns, end_ns) {
            for seg in searcher.segment_readers() {
                let mine = crate::tenant_terms::TenantTerms::new(seg, s.tenant, tenant)?;
                if mine.absent() {
                    continue;
                }
                let inv = seg.inverted_index(field).map_err(crate::Error::from)?;
                let mut stream = inv
                    .terms()
                    .stream()
                    .map_err(crate::Error::io("read log field terms"))?;
                while stream.advance() {
                    if let Ok(t) = std::str::from_utf8(stream.key())
                        && !out.contains(t)
                        && mine.admits(&inv, stream.value())?
                    {
                        out.insert(t.to_string());
                    }
                }
            }
        }
        Ok(out.into_iter().take(limit).collect())
    }

    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult> {
        if q.end_ns <= q.start_ns {
            return Err(StoreError::InvalidQuery("end must be after start".into()));
        }
        let s = self.store.signal();
        let range = RangeQuery::new(
            Bound::Included(Term::from_field_i64(s.ts, q.start_ns)),
            Bound::Excluded(Term::from_field_i64(s.ts, q.end_ns)),
        );
        let query = self.with_filters(&q.tenant, self.user_query(&q.query)?, Box::new(range));
        let buckets = q.histogram_buckets.max(1);
        let span = (q.end_ns - q.start_ns) as u64;
        let bucket_ns = span.div_ceil(buckets as u64).max(1);
        let mut result = LogSearchResult {
            bucket_ns: bucket_ns as i64,
            histogram: vec![0; q.histogram_buckets],
            ..Default::default()
        };
        let searchers = self.store.searchers(q.start_ns, q.end_ns);
        let mut top: Vec<(i64, usize, DocAddress)> = Vec::new();
        for (i, searcher) in searchers.iter().enumerate() {
            let order = if q.oldest_first {
                Order::Asc
            } else {
                Order::Desc
            };
            let collector = (
                Count,
                TopDocs::with_limit(q.limit.max(1)).order_by_fast_field::<i64>("ts", order),
                HistogramCollector::new::<i64>("ts".to_string(), q.start_ns, bucket_ns, buckets),
            );
            let (count, hits, hist) = searcher
                .search(&query, &collector)
                .map_err(crate::Error::from)?;
            result.total += count as u64;
            for (b, c) in result.histogram.iter_mut().zip(hist) {
                *b += c;
            }
            top.extend(
                hits.into_iter()
                    .map(|(ts, addr)| (ts.unwrap_or(i64::MIN), i, addr)),
            );
        }
        if q.oldest_first {
            top.sort_by_key(|t| t.0);
        } else {
            top.sort_by_key(|t| std::cmp::Reverse(t.0));
        }
        top.truncate(q.limit);
        // Read per searcher, then put the records back in the order of `top`.
        let mut slots: Vec<Option<LogRecord>> = (0..top.len()).map(|_| None).collect();
        for (i, searcher) in searchers.iter().enumerate() {
            let (pos, addrs): (Vec<usize>, Vec<DocAddress>) = top
                .iter()
                .enumerate()
                .filter(|(_, t)| t.1 == i)
                .map(|(p, t)| (p, t.2))
                .unzip();
            for (p, r) in pos.into_iter().zip(s.decode_all(searcher, &addrs)?) {
                slots[p] = Some(r);
            }
        }
        result.hits = slots.into_iter().flatten().collect();
        Ok(result)
    }

    fn tail(
        &self,
        tenant: &str,
        query: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<TailBatch> {
        // One more than asked is fetched, to know whether the batch is cut and the
        // cursor must stop at its last record rather than jump to the newest.
        let limit = limit.max(1);
        let splits = self.store.splits();
        let newest = splits.iter().map(|s| s.meta().max_seq).max().unwrap_or(0);
        let Some(cursor) = cursor else {
            return Ok(TailBatch {
                records: Vec::new(),
                cursor: newest,
            });
        };
        let s = self.store.signal();
        let range = RangeQuery::new(
            Bound::Excluded(Term::from_field_u64(s.seq, cursor)),
            Bound::Unbounded,
        );
        let query = self.with_filters(tenant, self.user_query(query)?, Box::new(range));
        let mut found: Vec<(u64, LogRecord)> = Vec::new();
        for split in splits.iter().filter(|sp| sp.meta().max_seq > cursor) {
            let searcher = split.searcher();
            let hits = searcher
                .search(
                    &query,
                    &TopDocs::with_limit(limit + 1).order_by_fast_field::<u64>("seq", Order::Asc),
                )
                .map_err(crate::Error::from)?;
            let (seqs, addrs): (Vec<u64>, Vec<DocAddress>) = hits
                .into_iter()
                .map(|(seq, addr)| (seq.unwrap_or(0), addr))
                .unzip();
            found.extend(seqs.into_iter().zip(s.decode_all(&searcher, &addrs)?));
        }
        found.sort_by_key(|f| f.0);
        let next = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|f| f.0).unwrap_or(cursor)
        } else {
            // Everything up to the newest committed record has been seen.
            newest
                .max(cursor)
                .max(found.last().map(|f| f.0).unwrap_or(0))
        };
        Ok(TailBatch {
            records: found.into_iter().map(|f| f.1).collect(),
            cursor: next,
        })
    }
}
