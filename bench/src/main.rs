//! `cargo run --release -p triad-bench`: Triad's ingest and query benchmarks, each next
//! to a reference measured in the same run (raw tantivy on the same documents).
//!
//! What it measures, with the collector in this process behind its real gRPC receiver:
//! 1. raw tantivy indexing of the log documents (1 and 2 threads, every field stored);
//! 2. OTLP log ingest of the same documents: lines/s, MB/s of their JSON-line form,
//!    counted until acknowledged and until searchable;
//! 3. OTLP span ingest: spans/s until acknowledged and until searchable;
//! 4. trace-by-ID and log query latency (p50/p99) once the stores hold the full volume;
//! 5. bytes on disk per span and per raw log byte; peak RSS of the process.
//!
//! Requests are generated before the timed phases, so client-side generation is not
//! counted; protobuf encoding and the loopback network are.

mod datagen;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use datagen::{GenLog, Rng};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prometheus_client::registry::Registry;
use tantivy::schema::{FAST, JsonObjectOptions, STORED, STRING, Schema, TEXT};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_collector::Collector;
use triad_model::config::Config;
use triad_model::store::{LogQuery, LogRead, TraceRead};
use triad_model::{DEFAULT_TENANT, TraceId};

const BATCH: usize = 1_000;
const SPANS_PER_TRACE: usize = 5;

struct Args {
    log_lines: usize,
    timed_log_lines: usize,
    spans: usize,
    timed_spans: usize,
    clients: usize,
    queries: usize,
    keep_data: Option<std::path::PathBuf>,
    indexer_threads: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        log_lines: 5_000_000,
        timed_log_lines: 1_000_000,
        spans: 1_000_000,
        timed_spans: 250_000,
        clients: 4,
        queries: 300,
        keep_data: None,
        indexer_threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name}: not a number"))
        };
        match flag.as_str() {
            "--quick" => {
                a = Args {
                    log_lines: 40_000,
                    timed_log_lines: 20_000,
                    spans: 20_000,
                    timed_spans: 10_000,
                    clients: 2,
                    queries: 50,
                    ..a
                }
            }
            "--log-lines" => a.log_lines = num("--log-lines")?,
            "--timed-log-lines" => a.timed_log_lines = num("--timed-log-lines")?,
            "--spans" => a.spans = num("--spans")?,
            "--timed-spans" => a.timed_spans = num("--timed-spans")?,
            "--clients" => a.clients = num("--clients")?,
            "--queries" => a.queries = num("--queries")?,
            "--indexer-threads" => a.indexer_threads = num("--indexer-threads")?,
            "--keep-data" => {
                a.keep_data = Some(it.next().context("--keep-data needs a directory")?.into())
            }
            "--help" | "-h" => {
                println!(
                    "usage: triad-bench [--quick] [--log-lines N] [--timed-log-lines N] [--spans N] [--timed-spans N] [--clients N] [--queries N] [--indexer-threads N] [--keep-data DIR]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    a.timed_log_lines = a.timed_log_lines.min(a.log_lines);
    a.timed_spans = a.timed_spans.min(a.spans);
    Ok(a)
}

struct Row(String, String, String);

fn row(table: &mut Vec<Row>, what: &str, value: String, note: &str) {
    println!("  {what}: {value} {note}");
    table.push(Row(what.to_string(), value, note.to_string()));
}

fn gen_logs(rng: &mut Rng, n: usize, start_ns: u64) -> Vec<GenLog> {
    (0..n)
        .map(|k| datagen::log_record(rng, start_ns + k as u64 * 1_000))
        .collect()
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "n/a".into())
}

/// Raw tantivy: the same documents, a plain schema with every field stored.
fn raw_tantivy(docs: &[GenLog], threads: usize) -> anyhow::Result<(Duration, u64)> {
    let mut b = Schema::builder();
    let ts = b.add_i64_field("ts", FAST | STORED);
    let level = b.add_text_field("level", STRING | STORED);
    let service = b.add_text_field("service", STRING | STORED);
    let trace_id = b.add_text_field("trace_id", STRING | STORED);
    let span_id = b.add_text_field("span_id", STRING | STORED);
    let body = b.add_text_field("body", TEXT | STORED);
    let attrs = b.add_json_field("attributes", JsonObjectOptions::from(TEXT | STORED));
    let dir = tempfile::tempdir()?;
    let index = tantivy::Index::create_in_dir(dir.path(), b.build())?;
    // The documents are parsed from their JSON lines outside the timed part.
    let parsed: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| serde_json::from_str(&d.json_line))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut w: tantivy::IndexWriter = index.writer_with_num_threads(threads, 128 << 20)?;
    for v in &parsed {
        let mut d = tantivy::TantivyDocument::default();
        d.add_i64(ts, v["timestamp"].as_i64().unwrap_or(0));
        d.add_text(level, v["level"].as_str().unwrap_or(""));
        d.add_text(service, v["service"].as_str().unwrap_or(""));
        d.add_text(trace_id, v["trace_id"].as_str().unwrap_or(""));
        d.add_text(span_id, v["span_id"].as_str().unwrap_or(""));
        d.add_text(body, v["message"].as_str().unwrap_or(""));
        if let serde_json::Value::Object(m) = &v["attributes"] {
            d.add_object(
                attrs,
                m.iter()
                    .map(|(k, v)| (k.clone(), tantivy::schema::OwnedValue::from(v.clone())))
                    .collect(),
            );
        }
        w.add_document(d)?;
    }
    w.commit()?;
    let elapsed = started.elapsed();
    w.wait_merging_threads()?;
    Ok((elapsed, dir_bytes(dir.path())))
}

/// One export request of either signal.
enum Export {
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
}

/// Sends every request over `clients` concurrent gRPC connections; returns when all
/// were acknowledged.
async fn send_all(endpoint: &str, requests: Vec<Export>, clients: usize) -> anyhow::Result<()> {
    let queue = Arc::new(std::sync::Mutex::new(requests));
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let (queue, endpoint) = (queue.clone(), endpoint.to_string());
        set.spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(endpoint)?
                .connect()
                .await?;
            let mut logs =
                LogsServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20);
            let mut traces = TraceServiceClient::new(channel).max_encoding_message_size(64 << 20);
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                match next {
                    None => return Ok::<(), anyhow::Error>(()),
                    Some(Export::Logs(r)) => drop(logs.export(r).await?),
                    Some(Export::Traces(r)) => drop(traces.export(r).await?),
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Bytes per document by component and field (set TRIAD_BENCH_SPACE=1).
fn space_report(name: &str, searchers: &[tantivy::Searcher]) {
    let mut per: std::collections::BTreeMap<String, u64> = Default::default();
    let mut docs = 0u64;
    for s in searchers {
        let Ok(usage) = s.space_usage() else { continue };
        for seg in usage.segments() {
            docs += u64::from(seg.num_docs());
            for (kind, fields) in [
                ("term", seg.termdict()),
                ("postings", seg.postings()),
                ("positions", seg.positions()),
                ("fast", seg.fast_fields()),
            ] {
                for f in fields.fields() {
                    *per.entry(format!("{kind} {}", f.field_name())).or_default() +=
                        f.total().get_bytes();
                }
            }
            *per.entry("store".into()).or_default() += seg.store().total().get_bytes();
        }
    }
    println!("space per document, {name} ({docs} docs):");
    let mut v: Vec<_> = per.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (k, b) in v.iter().take(15) {
        println!("  {k:<28} {:>7.1} B", *b as f64 / docs.max(1) as f64);
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn all_logs(now: i64) -> LogQuery {
    LogQuery {
        tenant: DEFAULT_TENANT.into(),
        query: String::new(),
        start_ns: 0,
        end_ns: now + 86_400_000_000_000,
        limit: 1,
        histogram_buckets: 0,
    }
}

async fn wait_searchable<F: Fn() -> u64>(
    what: &str,
    expected: u64,
    count: F,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while count() < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: data not searchable after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut table = Vec::new();
    let mut rng = Rng::new(0x7121AD);
    let now_ns = triad_model::now_ns() as u64;
    let base_ns = now_ns - 3_600_000_000_000;
    println!(
        "triad-bench: {} log lines ({} timed), {} spans ({} timed), {} clients",
        args.log_lines, args.timed_log_lines, args.spans, args.timed_spans, args.clients
    );

    // 1. Reference: raw tantivy on the same documents.
    let timed_logs = gen_logs(&mut rng, args.timed_log_lines, base_ns);
    let raw_bytes: u64 = timed_logs
        .iter()
        .map(|l| l.json_line.len() as u64 + 1)
        .sum();
    let mb = raw_bytes as f64 / 1e6;
    println!(
        "reference: raw tantivy, {} lines, {:.0} bytes/line",
        timed_logs.len(),
        raw_bytes as f64 / timed_logs.len() as f64
    );
    let (t1, raw_disk) = raw_tantivy(&timed_logs, 1)?;
    let (t2, _) = raw_tantivy(&timed_logs, 2)?;
    let raw1 = mb / t1.as_secs_f64();
    row(
        &mut table,
        "raw tantivy, 1 thread (reference)",
        format!("{raw1:.1} MB/s"),
        &format!("{:.0} lines/s", timed_logs.len() as f64 / t1.as_secs_f64()),
    );
    row(
        &mut table,
        "raw tantivy, 2 threads (reference)",
        format!("{:.1} MB/s", mb / t2.as_secs_f64()),
        &format!("{:.0} lines/s", timed_logs.len() as f64 / t2.as_secs_f64()),
    );
    row(
        &mut table,
        "raw tantivy bytes on disk per raw byte",
        format!("{:.3}", raw_disk as f64 / raw_bytes as f64),
        "(naive schema, lz4 doc store)",
    );

    // 2. Triad, in process, behind its real gRPC receiver.
    let data = tempfile::tempdir()?;
    let data_path = args
        .keep_data
        .clone()
        .unwrap_or_else(|| data.path().to_path_buf());
    let threads = args.indexer_threads;
    let cfg = Config::default()
        .validate()
        .and_then(|c| {
            c.modify(|c| {
                c.collector.logs.indexer_threads = threads;
                c.collector.traces.indexer_threads = threads;
            })
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut registry = Registry::default();
    let collector = Arc::new(Collector::open(&cfg.collector, &data_path, &mut registry)?);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", grpc.local_addr()?);
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    collector.spawn(grpc, http, Arc::new(registry), &cancel, &mut tasks);
    let logs = collector.logs.clone();
    let traces = collector.traces.clone();
    let log_count = |logs: &triad_collector::log_index::LogStore| {
        logs.search(&all_logs(now_ns as i64))
            .map(|r| r.total)
            .unwrap_or(0)
    };

    let mut sample_traces: Vec<String> = timed_logs
        .iter()
        .step_by(997)
        .map(|g| datagen::hex(&g.otlp.trace_id))
        .collect();
    let requests: Vec<_> = timed_logs
        .chunks(BATCH)
        .map(|c| {
            c.iter()
                .map(|g| GenLog {
                    otlp: g.otlp.clone(),
                    service: g.service,
                    json_line: String::new(),
                })
                .collect()
        })
        .map(datagen::logs_request)
        .collect();
    drop(timed_logs);
    let started = Instant::now();
    send_all(
        &endpoint,
        requests.into_iter().map(Export::Logs).collect(),
        args.clients,
    )
    .await?;
    let acked = started.elapsed();
    wait_searchable("logs", args.timed_log_lines as u64, || log_count(&logs)).await?;
    let searchable = started.elapsed();
    let ours = mb / acked.as_secs_f64();
    row(
        &mut table,
        "Triad OTLP/gRPC log ingest, acknowledged",
        format!("{ours:.1} MB/s"),
        &format!(
            "{:.0} lines/s, {:.0}% of raw tantivy 1 thread",
            args.timed_log_lines as f64 / acked.as_secs_f64(),
            100.0 * ours / raw1
        ),
    );
    row(
        &mut table,
        "Triad OTLP/gRPC log ingest, searchable",
        format!("{:.1} MB/s", mb / searchable.as_secs_f64()),
        &format!(
            "{:.0} lines/s",
            args.timed_log_lines as f64 / searchable.as_secs_f64()
        ),
    );

    // Fill up to the full log volume (not reported as throughput).
    let mut sent = args.timed_log_lines;
    let mut raw_total = raw_bytes;
    while sent < args.log_lines {
        let n = (args.log_lines - sent).min(100_000);
        let chunk = gen_logs(&mut rng, n, base_ns + sent as u64 * 1_000);
        raw_total += chunk
            .iter()
            .map(|l| l.json_line.len() as u64 + 1)
            .sum::<u64>();
        sample_traces.extend(
            chunk
                .iter()
                .step_by(997)
                .map(|g| datagen::hex(&g.otlp.trace_id)),
        );
        let reqs: Vec<ExportLogsServiceRequest> = chunk
            .chunks(BATCH)
            .map(|c| {
                c.iter()
                    .map(|g| GenLog {
                        otlp: g.otlp.clone(),
                        service: g.service,
                        json_line: String::new(),
                    })
                    .collect()
            })
            .map(datagen::logs_request)
            .collect();
        send_all(
            &endpoint,
            reqs.into_iter().map(Export::Logs).collect(),
            args.clients,
        )
        .await?;
        sent += n;
    }
    wait_searchable("all logs", args.log_lines as u64, || log_count(&logs)).await?;

    // 3. Spans.
    let traces_per_req = BATCH / SPANS_PER_TRACE;
    let mut known: Vec<TraceId> = Vec::new();
    let mut span_reqs = Vec::new();
    for _ in 0..args.timed_spans.div_ceil(BATCH) {
        let (req, ids) = datagen::traces_request(&mut rng, traces_per_req, base_ns);
        known.extend(ids.iter().step_by(50).map(|t| TraceId(*t)));
        span_reqs.push(req);
    }
    let timed_spans = span_reqs.len() * BATCH;
    let span_count = |traces: &triad_collector::trace_store::TraceStore| {
        traces
            .store()
            .splits()
            .iter()
            .map(|s| s.searcher().num_docs())
            .sum::<u64>()
    };
    let started = Instant::now();
    send_all(
        &endpoint,
        span_reqs.into_iter().map(Export::Traces).collect(),
        args.clients,
    )
    .await?;
    let acked = started.elapsed();
    wait_searchable("spans", timed_spans as u64, || span_count(&traces)).await?;
    let searchable = started.elapsed();
    row(
        &mut table,
        "Triad OTLP/gRPC span ingest, acknowledged",
        format!("{:.0} spans/s", timed_spans as f64 / acked.as_secs_f64()),
        "",
    );
    row(
        &mut table,
        "Triad OTLP/gRPC span ingest, searchable",
        format!(
            "{:.0} spans/s",
            timed_spans as f64 / searchable.as_secs_f64()
        ),
        "",
    );
    let mut spans_total = timed_spans;
    while spans_total < args.spans {
        let reqs: Vec<_> = (0..50)
            .map(|_| {
                let (req, ids) = datagen::traces_request(&mut rng, traces_per_req, base_ns);
                known.extend(ids.iter().step_by(50).map(|t| TraceId(*t)));
                req
            })
            .collect();
        spans_total += reqs.len() * BATCH;
        send_all(
            &endpoint,
            reqs.into_iter().map(Export::Traces).collect(),
            args.clients,
        )
        .await?;
    }
    wait_searchable("all spans", spans_total as u64, || span_count(&traces)).await?;

    // 4. Query latency at full volume.
    let mut lat = Vec::new();
    for k in 0..args.queries {
        let id = known[(k * 7919) % known.len()];
        let t = Instant::now();
        let spans = traces.trace(DEFAULT_TENANT, id)?;
        lat.push(t.elapsed());
        anyhow::ensure!(
            spans.len() == SPANS_PER_TRACE,
            "trace {id} has {} spans",
            spans.len()
        );
    }
    let (p50, p99) = percentiles(lat);
    row(
        &mut table,
        &format!("trace by ID, {spans_total} spans stored"),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
        "store API, 5-span traces",
    );

    let services = datagen::SERVICES;
    let mut lat = Vec::new();
    for k in 0..args.queries {
        let q = match k % 4 {
            0 => format!(
                "trace_id:{}",
                sample_traces
                    .get(k % sample_traces.len().max(1))
                    .cloned()
                    .unwrap_or_default()
            ),
            1 => format!("service:{} level:error", services[k % services.len()]),
            2 => "ETIMEDOUT".to_string(),
            _ => "\"/api/v1/cart\" user_id".to_string(),
        };
        let query = LogQuery {
            query: q,
            limit: 100,
            histogram_buckets: 60,
            ..all_logs(now_ns as i64)
        };
        let t = Instant::now();
        logs.search(&query)?;
        lat.push(t.elapsed());
    }
    let (p50, p99) = percentiles(lat);
    row(
        &mut table,
        &format!("log query, {} lines stored", args.log_lines),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
        "trace_id / service+level / word / phrase; 100 hits + exact total + 60-bucket histogram",
    );

    // 5. Disk and memory.
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    collector.shutdown().await;
    let log_disk = logs.store().index_bytes();
    let trace_disk = traces.store().index_bytes();
    let wal_left =
        dir_bytes(&data_path.join("logs/wal")) + dir_bytes(&data_path.join("traces/wal"));
    row(
        &mut table,
        "log bytes on disk per raw log byte",
        format!("{:.3}", log_disk as f64 / raw_total as f64),
        &format!(
            "{:.1} MB for {:.1} MB of JSON lines",
            log_disk as f64 / 1e6,
            raw_total as f64 / 1e6
        ),
    );
    row(
        &mut table,
        "trace bytes on disk per span",
        format!("{:.0} B", trace_disk as f64 / spans_total as f64),
        &format!("{:.1} MB", trace_disk as f64 / 1e6),
    );
    if std::env::var_os("TRIAD_BENCH_SPACE").is_some() {
        space_report("logs", &logs.store().all_searchers());
        space_report("traces", &traces.store().all_searchers());
    }
    row(
        &mut table,
        "write-ahead log left after clean shutdown",
        format!("{wal_left} B"),
        "",
    );
    row(
        &mut table,
        "peak RSS (whole process, incl. generated requests)",
        proc_status("VmHWM:"),
        "",
    );

    println!("\n| measurement | value | notes |\n|---|---|---|");
    for Row(a, b, c) in &table {
        println!("| {a} | {b} | {c} |");
    }
    Ok(())
}
