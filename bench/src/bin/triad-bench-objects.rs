//! `scripts/bench.sh objects`: object-storage mode against the local disk, in one run,
//! on the real engines (SeaweedFS for S3, PostgreSQL for the metastore, started here):
//!
//! 1. **upload**: every sealed split bundled and uploaded as the publisher does, to
//!    SeaweedFS and, as the reference, to a local directory; MB/s and splits/s.
//! 2. **metastore**: the split rows plus synthetic ones up to `--rows` in PostgreSQL;
//!    listing one hour of published splits, and all of them, p50/p99.
//! 3. **merge**: the merger combines the uploaded small splits (read back from object
//!    storage, merged, uploaded, published with their inputs marked); records/s and
//!    input MB/s.
//! 4. **queries** over `--splits` log splits and as many trace splits: a log term query
//!    (a word in one split) and trace by ID, p50/p99 — from the local splits, cold from
//!    object storage (no cache: every read a ranged GET), and warm from the block cache;
//!    trace by ID also over a tenth of the splits, to show how it grows with them.
//! 5. **ingest**: a collector (in process) acknowledging `--lines` log lines from four
//!    concurrent senders, with object storage on (splits sealed every 5 s, uploaded and
//!    published meanwhile) and off (the same seals, nothing uploaded); lines/s, and the
//!    time until the last split is published.
//!
//! Phases are apart: the stores are closed (merges done) before uploads, merges run
//! after every upload, queries after the merges (they read the uploaded splits by key),
//! ingest last. SeaweedFS runs on the same two cores, so the object-storage figures
//! include the S3 server's own work. Figures go to docs/benchmarks.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use triad_metastore::testing::Postgres;
use triad_metastore::{ListQuery, Metastore, Publish, Signal as Kind, SplitRow, SplitState};
use triad_model::config::StoreConfig;
use triad_model::store::{LogQuery, LogRead, TraceRead};
use triad_model::{KeyValue, LogRecord, Span, SpanId, SpanKind, StatusCode, TraceId, Value};
use triad_splits::bundle_dir::BundleDirectory;
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::split::Split;
use triad_splits::store::{Signal, Store};
use triad_splits::trace_store::{SpanSignal, TraceStore};
use triad_storage::bundle::Bundle;
use triad_storage::cache::{BlockCache, ObjectReader};
use triad_storage::testing::SeaweedFs;
use triad_storage::{Storage, StorageMetrics};

struct Opts {
    splits: usize,
    docs: usize,
    rows: usize,
    runs: usize,
    lines: usize,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        splits: 1000,
        docs: 200,
        rows: 100_000,
        runs: 50,
        lines: 2_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> anyhow::Result<usize> {
            args.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--quick" => {
                o.splits = 100;
                o.rows = 10_000;
                o.runs = 20;
                o.lines = 300_000;
            }
            "--splits" => o.splits = num("--splits")?,
            "--docs" => o.docs = num("--docs")?,
            "--rows" => o.rows = num("--rows")?,
            "--lines" => o.lines = num("--lines")?,
            "--help" | "-h" => {
                println!(
                    "triad-bench-objects [--quick] [--splits N] [--docs N] [--rows N] [--lines N]\n\
                     object-storage mode next to local disk: upload, metastore listing, \
                     merges, queries, ingest"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

const BASE_NS: i64 = 1_750_000_000_000_000_000;
const SPLIT_NS: i64 = 60_000_000_000;

fn log(i: usize, split: usize) -> LogRecord {
    LogRecord {
        tenant: "default".into(),
        timestamp_ns: BASE_NS + split as i64 * SPLIT_NS + i as i64 * 1000,
        observed_ns: 0,
        severity_text: if i.is_multiple_of(10) {
            "error"
        } else {
            "info"
        }
        .into(),
        severity_number: 0,
        body: format!(
            "GET /api/v1/cart/{i} answered in {} ms for user u{} marker{split}",
            i % 97,
            i % 1013
        ),
        service: ["gateway", "cart", "payments"][i % 3].into(),
        host: "bench".into(),
        trace_id: None,
        span_id: None,
        source: "bench".into(),
        attributes: vec![KeyValue::new("http.status_code", Value::Int(200))],
    }
}

fn trace_id(split: usize, t: usize) -> TraceId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(split as u64 + 1).to_be_bytes());
    b[8..].copy_from_slice(&(t as u64 + 1).to_be_bytes());
    TraceId(b)
}

fn span(i: usize, split: usize) -> Span {
    let t = i / 4;
    Span {
        tenant: "default".into(),
        trace_id: trace_id(split, t),
        span_id: SpanId(((i as u64) + 1).to_be_bytes()),
        parent_span_id: None,
        trace_state: String::new(),
        name: ["GET /cart", "charge", "lookup", "render"][i % 4].into(),
        kind: SpanKind::Server,
        start_ns: BASE_NS + split as i64 * SPLIT_NS + i as i64 * 1000,
        end_ns: BASE_NS + split as i64 * SPLIT_NS + i as i64 * 1000 + 5_000_000,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        service: ["gateway", "cart", "payments", "search"][i % 4].into(),
        attributes: vec![KeyValue::new("http.route", Value::Str("/cart".into()))],
        events: vec![],
        links: vec![],
        resource: vec![],
        scope_name: "bench".into(),
        scope_version: String::new(),
    }
}

fn cfg(docs: usize) -> StoreConfig {
    StoreConfig {
        commit_interval_ms: 20,
        split_max_docs: docs as u64,
        indexer_memory_mb: 32,
        ..StoreConfig::default()
    }
}

/// Writes `splits` splits of `docs` records each into a store at `dir`, then closes it.
fn build<S: Signal>(
    rt: &tokio::runtime::Runtime,
    signal: S,
    dir: &Path,
    opts: &Opts,
    record: impl Fn(usize, usize) -> S::Record,
) -> anyhow::Result<()> {
    let store = Store::open(signal, dir, cfg(opts.docs), StoreMetrics::unregistered())?;
    for split in 0..opts.splits {
        let records: Vec<_> = (0..opts.docs).map(|i| record(i, split)).collect();
        rt.block_on(store.append(records))?;
        let want = (split + 1) * opts.docs;
        let deadline = Instant::now() + Duration::from_secs(60);
        while store
            .splits()
            .iter()
            .map(|s| s.meta().docs as usize)
            .sum::<usize>()
            < want
        {
            anyhow::ensure!(Instant::now() < deadline, "split {split} was not committed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    store.shutdown();
    Ok(())
}

/// An uploaded split: ID, object key, bytes, time range.
type Uploaded = (String, String, u64, i64, i64);

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

fn time(runs: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    f(usize::MAX); // warm-up
    let mut lat: Vec<Duration> = (0..runs)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

/// Uploads every split of `store` as the publisher does; returns bytes and the keys.
fn upload<S: Signal>(
    rt: &tokio::runtime::Runtime,
    store: &Store<S>,
    storage: &Storage,
    kind: &str,
    scratch: &Path,
) -> anyhow::Result<(u64, Vec<Uploaded>)> {
    let mut total = 0;
    let mut out = Vec::new();
    for split in store.splits() {
        let file = scratch.join(format!("{kind}-{}.bundle", split.id));
        let len = split.write_bundle(&file)?;
        let key = format!("{kind}/bench/{}.split", split.id);
        rt.block_on(storage.upload_file(&key, &file))?;
        std::fs::remove_file(&file)?;
        total += len;
        let m = split.meta();
        out.push((split.id.clone(), key, len, m.min_ts, m.max_ts));
    }
    Ok((total, out))
}

fn open_remote<S: Signal + Clone>(
    rt: &tokio::runtime::Runtime,
    signal: &S,
    storage: &Storage,
    cache: Option<Arc<BlockCache>>,
    keys: &[Uploaded],
) -> anyhow::Result<Vec<Arc<Split>>> {
    keys.iter()
        .map(|(id, key, len, _, _)| {
            let reader = ObjectReader::new(storage.clone(), cache.clone(), key, *len);
            let bundle = rt.block_on(Bundle::open(reader))?;
            let dir = BundleDirectory::new(bundle, rt.handle().clone());
            let s = signal.clone();
            Ok(Arc::new(Split::open_bundle(id, dir, &|i| s.configure(i))?))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = opts()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    eprintln!("== starting SeaweedFS and PostgreSQL");
    let weed = SeaweedFs::start(&dir.path().join("s3"), "triad")?;
    let pg = Postgres::start()?;
    let s3 = Storage::open(
        &weed.config("triad", "bench"),
        dir.path(),
        StorageMetrics::unregistered(),
    )?;
    let local = Storage::local(&dir.path().join("objects"), StorageMetrics::unregistered())?;

    eprintln!(
        "== writing {} log and {} trace splits of {} records",
        o.splits, o.splits, o.docs
    );
    build(&rt, LogSignal::new(), &dir.path().join("logs"), &o, log)?;
    build(&rt, SpanSignal::new(), &dir.path().join("traces"), &o, span)?;
    let m = StoreMetrics::unregistered;
    let logs = Store::open_read_only(LogSignal::new(), &dir.path().join("logs"), cfg(o.docs), m())?;
    let traces = Store::open_read_only(
        SpanSignal::new(),
        &dir.path().join("traces"),
        cfg(o.docs),
        m(),
    )?;
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;

    let mut rows: Vec<(String, String)> = Vec::new();
    println!("\n| phase | measure | object storage (SeaweedFS) | local directory |");
    println!("|---|---|---|---|");
    let t = Instant::now();
    let (log_bytes, log_keys) = upload(&rt, &logs, &s3, "logs", &scratch)?;
    let (trace_bytes, trace_keys) = upload(&rt, &traces, &s3, "traces", &scratch)?;
    let s3_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    upload(&rt, &logs, &local, "logs", &scratch)?;
    upload(&rt, &traces, &local, "traces", &scratch)?;
    let local_secs = t.elapsed().as_secs_f64();
    let mb = (log_bytes + trace_bytes) as f64 / 1e6;
    let n = (log_keys.len() + trace_keys.len()) as f64;
    println!(
        "| upload (bundle + put) | MB/s, splits/s | {:.1} MB/s, {:.0} splits/s | {:.1} MB/s, {:.0} splits/s |",
        mb / s3_secs,
        n / s3_secs,
        mb / local_secs,
        n / local_secs
    );
    rows.push((
        "bundle size".into(),
        format!("{:.1} KB per split", mb * 1e3 / n),
    ));

    // Metastore: the real rows, then synthetic ones to `rows`.
    let meta = rt.block_on(Metastore::open(&pg.config(), dir.path()))?;
    let now = triad_model::now_ns();
    let stage_all = |kind: Kind, keys: &[Uploaded]| -> anyhow::Result<()> {
        for (id, key, len, min, max) in keys {
            let row = SplitRow {
                split_id: format!("bench/{id}"),
                signal: kind,
                node_id: "bench".into(),
                state: SplitState::Staged,
                object_key: key.clone(),
                bytes: *len,
                docs: o.docs as u64,
                min_ts: *min,
                max_ts: *max,
                tenants: vec!["default".into()],
                created_ms: 0,
                updated_ms: 0,
            };
            rt.block_on(meta.stage(&row))?;
            rt.block_on(meta.publish(&Publish {
                split_ids: vec![row.split_id.clone()],
                ..Publish::default()
            }))?;
        }
        Ok(())
    };
    stage_all(Kind::Logs, &log_keys)?;
    stage_all(Kind::Traces, &trace_keys)?;

    // Merges of the published splits (before the synthetic rows, which have no object).
    let merger = triad_collector::merge::Merger::new(
        s3.clone(),
        meta.clone(),
        Arc::new(triad_collector::blocks::PublishedBlocks::new(
            s3.clone(),
            None,
            meta.clone(),
        )),
        "bench".into(),
        scratch.join("merge"),
        (10 * o.docs as u64, 10 * o.docs as u64),
        Duration::ZERO,
        Duration::from_secs(60),
        triad_collector::metrics::MergeMetrics::unregistered(),
    );
    let t = Instant::now();
    let merges = rt
        .block_on(merger.round())
        .map_err(|e| anyhow::anyhow!("merge: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    rows.push((
        format!("merge: {} splits into {merges}", 2 * o.splits),
        format!(
            "{:.0} records/s, {:.1} input MB/s ({:.1} s)",
            (2 * o.splits * o.docs) as f64 / secs,
            mb / secs,
            secs
        ),
    ));
    let synthetic = o.rows.saturating_sub(log_keys.len() + trace_keys.len());
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..8 {
            let meta = meta.clone();
            tasks.spawn(async move {
                for i in (w..synthetic).step_by(8) {
                    let ts = now - (i as i64) * 30_000_000_000;
                    let row = SplitRow {
                        split_id: format!("synthetic/{i:08}"),
                        signal: Kind::Logs,
                        node_id: "synthetic".into(),
                        state: SplitState::Staged,
                        object_key: format!("logs/synthetic/{i:08}.split"),
                        bytes: 1,
                        docs: 1,
                        min_ts: ts - 30_000_000_000,
                        max_ts: ts,
                        tenants: vec!["default".into()],
                        created_ms: 0,
                        updated_ms: 0,
                    };
                    meta.stage(&row).await?;
                    meta.publish(&Publish {
                        split_ids: vec![row.split_id],
                        ..Publish::default()
                    })
                    .await?;
                }
                Ok::<(), triad_metastore::MetastoreError>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    let hour = 3_600_000_000_000;
    let (p50, p99) = time(o.runs, |_| {
        let q = ListQuery::published(Kind::Logs, now - hour, now);
        let _ = rt.block_on(meta.list(&q));
    });
    rows.push((
        format!("metastore: list 1 h of {} rows", o.rows),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
    ));
    let (p50, p99) = time(5.min(o.runs), |_| {
        let q = ListQuery::published(Kind::Logs, i64::MIN, i64::MAX);
        let _ = rt.block_on(meta.list(&q));
    });
    rows.push((
        format!("metastore: list all {} rows", o.rows),
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
    ));

    // Queries: local splits, object storage without cache, and with a warm cache.
    let cache = BlockCache::open(
        &dir.path().join("cache"),
        10 << 30,
        1 << 30,
        1 << 20,
        StorageMetrics::unregistered(),
    )?;
    let views: Vec<(&str, LogStore, TraceStore)> = vec![
        (
            "local",
            LogStore::new(logs.clone()),
            TraceStore::new(traces.clone())?,
        ),
        (
            "cold (no cache)",
            LogStore::new(Store::from_splits(
                LogSignal::new(),
                cfg(o.docs),
                m(),
                open_remote(&rt, &LogSignal::new(), &s3, None, &log_keys)?,
            )),
            TraceStore::without_catalog(Store::from_splits(
                SpanSignal::new(),
                cfg(o.docs),
                m(),
                open_remote(&rt, &SpanSignal::new(), &s3, None, &trace_keys)?,
            )),
        ),
        (
            "warm (cache)",
            LogStore::new(Store::from_splits(
                LogSignal::new(),
                cfg(o.docs),
                m(),
                open_remote(&rt, &LogSignal::new(), &s3, Some(cache.clone()), &log_keys)?,
            )),
            TraceStore::without_catalog(Store::from_splits(
                SpanSignal::new(),
                cfg(o.docs),
                m(),
                open_remote(
                    &rt,
                    &SpanSignal::new(),
                    &s3,
                    Some(cache.clone()),
                    &trace_keys,
                )?,
            )),
        ),
    ];
    let target = |i: usize| {
        if i == usize::MAX {
            0
        } else {
            (i * 7919) % o.splits
        }
    };
    println!(
        "\n| query over {} + {} splits | p50 | p99 |",
        o.splits, o.splits
    );
    println!("|---|---|---|");
    for (name, logs, traces) in &views {
        if name.starts_with("warm") {
            // Warm the cache: every query once.
            for i in 0..o.splits {
                let _ = traces.trace("default", trace_id(i, 3));
            }
            for i in 0..o.runs {
                let _ = logs.search(&term_query(target(i)));
            }
        }
        // Cold reads cost a request per touched range: fewer runs.
        let runs = if name.starts_with("cold") {
            o.runs.min(10)
        } else {
            o.runs
        };
        let (p50, p99) = time(runs, |i| {
            let r = logs.search(&term_query(target(i))).map(|r| r.total);
            assert!(matches!(r, Ok(t) if t == o.docs as u64), "{name}: {r:?}");
        });
        println!("| log term query, {name} | {p50:.1} ms | {p99:.1} ms |");
        let (p50, p99) = time(runs, |i| {
            let spans = traces
                .trace("default", trace_id(target(i), 3))
                .map(|s| s.len());
            assert!(matches!(spans, Ok(4)), "{name}: {spans:?}");
        });
        println!("| trace by ID, {name} | {p50:.1} ms | {p99:.1} ms |");
    }
    // How trace by ID grows with the number of splits (no per-split trace-ID filter yet).
    let tenth = &trace_keys[..(o.splits / 10).max(1)];
    let few = TraceStore::without_catalog(Store::from_splits(
        SpanSignal::new(),
        cfg(o.docs),
        m(),
        open_remote(&rt, &SpanSignal::new(), &s3, Some(cache.clone()), tenth)?,
    ));
    let (p50, p99) = time(o.runs, |i| {
        let _ = few.trace("default", trace_id(target(i) % tenth.len(), 3));
    });
    println!(
        "| trace by ID, warm, over {} splits | {p50:.1} ms | {p99:.1} ms |",
        tenth.len()
    );
    let (local, remote) = (
        ingest(&rt, &dir.path().join("ingest-local"), None, o.lines)?,
        ingest(
            &rt,
            &dir.path().join("ingest-s3"),
            Some((s3.clone(), meta.clone())),
            o.lines,
        )?,
    );
    rows.push((
        format!("ingest {} lines, local disk", o.lines),
        format!("{:.0} lines/s", local.0),
    ));
    rows.push((
        format!("ingest {} lines, object storage on", o.lines),
        format!(
            "{:.0} lines/s ({:.0}% of local); sealed splits all published {:.1} s after the last ack",
            remote.0,
            100.0 * remote.0 / local.0,
            remote.1
        ),
    ));
    println!("\n| measure | value |");
    println!("|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    drop(weed);
    Ok(())
}

/// A collector in `dir` acknowledging `lines` log lines from four concurrent senders;
/// with object storage (`remote`), its publisher uploads meanwhile. Returns lines/s and
/// the seconds from the last acknowledgement until every split sealed by then is
/// published.
fn ingest(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    remote: Option<(Storage, Metastore)>,
    lines: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut cfg = triad_model::config::CollectorConfig {
        node_id: "ingest".into(),
        ..Default::default()
    };
    // Seals as object-storage mode makes them (seal_after_secs), in both runs.
    cfg.logs.split_max_age_secs = 5;
    let collector = Arc::new(triad_collector::Collector::open(
        &cfg,
        dir,
        remote.is_some(),
        triad_receiver::limits::Limits::defaults(),
        &mut prometheus_client::registry::Registry::default(),
    )?);
    let cancel = tokio_util::sync::CancellationToken::new();
    let publisher = match remote {
        Some((storage, metastore)) => {
            let publisher = triad_collector::publish::Publisher::new(
                storage,
                metastore,
                cfg.node_id.clone(),
                dir.join("upload"),
                collector.logs.clone(),
                collector.traces.clone(),
                collector.metrics.clone(),
                Duration::from_secs(600),
                triad_collector::metrics::PublishMetrics::unregistered(),
                Arc::new(triad_collector::publish::Backlog::default()),
            );
            Some(rt.spawn(publisher.run(cancel.clone())))
        }
        None => None,
    };
    let per_sender = lines / 4;
    let t = Instant::now();
    rt.block_on(async {
        let mut senders = tokio::task::JoinSet::new();
        for w in 0..4 {
            let logs = collector.logs.clone();
            senders.spawn(async move {
                for b in 0..per_sender / 1000 {
                    let batch: Vec<LogRecord> = (0..1000)
                        .map(|i| {
                            let mut r = log(i, w * 100_000 + b);
                            r.timestamp_ns = triad_model::now_ns();
                            r
                        })
                        .collect();
                    logs.append(batch).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = senders.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    let secs = t.elapsed().as_secs_f64();
    let acked = Instant::now();
    let mut caught_up = 0.0;
    if let Some(publisher) = publisher {
        // Until every split sealed by the last acknowledgement is published (the active
        // one seals by age at its next write).
        let sealed = collector.logs.store().sealed_splits();
        let deadline = Instant::now() + Duration::from_secs(600);
        while sealed.iter().any(|s| {
            s.local_dir()
                .and_then(triad_storage::bundle::published_at)
                .is_none()
        }) {
            anyhow::ensure!(Instant::now() < deadline, "publication did not catch up");
            std::thread::sleep(Duration::from_millis(50));
        }
        caught_up = acked.elapsed().as_secs_f64();
        cancel.cancel();
        rt.block_on(publisher)?;
    }
    rt.block_on(collector.shutdown());
    Ok(((per_sender / 1000 * 1000 * 4) as f64 / secs, caught_up))
}

fn term_query(split: usize) -> LogQuery {
    LogQuery {
        tenant: "default".into(),
        query: format!("marker{split}"),
        start_ns: BASE_NS - 1,
        end_ns: BASE_NS + 1_000_000 * SPLIT_NS,
        limit: 20,
        histogram_buckets: 0,
        oldest_first: false,
    }
}
