//! The trace page's API for traces of any size (100,000 spans and more): the trace as a
//! stream of compact rows in tree order after a summary, so the waterfall shows its
//! first rows before the rest arrives; one span's details on demand; and a search
//! inside the trace.
//!
//! - `GET /api/traces/{id}/rows` — NDJSON: the first line is the summary (`spanCount`,
//!   `services`, `depth`, `errors`, `start_us`, `duration_us`, the `critical` path as
//!   span IDs, `logs` lines carrying the trace ID), then one line per span in depth-first
//!   order (children by start time): `{"id", "p" (parent row or -1), "d" (depth), "s"
//!   (index into services), "n" (name), "t" (start, µs after the trace's), "u" (µs),
//!   "e" (error), "c" (children), "z" (spans in its subtree, itself included), "l" (log
//!   lines of the span among the newest fetched)}`.
//! - `GET /api/traces/{id}/spans/{spanID}` — the span in Jaeger's JSON (attributes,
//!   events, process) and its log lines.
//! - `GET /api/traces/{id}/find?q=` — rows (positions in the order above) whose
//!   service, name, span ID or an attribute (`key=value`) contains `q` (case-insensitive),
//!   or that failed when `q` is `error`.
//!
//! The three read the trace once: its spans stay in a small cache ([`TraceCache`]) for
//! a minute, so a page's searches and clicks do not read 100,000 spans again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};
use triad_model::store::LogQuery;
use triad_model::{Span, SpanId, TraceId};

use crate::Scoped;
use crate::error::{ApiError, ApiResult};
use crate::jaeger::trace_json;
use crate::logs::record_json;

/// Traces kept.
const CACHE_TRACES: usize = 4;
/// How long a trace is kept.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Rows per chunk of the stream.
const CHUNK_ROWS: usize = 2_000;
/// Most rows `find` returns.
const MAX_MATCHES: usize = 10_000;

/// A trace read for the trace page, with its tree.
pub struct TraceTree {
    /// The spans as stored.
    pub spans: Vec<Span>,
    /// Span indexes in depth-first order.
    pub order: Vec<usize>,
    /// Per row: the parent's row, or -1.
    pub parent: Vec<i64>,
    /// Per row: depth (roots 0).
    pub depth: Vec<u32>,
    /// Per row: direct children.
    pub children: Vec<u32>,
    /// Per row: spans in the subtree, itself included.
    pub subtree: Vec<u32>,
    /// Span indexes on the critical path.
    pub critical: Vec<usize>,
    /// Sources that did not answer.
    pub warnings: Vec<String>,
}

impl TraceTree {
    /// Orders `spans` as a tree: roots (spans whose parent is not in the trace) and
    /// children by start time, depth first; and finds the critical path as Jaeger does.
    pub fn new(spans: Vec<Span>, warnings: Vec<String>) -> TraceTree {
        let index: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let mut kids: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s
                .parent_span_id
                .and_then(|p| index.get(&p))
                .filter(|&&p| p != i)
            {
                Some(&p) => kids[p].push(i),
                None => roots.push(i),
            }
        }
        let by_start =
            |a: &usize, b: &usize| spans[*a].start_ns.cmp(&spans[*b].start_ns).then(a.cmp(b));
        for k in &mut kids {
            k.sort_by(by_start);
        }
        roots.sort_by(by_start);
        let n = spans.len();
        let (mut order, mut parent, mut depth, mut children) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut seen = vec![false; n];
        // (span, parent row, depth); children pushed in reverse so the earliest pops first.
        let mut stack: Vec<(usize, i64, u32)> = roots.iter().rev().map(|&r| (r, -1, 0)).collect();
        while let Some((s, p, d)) = stack.pop() {
            if std::mem::replace(&mut seen[s], true) {
                continue; // a cycle of parent IDs: each span once
            }
            let row = order.len() as i64;
            order.push(s);
            parent.push(p);
            depth.push(d);
            children.push(kids[s].len() as u32);
            for &k in kids[s].iter().rev() {
                stack.push((k, row, d + 1));
            }
        }
        // Spans only reachable through a cycle: shown as roots.
        for (s, _) in seen.iter().enumerate().filter(|(_, seen)| !**seen) {
            order.push(s);
            parent.push(-1);
            depth.push(0);
            children.push(0);
        }
        let mut subtree = vec![1u32; order.len()];
        for row in (0..order.len()).rev() {
            if parent[row] >= 0 {
                subtree[parent[row] as usize] += subtree[row];
            }
        }
        let critical = critical_path(&spans, &kids, &roots);
        TraceTree {
            spans,
            order,
            parent,
            depth,
            children,
            subtree,
            critical,
            warnings,
        }
    }
}

/// Jaeger's critical path: from the end of the longest root, the child that finishes
/// last before the cursor, recursively; then the cursor moves to that child's start.
fn critical_path(spans: &[Span], kids: &[Vec<usize>], roots: &[usize]) -> Vec<usize> {
    let Some(&root) = roots
        .iter()
        .max_by_key(|&&r| spans[r].end_ns - spans[r].start_ns)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut visited = vec![false; spans.len()];
    // (span, cursor, its children sorted by end descending, next child)
    let mut stack: Vec<(usize, i64, Vec<usize>, usize)> = Vec::new();
    let enter = |s: usize, limit: i64, out: &mut Vec<usize>, visited: &mut Vec<bool>| {
        visited[s] = true;
        out.push(s);
        let mut k = kids[s].clone();
        k.sort_by_key(|&c| std::cmp::Reverse(spans[c].end_ns));
        (s, spans[s].end_ns.min(limit), k, 0)
    };
    stack.push(enter(root, i64::MAX, &mut out, &mut visited));
    while let Some(top) = stack.last_mut() {
        let (_, cursor, ref k, ref mut next) = *top;
        let mut descend = None;
        while *next < k.len() {
            let c = k[*next];
            *next += 1;
            if spans[c].start_ns < cursor && !visited[c] {
                descend = Some(c);
                break;
            }
        }
        match descend {
            Some(c) => {
                top.1 = spans[c].start_ns;
                stack.push(enter(c, cursor, &mut out, &mut visited));
            }
            None => {
                stack.pop();
            }
        }
    }
    out
}

/// Recently read traces, for the trace page's follow-up requests; keyed by tenant and
/// trace ID (the same ID in two tenants is two traces).
#[derive(Default)]
pub struct TraceCache {
    entries: Mutex<Vec<CacheEntry>>,
}

/// (tenant, trace), when read, the tree.
type CacheEntry = ((String, TraceId), Instant, Arc<TraceTree>);

impl TraceCache {
    fn get(&self, tenant: &str, id: TraceId) -> Option<Arc<TraceTree>> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|(_, at, _)| at.elapsed() < CACHE_TTL);
        e.iter()
            .find(|((tn, t), _, _)| *t == id && tn == tenant)
            .map(|(_, _, tree)| tree.clone())
    }

    fn put(&self, tenant: &str, id: TraceId, tree: Arc<TraceTree>) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|((tn, t), _, _)| !(*t == id && tn == tenant));
        e.push(((tenant.to_string(), id), Instant::now(), tree));
        if e.len() > CACHE_TRACES {
            e.remove(0);
        }
    }
}

/// The trace's tree, from the cache or the store.
async fn tree(st: &Scoped, id: &str) -> ApiResult<(TraceId, Arc<TraceTree>)> {
    let trace_id = TraceId::from_hex(id)
        .map_err(|e| ApiError::BadRequest(format!("invalid trace ID: {e}")))?;
    if let Some(t) = st.trace_cache.get(&st.tenant, trace_id) {
        return Ok((trace_id, t));
    }
    let (traces, tenant) = (st.traces.clone(), st.tenant.clone());
    let tree = tokio::task::spawn_blocking(move || {
        traces
            .trace_partial(&tenant, trace_id)
            .map(|(spans, warnings)| TraceTree::new(spans, warnings))
    })
    .await??;
    if tree.spans.is_empty() {
        return Err(ApiError::NotFound(format!("trace {id} not found")));
    }
    let tree = Arc::new(tree);
    st.trace_cache.put(&st.tenant, trace_id, tree.clone());
    Ok((trace_id, tree))
}

/// The newest log lines carrying the trace ID (at most the configured hits) and the
/// exact number of them.
async fn trace_logs(
    st: &Scoped,
    trace_id: TraceId,
    span: Option<SpanId>,
) -> ApiResult<(Vec<triad_model::LogRecord>, u64)> {
    let logs = st.logs.clone();
    let mut query = format!("trace_id:{}", trace_id.to_hex());
    if let Some(s) = span {
        query.push_str(&format!(" AND span_id:{}", s.to_hex()));
    }
    let q = LogQuery {
        tenant: st.tenant.clone(),
        query,
        start_ns: 0,
        end_ns: triad_model::now_ns() + 3_600_000_000_000,
        limit: st.cfg.max_log_hits,
        histogram_buckets: 0,
        oldest_first: false,
    };
    let r = tokio::task::spawn_blocking(move || logs.search(&q)).await??;
    Ok((r.hits, r.total))
}

/// `GET /api/traces/{id}/rows`.
pub async fn rows(st: Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let (trace_id, t) = tree(&st, &id).await?;
    let (logs, log_total) = trace_logs(&st, trace_id, None).await?;
    let mut log_count: HashMap<SpanId, u32> = HashMap::new();
    for r in &logs {
        if let Some(s) = r.span_id {
            *log_count.entry(s).or_default() += 1;
        }
    }
    let start = t.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = t.spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
    let mut services: Vec<&str> = t.spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let service_index: HashMap<&str, usize> =
        services.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let summary = json!({
        "traceID": trace_id.to_hex(),
        "spanCount": t.spans.len(),
        "services": services,
        "depth": t.depth.iter().max().map(|d| d + 1).unwrap_or(0),
        "errors": t.spans.iter().filter(|s| s.is_error()).count(),
        "start_us": start / 1_000,
        "duration_us": (end - start) / 1_000,
        "critical": t.critical.iter().map(|&i| t.spans[i].span_id.to_hex()).collect::<Vec<_>>(),
        "logs": log_total,
        "partial": !t.warnings.is_empty(),
        "warnings": t.warnings,
    });
    let mut chunks: Vec<String> = vec![format!("{summary}\n")];
    let mut buf = String::new();
    for (row, &i) in t.order.iter().enumerate() {
        let s = &t.spans[i];
        let line = json!({
            "id": s.span_id.to_hex(),
            "p": t.parent[row],
            "d": t.depth[row],
            "s": service_index.get(s.service.as_str()).copied().unwrap_or(0),
            "n": s.name,
            "t": (s.start_ns - start) / 1_000,
            "u": (s.end_ns - s.start_ns) / 1_000,
            "e": s.is_error(),
            "c": t.children[row],
            "z": t.subtree[row],
            "l": log_count.get(&s.span_id).copied().unwrap_or(0),
        });
        buf.push_str(&line.to_string());
        buf.push('\n');
        if (row + 1) % CHUNK_ROWS == 0 {
            chunks.push(std::mem::take(&mut buf));
        }
    }
    if !buf.is_empty() {
        chunks.push(buf);
    }
    let body = Body::from_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, std::convert::Infallible>),
    ));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// `GET /api/traces/{id}/spans/{spanID}`.
pub async fn span(st: Scoped, Path((id, span_id)): Path<(String, String)>) -> ApiResult<Json<J>> {
    let (trace_id, t) = tree(&st, &id).await?;
    let sid = SpanId::from_hex(&span_id)
        .map_err(|e| ApiError::BadRequest(format!("invalid span ID: {e}")))?;
    let s = t
        .spans
        .iter()
        .find(|s| s.span_id == sid)
        .ok_or_else(|| ApiError::NotFound(format!("span {span_id} is not in trace {id}")))?;
    let mut doc = trace_json(trace_id, std::slice::from_ref(s));
    let (logs, _) = trace_logs(&st, trace_id, Some(sid)).await?;
    let mut logs = logs;
    logs.sort_by_key(|r| r.timestamp_ns);
    Ok(Json(json!({
        "span": doc["spans"].get_mut(0).map(J::take),
        "processes": doc["processes"].take(),
        "logs": logs.iter().map(record_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/traces/{id}/find?q=`.
pub async fn find(
    st: Scoped,
    Path(id): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<J>> {
    let q = params
        .get("q")
        .map(|q| q.trim().to_lowercase())
        .unwrap_or_default();
    if q.is_empty() {
        return Err(ApiError::BadRequest(
            "q: what to look for is missing".into(),
        ));
    }
    let (_, t) = tree(&st, &id).await?;
    let t2 = t.clone();
    let matches = tokio::task::spawn_blocking(move || {
        let t = t2;
        let has = |text: &str| text.to_lowercase().contains(&q);
        let mut out = Vec::new();
        for (row, &i) in t.order.iter().enumerate() {
            let s = &t.spans[i];
            let hit = (q == "error" && s.is_error())
                || has(&s.service)
                || has(&s.name)
                || s.span_id.to_hex() == q
                || s.attributes
                    .iter()
                    .chain(&s.resource)
                    .any(|kv| has(&format!("{}={}", kv.key, kv.value.to_text())));
            if hit {
                out.push(row);
                if out.len() >= MAX_MATCHES {
                    break;
                }
            }
        }
        out
    })
    .await?;
    Ok(Json(
        json!({"matches": matches, "truncated": matches.len() >= MAX_MATCHES}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_model::{SpanKind, StatusCode};

    fn span(id: u8, parent: Option<u8>, start: i64, end: i64) -> Span {
        Span {
            tenant: "default".into(),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            trace_state: String::new(),
            name: format!("op{id}"),
            kind: SpanKind::Server,
            start_ns: start,
            end_ns: end,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            service: "svc".into(),
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            resource: Vec::new(),
            scope_name: String::new(),
            scope_version: String::new(),
        }
    }

    #[test]
    fn rows_are_depth_first_with_subtree_sizes_and_the_critical_path() {
        // 1 ─┬─ 2 ── 4
        //    └─ 3          (3 ends last: on the critical path; 2 ends before 3 starts… no:
        //                   2 runs 10..50, 3 runs 60..90, so the path is 1, 3, 2, 4)
        let spans = vec![
            span(3, Some(1), 60, 90),
            span(4, Some(2), 20, 40),
            span(1, None, 0, 100),
            span(2, Some(1), 10, 50),
            // A cycle: 5's parent is 6 and 6's parent is 5.
            span(5, Some(6), 0, 1),
            span(6, Some(5), 0, 1),
        ];
        let t = TraceTree::new(spans, Vec::new());
        let ids: Vec<u8> = t.order.iter().map(|&i| t.spans[i].span_id.0[0]).collect();
        assert_eq!(&ids[..4], &[1, 2, 4, 3]);
        assert_eq!(ids.len(), 6, "spans in a cycle are shown, once");
        assert_eq!(&t.parent[..4], &[-1, 0, 1, 0]);
        assert_eq!(&t.depth[..4], &[0, 1, 2, 1]);
        assert_eq!(&t.subtree[..4], &[4, 2, 1, 1]);
        assert_eq!(&t.children[..4], &[2, 1, 0, 0]);
        let path: Vec<u8> = t
            .critical
            .iter()
            .map(|&i| t.spans[i].span_id.0[0])
            .collect();
        assert_eq!(path, vec![1, 3, 2, 4]);
    }

    #[test]
    fn a_deep_chain_needs_no_recursion() {
        let n = 200_000u32;
        let spans: Vec<Span> = (0..n)
            .map(|i| {
                let mut s = span(0, None, i as i64, 2 * n as i64 - i as i64);
                s.span_id = SpanId((i as u64 + 1).to_be_bytes());
                s.parent_span_id = (i > 0).then(|| SpanId((i as u64).to_be_bytes()));
                s
            })
            .collect();
        let t = TraceTree::new(spans, Vec::new());
        assert_eq!(t.depth[n as usize - 1], n - 1);
        assert_eq!(t.subtree[0], n);
        assert_eq!(t.critical.len(), n as usize);
    }
}
