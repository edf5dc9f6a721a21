//! `cargo run --release -p triad-bench`: Triad's ingest and query benchmarks, each next
//! to a reference measured in the same run (raw tantivy on the same documents).
//!
//! What it measures, with the real `triad up` binary (built beside this one) as a child
//! process, fed through its gRPC receiver and queried through its HTTP APIs:
//! 1. raw tantivy indexing of the log documents (1 and 2 threads, every field stored);
//! 2. OTLP log ingest of the same documents: lines/s, MB/s of their JSON-line form,
//!    counted until acknowledged and until searchable;
//! 3. OTLP span ingest: spans/s until acknowledged and until searchable;
//! 4. trace-by-ID and log query latency (p50/p99) once the stores hold the full volume;
//! 5. bytes on disk per span and per raw log byte; peak RSS and CPU time of the server.
//!
//! Requests are generated before the timed phases, so client-side generation is not
//! counted; protobuf encoding and the loopback network are.

mod datagen;
#[allow(dead_code)] // shared with the agent benchmark, which uses all of it
mod procstat;
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use datagen::{GenLog, Rng};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use server::{Server, encode};
use tantivy::schema::{FAST, JsonObjectOptions, STORED, STRING, Schema, TEXT};
use tokio::task::JoinSet;
use triad_model::config::StoreConfig;
use triad_splits::log_index::LogSignal;
use triad_splits::metrics::StoreMetrics;
use triad_splits::store::{Signal, Store};
use triad_splits::trace_store::SpanSignal;

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

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not searchable after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Opens a store read-only and prints where its bytes go.
fn space_of<S: Signal>(signal: S, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::open_read_only(
        signal,
        dir,
        StoreConfig::default(),
        StoreMetrics::unregistered(),
    )?;
    space_report(S::NAME, &store.all_searchers());
    Ok(())
}

fn to_export(chunk: &[GenLog]) -> ExportLogsServiceRequest {
    datagen::logs_request(
        chunk
            .iter()
            .map(|g| GenLog {
                otlp: g.otlp.clone(),
                service: g.service,
                json_line: String::new(),
            })
            .collect(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut table = Vec::new();
    let mut rng = Rng::new(0x7121AD);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
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
    let lines = timed_logs.len() as f64;
    row(
        &mut table,
        "raw tantivy, 1 thread (reference)",
        format!("{raw1:.1} MB/s"),
        &format!("{:.0} lines/s", lines / t1.as_secs_f64()),
    );
    row(
        &mut table,
        "raw tantivy, 2 threads (reference)",
        format!("{:.1} MB/s", mb / t2.as_secs_f64()),
        &format!("{:.0} lines/s", lines / t2.as_secs_f64()),
    );
    row(
        &mut table,
        "raw tantivy bytes on disk per raw byte",
        format!("{:.3}", raw_disk as f64 / raw_bytes as f64),
        "(plain schema, lz4 doc store)",
    );

    // 2. Triad: the real binary, fed over OTLP/gRPC.
    let data = tempfile::tempdir()?;
    let data_path = args
        .keep_data
        .clone()
        .unwrap_or_else(|| data.path().join("data"));
    let config = data.path().join("triad.yaml");
    let t = args.indexer_threads;
    std::fs::write(
        &config,
        format!(
            "collector:\n  logs: {{indexer_threads: {t}}}\n  traces: {{indexer_threads: {t}}}\n"
        ),
    )?;
    let mut server = Server::start(&data_path, &config)?;
    let idle_rss = server.rss_kib();

    let mut sample_traces: Vec<String> = timed_logs
        .iter()
        .step_by(997)
        .map(|g| datagen::hex(&g.otlp.trace_id))
        .collect();
    let requests: Vec<Export> = timed_logs
        .chunks(BATCH)
        .map(to_export)
        .map(Export::Logs)
        .collect();
    drop(timed_logs);
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    send_all(&server.grpc, requests, args.clients).await?;
    let acked = started.elapsed();
    wait_until("logs", || {
        server.log_total("") >= args.timed_log_lines as u64
    })?;
    let searchable = started.elapsed();
    let cpu = server.cpu_seconds() - cpu0;
    row(
        &mut table,
        "Triad log ingest, acknowledged",
        format!("{:.1} MB/s", mb / acked.as_secs_f64()),
        &format!("{:.0} lines/s", lines / acked.as_secs_f64()),
    );
    row(
        &mut table,
        "Triad log ingest, searchable",
        format!("{:.1} MB/s", mb / searchable.as_secs_f64()),
        &format!(
            "{:.0} lines/s, {:.0}% of raw tantivy 1 thread",
            lines / searchable.as_secs_f64(),
            100.0 * (mb / searchable.as_secs_f64()) / raw1
        ),
    );
    row(
        &mut table,
        "Triad CPU per GB of log lines ingested",
        format!("{:.0} CPU-s/GB", cpu / (mb / 1e3)),
        "server process, user + system",
    );

    // 3. Spans. Searchable = the traces of the last requests sent are found complete.
    let traces_per_req = BATCH / SPANS_PER_TRACE;
    let mut known: Vec<String> = Vec::new();
    let mut span_reqs = Vec::new();
    let mut probes = Vec::new();
    for _ in 0..args.timed_spans.div_ceil(BATCH) {
        let (req, ids) = datagen::traces_request(&mut rng, traces_per_req, base_ns);
        known.extend(ids.iter().step_by(50).map(|t| datagen::hex(t)));
        // Clients pop requests from the end, so the first requests are sent last; a
        // commit covers everything acknowledged before it, so probing those suffices.
        if probes.len() < 2 * args.clients {
            probes.push(datagen::hex(&ids[ids.len() - 1]));
        }
        span_reqs.push(Export::Traces(req));
    }
    let timed_spans = span_reqs.len() * BATCH;
    let complete = |id: &str| {
        server
            .get(&format!("/api/traces/{id}"))
            .ok()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| {
                v["data"][0]["spans"].as_array().map(|a| a.len()) == Some(SPANS_PER_TRACE)
            })
    };
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    send_all(&server.grpc, span_reqs, args.clients).await?;
    let acked = started.elapsed();
    wait_until("spans", || {
        probes.retain(|id| !complete(id));
        probes.is_empty()
    })?;
    let searchable = started.elapsed();
    let cpu = server.cpu_seconds() - cpu0;
    row(
        &mut table,
        "Triad span ingest, acknowledged",
        format!("{:.0} spans/s", timed_spans as f64 / acked.as_secs_f64()),
        "",
    );
    row(
        &mut table,
        "Triad span ingest, searchable",
        format!(
            "{:.0} spans/s",
            timed_spans as f64 / searchable.as_secs_f64()
        ),
        &format!(
            "{:.1} CPU-s per million spans",
            cpu * 1e6 / timed_spans as f64
        ),
    );
    // Fill up to the full volumes (not reported as throughput). The timed span phase
    // ran first, so background merges of the large log store do not skew it.
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
        let reqs = chunk
            .chunks(BATCH)
            .map(to_export)
            .map(Export::Logs)
            .collect();
        send_all(&server.grpc, reqs, args.clients).await?;
        sent += n;
    }
    wait_until("all logs", || server.log_total("") >= args.log_lines as u64)?;

    let mut spans_total = timed_spans;
    let mut last_probe = String::new();
    while spans_total < args.spans {
        let reqs: Vec<Export> = (0..50)
            .map(|k| {
                let (req, ids) = datagen::traces_request(&mut rng, traces_per_req, base_ns);
                known.extend(ids.iter().step_by(50).map(|t| datagen::hex(t)));
                // Requests are popped from the end: the first one is sent last.
                if k == 0 {
                    last_probe = datagen::hex(&ids[ids.len() - 1]);
                }
                Export::Traces(req)
            })
            .collect();
        spans_total += reqs.len() * BATCH;
        send_all(&server.grpc, reqs, args.clients).await?;
    }
    if !last_probe.is_empty() {
        wait_until("all spans", || complete(&last_probe))?;
    }

    // 4. Query latency at full volume, through the HTTP APIs.
    let mut lat = Vec::new();
    for k in 0..args.queries {
        let id = &known[(k * 7919) % known.len()];
        let t = Instant::now();
        anyhow::ensure!(complete(id), "trace {id} incomplete");
        lat.push(t.elapsed());
    }
    let (p50, p99) = percentiles(lat);
    row(
        &mut table,
        &format!("trace by ID, {spans_total} spans stored"),
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
        "GET /api/traces/{id}, Jaeger JSON",
    );
    let services = datagen::SERVICES;
    type QueryMaker<'a> = Box<dyn Fn(usize) -> String + 'a>;
    let kinds: [(&str, QueryMaker); 4] = [
        (
            "trace_id:<id>",
            Box::new(|k| format!("trace_id:{}", sample_traces[k % sample_traces.len()])),
        ),
        (
            "service:<s> level:error",
            Box::new(|k| format!("service:{} level:error", services[k % services.len()])),
        ),
        ("rare word", Box::new(|_| "ETIMEDOUT".to_string())),
        (
            "phrase + common word",
            Box::new(|_| "\"/api/v1/cart\" user_id".to_string()),
        ),
    ];
    for (name, make) in &kinds {
        let mut lat = Vec::new();
        for k in 0..args.queries.div_ceil(4) {
            let q = encode(&make(k));
            let t = Instant::now();
            server.get(&format!("/api/logs/search?start=0&limit=100&q={q}"))?;
            lat.push(t.elapsed());
        }
        let (p50, p99) = percentiles(lat);
        row(
            &mut table,
            &format!("log query {name}, {} lines", args.log_lines),
            format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
            "100 hits + exact total + 60-bucket histogram",
        );
    }

    // 4b. LogQL through Loki's API, each query next to the same query written so the
    // index cannot narrow it (a pattern filter): every line the stream selector selects
    // is then read and checked, which is what Loki's grep costs.
    let from_s = base_ns / 1_000_000_000 - 1;
    let to_s = (base_ns + args.log_lines as u64 * 1_000) / 1_000_000_000 + 2;
    let logql: [(&str, &str, &str); 4] = [
        (
            "line filter, 100 newest",
            r#"{service_name="checkout"} |= "user_id=4242""#,
            r#"{service_name="checkout"} |> "<_>user_id=4242<_>""#,
        ),
        (
            "count_over_time, rare needle",
            r#"sum(count_over_time({service_name=~".+"} |= "user_id=4242" [1s]))"#,
            r#"sum(count_over_time({service_name=~".+"} |> "<_>user_id=4242<_>" [1s]))"#,
        ),
        (
            "count_over_time, 1 line in 30",
            r#"sum(count_over_time({service_name=~".+"} |= "ETIMEDOUT" [1s]))"#,
            r#"sum(count_over_time({service_name=~".+"} |> "<_>ETIMEDOUT<_>" [1s]))"#,
        ),
        (
            "sum by (service) (rate)",
            r#"sum by (service_name) (rate({service_name=~".+"} |= "ERR_CONN_REFUSED" [1s]))"#,
            r#"sum by (service_name) (rate({service_name=~".+"} |> "<_>ERR_CONN_REFUSED<_>" [1s]))"#,
        ),
    ];
    let logql_run = |q: &str| -> anyhow::Result<(Duration, u64, String)> {
        let path = format!(
            "/loki/api/v1/query_range?query={}&start={from_s}&end={to_s}&step=1&limit=100",
            encode(q)
        );
        let t = Instant::now();
        let body = server.get(&path)?;
        let took = t.elapsed();
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let read = v["data"]["stats"]["summary"]["totalLinesProcessed"]
            .as_u64()
            .unwrap_or(0);
        Ok((took, read, v["data"]["result"].to_string()))
    };
    for (name, indexed, scan) in &logql {
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let (mut fast_read, mut slow_read) = (0, 0);
        let (mut fast_answer, mut slow_answer) = (String::new(), String::new());
        for _ in 0..args.queries.div_ceil(15).max(3) {
            let (t, read, answer) = logql_run(indexed)?;
            fast.push(t);
            (fast_read, fast_answer) = (read, answer);
        }
        for _ in 0..3 {
            let (t, read, answer) = logql_run(scan)?;
            slow.push(t);
            (slow_read, slow_answer) = (read, answer);
        }
        anyhow::ensure!(
            fast_answer == slow_answer,
            "LogQL {name}: the index changed the answer"
        );
        let (p50, p99) = percentiles(fast);
        let (s50, s99) = percentiles(slow);
        row(
            &mut table,
            &format!("LogQL {name}, {} lines", args.log_lines),
            format!(
                "p50 {p50:.1} ms, p99 {p99:.1} ms; plain scan p50 {s50:.0} ms, p99 {s99:.0} ms ({:.0}x)",
                s50 / p50.max(1e-3)
            ),
            &format!("`{indexed}`: {fast_read} lines read, plain scan {slow_read}"),
        );
    }

    // 5. Memory, then disk after a graceful stop.
    row(
        &mut table,
        "server RSS idle at start / after ingest",
        format!(
            "{:.0} / {:.0} MiB",
            idle_rss as f64 / 1024.0,
            server.rss_kib() as f64 / 1024.0
        ),
        "resident pages incl. mmapped index files (page cache)",
    );
    row(
        &mut table,
        "server anonymous memory after ingest",
        format!("{:.0} MiB", server.anon_kib() as f64 / 1024.0),
        "heap; the tantivy writers may use up to 2 x 128 MiB",
    );
    row(
        &mut table,
        "server peak RSS",
        format!("{:.0} MiB", server.peak_rss_kib() as f64 / 1024.0),
        "",
    );
    server.stop()?;
    let log_disk = dir_bytes(&data_path.join("logs/splits"));
    let trace_disk = dir_bytes(&data_path.join("traces/splits"));
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
    row(
        &mut table,
        "write-ahead log left after graceful stop",
        format!("{wal_left} B"),
        "",
    );
    if std::env::var_os("TRIAD_BENCH_SPACE").is_some() {
        space_of(LogSignal::new(), &data_path.join("logs"))?;
        space_of(SpanSignal::new(), &data_path.join("traces"))?;
    }

    println!("\n| measurement | value | notes |\n|---|---|---|");
    for Row(a, b, c) in &table {
        println!("| {a} | {b} | {c} |");
    }
    Ok(())
}
