//! `scripts/bench.sh metrics`: Triad's metric store and PromQL side by side with
//! Prometheus (Debian's 2.42) on the same data in the same run, both as real processes:
//!
//! 1. **remote_write ingest**: the same snappy-protobuf requests (time-major, 2000
//!    samples each, 4 in flight) to `prometheus --web.enable-remote-write-receiver` and
//!    to `triad up`; samples per second of server CPU (from /proc).
//! 2. **bytes per sample** in the on-disk blocks each builds from that data (4 h of
//!    15 s samples, so both cut a block).
//! 3. **queries**: a fixed PromQL set over that data, p50/p99 client latency; the
//!    answers are compared too.
//! 4. **scrape ingest**: both scrape the same exporters (text format) every second for
//!    30 s; samples appended per CPU second.
//! 5. **memory per active series**: RSS growth of a fresh process after receiving N
//!    new series, per series.

#[path = "../procstat.rs"]
#[allow(dead_code)]
mod procstat;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;
use triad_collector::remote_write::{Label, TimeSeries, WireSample, WriteRequest};

use procstat::{cpu_seconds, status_kib};

const STEP_MS: i64 = 15_000;
const PER_REQUEST: usize = 2_000;
const IN_FLIGHT: usize = 4;

struct Opts {
    series: usize,
    hours: i64,
    rss_series: usize,
    scrape_targets: usize,
    scrape_series: usize,
    /// Phases to run: `all`, or one of `remote-write` (with blocks and queries),
    /// `scrape`, `rss`.
    only: String,
    /// Only the queries containing this text.
    queries: String,
    /// Timed runs per query and server (after one warm-up).
    query_runs: usize,
}

/// A server under test.
struct Server {
    name: &'static str,
    child: Child,
    /// Base URL of the query API (Prometheus: its one port).
    query: String,
    /// remote_write URL.
    write: String,
    data: PathBuf,
}

impl Server {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }
    fn cpu(&self) -> f64 {
        cpu_seconds(&self.pid())
    }
    fn rss_mib(&self) -> f64 {
        status_kib(&self.pid(), "VmRSS:") as f64 / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_prometheus(dir: &Path, scrape_yaml: &str) -> anyhow::Result<Server> {
    let port = free_port()?;
    let cfg = dir.join("prometheus.yml");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&cfg, scrape_yaml)?;
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args([
            "--web.enable-remote-write-receiver",
            "--storage.tsdb.retention.time=100y",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start prometheus (Debian package `prometheus`)")?;
    println!("  prometheus pid {}", child.id());
    let base = format!("http://127.0.0.1:{port}");
    let s = Server {
        name: "prometheus",
        child,
        write: format!("{base}/api/v1/write"),
        query: base.clone(),
        data: dir.join("data"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("prometheus did not start")
}

fn start_triad(dir: &Path, scrape_yaml: Option<&str>) -> anyhow::Result<Server> {
    let triad = std::env::current_exe()?.with_file_name("triad");
    anyhow::ensure!(
        triad.exists(),
        "{} not found: scripts/bench.sh builds it",
        triad.display()
    );
    std::fs::create_dir_all(dir)?;
    let mut cmd = Command::new(&triad);
    cmd.args(["up", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--otlp-grpc-listen",
            "127.0.0.1:0",
            "--otlp-http-listen",
            "127.0.0.1:0",
        ])
        .args(["--query-listen", "127.0.0.1:0", "--zipkin-listen", ""]);
    if let Some(yaml) = scrape_yaml {
        std::fs::write(dir.join("prometheus.yml"), yaml)?;
        std::fs::write(
            dir.join("triad.yaml"),
            format!(
                "collector:\n  metrics:\n    scrape_config_file: {}\n",
                dir.join("prometheus.yml").display()
            ),
        )?;
        cmd.arg("--config").arg(dir.join("triad.yaml"));
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (mut http, mut query) = (String::new(), String::new());
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.first() == Some(&"listening") && parts.len() >= 3 {
            match parts[1] {
                "otlp-http" => http = format!("http://{}", parts[2]),
                "query" => query = format!("http://{}", parts[2]),
                _ => {}
            }
        }
        if line.starts_with("ready:") {
            break;
        }
    }
    println!("  triad pid {}", child.id());
    Ok(Server {
        name: "triad",
        child,
        write: format!("{http}/api/v1/write"),
        query,
        data: dir.join("data").join("metrics"),
    })
}

/// A cheap deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The label sets of `n` series, unique, as a service fleet exports them: ten series
/// per instance (six request counters, three histogram buckets, one gauge), instances
/// spread over twenty jobs.
fn series_labels(n: usize) -> Vec<Vec<Label>> {
    let l = |k: &str, v: String| Label {
        name: k.into(),
        value: v,
    };
    let les = ["0.05", "0.5", "+Inf"];
    (0..n)
        .map(|i| {
            let host = i / 10;
            let instance = format!(
                "10.{}.{}.{}:9100",
                host / 65536 % 256,
                host / 256 % 256,
                host % 256
            );
            let job = format!("svc-{}", host % 20);
            match i % 10 {
                k @ 0..=5 => vec![
                    l("__name__", "bench_requests_total".into()),
                    l("code", ["200", "500"][k % 2].into()),
                    l("instance", instance),
                    l("job", job),
                    l("route", format!("/api/v1/r{}", k / 2)),
                ],
                k @ 6..=8 => vec![
                    l("__name__", "bench_latency_seconds_bucket".into()),
                    l("instance", instance),
                    l("job", job),
                    l("le", les[k - 6].into()),
                ],
                _ => vec![
                    l("__name__", "bench_queue_depth".into()),
                    l("instance", instance),
                    l("job", job),
                ],
            }
        })
        .collect()
}

/// Time-major remote-write bodies in `IN_FLIGHT` shards, as Prometheus shards its
/// queue: a series always goes to the same shard, so each series arrives in order.
fn requests(labels: &[Vec<Label>], steps: i64, start_ms: i64) -> Vec<Vec<Vec<u8>>> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut values: Vec<f64> = vec![0.0; labels.len()];
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new(); IN_FLIGHT];
    let mut reqs: Vec<WriteRequest> = vec![WriteRequest::default(); IN_FLIGHT];
    let mut enc = snap::raw::Encoder::new();
    for step in 0..steps {
        let t = start_ms + step * STEP_MS;
        for (i, ls) in labels.iter().enumerate() {
            let r = rng.next();
            values[i] = match i % 10 {
                9 => (r % 100) as f64,
                _ => values[i] + (r % 20) as f64,
            };
            let shard = i % IN_FLIGHT;
            reqs[shard].timeseries.push(TimeSeries {
                labels: ls.clone(),
                samples: vec![WireSample {
                    value: values[i],
                    timestamp: t,
                }],
                exemplars: vec![],
            });
            if reqs[shard].timeseries.len() == PER_REQUEST {
                let body = std::mem::take(&mut reqs[shard]).encode_to_vec();
                out[shard].push(enc.compress_vec(&body).unwrap_or_default());
            }
        }
    }
    for (shard, req) in reqs.into_iter().enumerate() {
        if !req.timeseries.is_empty() {
            out[shard].push(enc.compress_vec(&req.encode_to_vec()).unwrap_or_default());
        }
    }
    out
}

async fn send_all(
    client: &reqwest::Client,
    url: &str,
    shards: Arc<Vec<Vec<Vec<u8>>>>,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for shard in 0..shards.len() {
        let (client, url, shards) = (client.clone(), url.to_string(), shards.clone());
        tasks.push(tokio::spawn(async move {
            for body in &shards[shard] {
                let resp = client
                    .post(&url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "{url}: HTTP {}: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                );
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// (bytes on disk, samples) of the blocks a server has written.
/// (bytes of blocks, samples in them, bytes of their index files).
fn block_stats(s: &Server) -> (u64, u64, u64) {
    fn dir_bytes(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        let m = e.metadata();
                        match m {
                            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let mut blocks = Vec::new();
    // Prometheus: <data>/<ULID>/meta.json; Triad: <data>/<tenant>/blocks/block-*/meta.json.
    let mut stack = vec![s.data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.join("meta.json").exists() {
                blocks.push(p);
            } else if p.is_dir() && !p.ends_with("wal") && !p.ends_with("chunks_head") {
                stack.push(p);
            }
        }
    }
    let (mut bytes, mut samples, mut index) = (0, 0, 0);
    for b in blocks {
        let Ok(meta) = std::fs::read(b.join("meta.json")) else {
            continue;
        };
        let Ok(j) = serde_json::from_slice::<serde_json::Value>(&meta) else {
            continue;
        };
        let n = j["stats"]["numSamples"]
            .as_u64()
            .or_else(|| j["num_samples"].as_u64())
            .unwrap_or(0);
        if n > 0 {
            samples += n;
            index += std::fs::metadata(b.join("index"))
                .map(|m| m.len())
                .unwrap_or(0);
            bytes += dir_bytes(&b)
                - std::fs::metadata(b.join("meta.json"))
                    .map(|m| m.len())
                    .unwrap_or(0);
        }
    }
    (bytes, samples, index)
}

async fn query(
    client: &reqwest::Client,
    base: &str,
    q: &str,
    start: i64,
    end: i64,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let t = Instant::now();
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", q)
        .append_pair("start", &(start / 1000).to_string())
        .append_pair("end", &(end / 1000).to_string())
        .append_pair("step", "60")
        .finish();
    let resp = client
        .post(format!("{base}/api/v1/query_range"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
    Ok((t.elapsed(), body))
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Serves `targets` expositions of `series` series each (values change per scrape).
async fn exporters(targets: usize, series: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    for t in 0..targets {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut body = String::with_capacity(series * 80);
                body.push_str(
                    "# HELP bench_requests_total Requests.\n# TYPE bench_requests_total counter\n",
                );
                for i in 0..series {
                    body.push_str(&format!(
                        "bench_requests_total{{route=\"/r{}\",code=\"{}\",shard=\"{t}-{i}\"}} {}\n",
                        i % 50,
                        [200, 500][i % 2],
                        now * (i as u64 % 7 + 1)
                    ));
                }
                ([("content-type", "text/plain; version=0.0.4")], body)
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    Ok(ports)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut o = Opts {
        series: 20_000,
        hours: 4,
        rss_series: 1_000_000,
        scrape_targets: 10,
        scrape_series: 5_000,
        only: "all".into(),
        queries: String::new(),
        query_runs: 11,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                o.series = 2_000;
                o.rss_series = 100_000;
                o.scrape_targets = 4;
                o.scrape_series = 2_000;
            }
            "--series" => o.series = args.next().context("--series N")?.parse()?,
            "--rss-series" => o.rss_series = args.next().context("--rss-series N")?.parse()?,
            "--queries" => o.queries = args.next().context("--queries TEXT")?,
            "--query-runs" => {
                o.query_runs = args.next().context("--query-runs N")?.parse()?;
                anyhow::ensure!(o.query_runs > 0, "--query-runs takes at least 1");
            }
            "--only" => {
                o.only = args.next().context("--only remote-write|scrape|rss")?;
                anyhow::ensure!(
                    ["remote-write", "scrape", "rss"].contains(&o.only.as_str()),
                    "--only takes remote-write, scrape or rss"
                );
            }
            "--help" | "-h" => {
                println!(
                    "usage: triad-bench-metrics [--quick] [--series N] [--rss-series N] [--only remote-write|scrape|rss]\n\
                     \x20      [--queries TEXT] [--query-runs N]\n\
                     Server pids are printed so that a profiler can attach (perf record -p PID)."
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    let tmp = tempfile::tempdir()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let steps = o.hours * 3_600_000 / STEP_MS;
    let end = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64)
        / STEP_MS
        * STEP_MS;
    let start = end - (steps - 1) * STEP_MS;
    let labels = series_labels(o.series);
    let bodies = Arc::new(requests(&labels, steps, start));
    let total = o.series as f64 * steps as f64;
    let raw: usize = bodies.iter().flatten().map(Vec::len).sum();
    let n_requests: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "metrics benchmark: {} series x {} samples ({} h at 15 s) = {:.1}M samples, {} requests, {:.0} MiB snappy",
        o.series,
        steps,
        o.hours,
        total / 1e6,
        n_requests,
        raw as f64 / 1048576.0
    );

    let run = |phase: &str| o.only == "all" || o.only == phase;
    let empty = "global: {scrape_interval: 15s}\n";
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    if run("remote-write") {
        // 1-3: remote write, blocks, queries.
        let prom = start_prometheus(&tmp.path().join("prom"), empty)?;
        let triad = start_triad(&tmp.path().join("triad"), None)?;
        let mut ingest = Vec::new();
        for s in [&prom, &triad] {
            let cpu0 = s.cpu();
            let t = Instant::now();
            send_all(&client, &s.write, bodies.clone()).await?;
            let (wall, cpu) = (t.elapsed().as_secs_f64(), s.cpu() - cpu0);
            ingest.push((total / cpu, total / wall));
            println!(
                "  {:<10} remote_write: {:.1} s wall, {:.1} CPU-s",
                s.name, wall, cpu
            );
        }
        rows.push((
            "remote_write ingest, samples per CPU-second".into(),
            format!("{:.0}k", ingest[0].0 / 1e3),
            format!("{:.0}k", ingest[1].0 / 1e3),
            format!("{:.2}x", ingest[1].0 / ingest[0].0),
        ));
        rows.push((
            "remote_write ingest, samples/s wall (4 in flight)".into(),
            format!("{:.0}k", ingest[0].1 / 1e3),
            format!("{:.0}k", ingest[1].1 / 1e3),
            format!("{:.2}x", ingest[1].1 / ingest[0].1),
        ));

        // Both cut a block from the first hours (Prometheus once its head spans 3 h,
        // Triad once it spans the 2 h block range), each within a minute or so.
        let deadline = Instant::now() + Duration::from_secs(300);
        let (mut pb, mut tb) = ((0, 0, 0), (0, 0, 0));
        while Instant::now() < deadline {
            pb = block_stats(&prom);
            tb = block_stats(&triad);
            if pb.1 > 0 && tb.1 > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if pb.1 > 0 && tb.1 > 0 {
            let (p, t) = (pb.0 as f64 / pb.1 as f64, tb.0 as f64 / tb.1 as f64);
            rows.push((
                "bytes per sample in blocks".into(),
                format!("{p:.2}"),
                format!("{t:.2}"),
                format!("{:.2}x", t / p),
            ));
            let of_index = |b: (u64, u64, u64)| b.2 as f64 / b.1 as f64;
            rows.push((
                "  of which the index".into(),
                format!("{:.2}", of_index(pb)),
                format!("{:.2}", of_index(tb)),
                format!("{:.2}x", of_index(tb) / of_index(pb)),
            ));
        } else {
            println!("  (no block appeared within 5 minutes: bytes per sample not measured)");
        }

        let queries = [
            "sum(rate(bench_requests_total[5m]))",
            "sum by (job, code) (rate(bench_requests_total[5m]))",
            "histogram_quantile(0.99, sum by (le) (rate(bench_latency_seconds_bucket[5m])))",
            "topk(5, sum by (instance) (rate(bench_requests_total[5m])))",
            "count by (job) (bench_requests_total)",
            "avg_over_time(bench_queue_depth{job=\"svc-1\"}[10m])",
        ];
        let (qs, qe) = (end - 3_600_000, end);
        for q in queries.into_iter().filter(|q| q.contains(&o.queries)) {
            let mut lat: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new()];
            let mut answers = Vec::new();
            for (k, s) in [&prom, &triad].iter().enumerate() {
                if o.query_runs > 100 {
                    println!("  {}: {} runs of {q}", s.name, o.query_runs);
                }
                for i in 0..=o.query_runs {
                    let (d, body) = query(&client, &s.query, q, qs, qe).await?;
                    if i == 0 {
                        let mut keys: Vec<String> = body["data"]["result"]
                            .as_array()
                            .map(|r| r.iter().map(|s| s["metric"].to_string()).collect())
                            .unwrap_or_default();
                        keys.sort();
                        answers.push(keys);
                        continue; // warm-up
                    }
                    lat[k].push(d);
                }
            }
            let (p50p, p99p) = (pct(&mut lat[0], 0.5), pct(&mut lat[0], 0.99));
            let (p50t, p99t) = (pct(&mut lat[1], 0.5), pct(&mut lat[1], 0.99));
            let same = if answers[0] == answers[1] {
                ""
            } else {
                let only = |a: &Vec<String>, b: &Vec<String>| {
                    a.iter()
                        .filter(|k| !b.contains(k))
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                };
                println!(
                    "  {q}: series differ: only in Prometheus {:?}, only in Triad {:?}",
                    only(&answers[0], &answers[1]),
                    only(&answers[1], &answers[0])
                );
                " (series differ!)"
            };
            rows.push((
                format!("query p50/p99 ms, 1 h range: {q}{same}"),
                format!("{p50p:.1}/{p99p:.1}"),
                format!("{p50t:.1}/{p99t:.1}"),
                format!("{:.2}x", p50t / p50p),
            ));
        }
        drop(prom);
        drop(triad);
    }

    // 4: scrape ingest.
    if run("scrape") {
        let ports = exporters(o.scrape_targets, o.scrape_series).await?;
        let targets: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let yaml = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: bench\n    static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        );
        let prom = start_prometheus(&tmp.path().join("prom-scrape"), &yaml)?;
        let triad = start_triad(&tmp.path().join("triad-scrape"), Some(&yaml))?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let metrics_of = |s: &Server| {
            let url = format!("{}/metrics", s.query);
            let client = client.clone();
            async move { client.get(url).send().await?.text().await }
        };
        let (pc0, tc0) = (prom.cpu(), triad.cpu());
        let ps0 = counter(
            &metrics_of(&prom).await?,
            "prometheus_tsdb_head_samples_appended_total",
        );
        let ts0 = counter(
            &metrics_of(&triad).await?,
            "triad_tsdb_samples_appended_total",
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (pc, tc) = (prom.cpu() - pc0, triad.cpu() - tc0);
        let ps = counter(
            &metrics_of(&prom).await?,
            "prometheus_tsdb_head_samples_appended_total",
        ) - ps0;
        let ts = counter(
            &metrics_of(&triad).await?,
            "triad_tsdb_samples_appended_total",
        ) - ts0;
        println!(
            "  scrape: prometheus {ps:.0} samples in {pc:.1} CPU-s, triad {ts:.0} samples in {tc:.1} CPU-s"
        );
        rows.push((
            format!(
                "scrape ingest, samples per CPU-second ({} targets x {} series, 1 s)",
                o.scrape_targets, o.scrape_series
            ),
            format!("{:.0}k", ps / pc / 1e3),
            format!("{:.0}k", ts / tc / 1e3),
            format!("{:.2}x", (ts / tc) / (ps / pc)),
        ));
        drop(prom);
        drop(triad);
    }

    // 5: memory per active series.
    if run("rss") {
        let labels = series_labels(o.rss_series);
        let bodies = Arc::new(requests(&labels, 2, end - STEP_MS));
        let prom = start_prometheus(&tmp.path().join("prom-rss"), empty)?;
        let triad = start_triad(&tmp.path().join("triad-rss"), None)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut per_series = Vec::new();
        for s in [&prom, &triad] {
            let before = s.rss_mib();
            send_all(&client, &s.write, bodies.clone()).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = s.rss_mib();
            per_series.push((after - before) * 1048576.0 / o.rss_series as f64);
            println!(
                "  {:<10} RSS {before:.0} MiB -> {after:.0} MiB with {} series",
                s.name, o.rss_series
            );
        }
        rows.push((
            format!("RSS per active series, bytes ({} series)", o.rss_series),
            format!("{:.0}", per_series[0]),
            format!("{:.0}", per_series[1]),
            format!("{:.2}x", per_series[1] / per_series[0]),
        ));
    }

    println!("\n| measurement | Prometheus 2.42 | Triad | Triad / Prometheus |\n|---|---|---|---|");
    for (m, p, t, r) in rows {
        println!("| {m} | {p} | {t} | {r} |");
    }
    Ok(())
}
