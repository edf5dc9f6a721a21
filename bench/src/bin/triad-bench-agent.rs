//! `scripts/bench.sh agent`: the node agent's file pipeline — tail, parse, batch,
//! compress, buffer on disk, forward over OTLP/gRPC — measured on the real `triad
//! agent` binary as a child process, next to `cat file > /dev/null` on the same file in
//! the same run.
//!
//! The agent forwards into a counting OTLP sink in this process (the receiver code the
//! collector uses, with a destination that only counts), so the figures are the agent's
//! own: its CPU time and memory come from /proc of the child. The timed span runs from
//! the agent's start until the sink has counted every line.

#[path = "../datagen.rs"]
#[allow(dead_code)]
mod datagen;
#[path = "../procstat.rs"]
#[allow(dead_code)]
mod procstat;

use procstat::{children_cpu_seconds, cpu_seconds, status_kib};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use triad_receiver::metrics::ReceiverMetrics;
use triad_receiver::{Accepted, Destination, Ingest, IngestFuture};

/// Counts what arrives; acknowledges at once.
#[derive(Default)]
struct CountingSink {
    records: AtomicU64,
}

impl Destination for CountingSink {
    fn traces(&self, _req: ExportTraceServiceRequest, _tenant: &str) -> IngestFuture<'_> {
        Box::pin(async { Ok(Accepted::default()) })
    }

    fn metrics(
        &self,
        _req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        _tenant: &str,
    ) -> IngestFuture<'_> {
        Box::pin(async { Ok(Accepted::default()) })
    }

    fn logs(&self, req: ExportLogsServiceRequest, _tenant: &str) -> IngestFuture<'_> {
        let n: usize = req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        self.records.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async move {
            Ok(Accepted {
                accepted: n as u64,
                ..Accepted::default()
            })
        })
    }
}

fn write_file(path: &Path, bytes: u64) -> anyhow::Result<u64> {
    let mut rng = datagen::Rng::new(42);
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let now = triad_model::now_ns() as u64;
    let (mut written, mut lines) = (0u64, 0u64);
    while written < bytes {
        let l = datagen::log_record(&mut rng, now - 3_600_000_000_000 + lines * 1000);
        f.write_all(l.json_line.as_bytes())?;
        f.write_all(b"\n")?;
        written += l.json_line.len() as u64 + 1;
        lines += 1;
    }
    f.flush()?;
    Ok(lines)
}

fn start_agent(dir: &Path, file: &Path, endpoint: &str) -> anyhow::Result<Child> {
    let triad = std::env::current_exe()?.with_file_name("triad");
    anyhow::ensure!(
        triad.exists(),
        "{} not found: build it first (scripts/bench.sh does)",
        triad.display()
    );
    let mut child = Command::new(&triad)
        .args(["agent", "--data-dir"])
        .arg(dir)
        .arg("--include")
        .arg(file)
        .args(["--collector", endpoint])
        .args([
            "--otlp-grpc-listen",
            "",
            "--otlp-http-listen",
            "",
            "--zipkin-listen",
            "",
        ])
        .args(["--metrics-listen", ""])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", triad.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        if line?.starts_with("ready:") {
            break;
        }
    }
    Ok(child)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut mib: u64 = 1024;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => mib = 64,
            "--mib" => mib = args.next().context("--mib needs a number")?.parse()?,
            "--help" | "-h" => {
                println!(
                    "usage: triad-bench-agent [--quick] [--mib N]   (file size, default 1024)"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("app.log");
    let lines = write_file(&file, mib << 20)?;
    let bytes = std::fs::metadata(&file)?.len();
    let mb = bytes as f64 / (1 << 20) as f64;
    println!(
        "agent benchmark: {lines} JSON lines, {mb:.0} MiB, {} B/line",
        bytes / lines
    );

    // Reference: cat, twice (the first warms the page cache as the generator did).
    let mut cat = (Duration::ZERO, 0.0);
    for _ in 0..2 {
        let cpu0 = children_cpu_seconds();
        let t = Instant::now();
        let status = Command::new("cat")
            .arg(&file)
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "cat failed");
        cat = (t.elapsed(), children_cpu_seconds() - cpu0);
    }

    let sink = Arc::new(CountingSink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let cancel = tokio_util::sync::CancellationToken::new();
    let ingest = Ingest::new(
        sink.clone(),
        ReceiverMetrics::register(
            &mut prometheus_client::registry::Registry::default(),
            "sink",
        ),
    );
    let server = tokio::spawn(triad_receiver::grpc::serve(
        ingest,
        listener,
        64 << 20,
        cancel.clone(),
    ));

    let started = Instant::now();
    let mut agent = start_agent(&tmp.path().join("agent"), &file, &endpoint)?;
    let pid = agent.id().to_string();
    let mut peak_rss = 0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while sink.records.load(Ordering::Relaxed) < lines {
        anyhow::ensure!(
            Instant::now() < deadline,
            "agent did not deliver every line in time"
        );
        anyhow::ensure!(agent.try_wait()?.is_none(), "agent exited early");
        peak_rss = peak_rss.max(status_kib(&pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let busy_cpu = cpu_seconds(&pid);
    peak_rss = peak_rss.max(status_kib(&pid, "VmHWM:"));
    // Steady state: the file is read, the agent idles and watches it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_seconds(&pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_pct = (cpu_seconds(&pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let steady_rss = status_kib(&pid, "VmRSS:");
    let _ = agent.kill();
    let _ = agent.wait();
    cancel.cancel();
    let _ = server.await;

    let secs = took.as_secs_f64();
    let gb = bytes as f64 / 1e9;
    let rows = [
        (
            "cat file > /dev/null (reference)",
            format!("{:.0} MiB/s", mb / cat.0.as_secs_f64()),
            format!("{:.2} CPU-s/GB", cat.1 / gb),
        ),
        (
            "agent: tail → parse → forward, lines/s",
            format!("{:.0}", lines as f64 / secs),
            format!("{secs:.1} s wall"),
        ),
        (
            "agent: MiB/s (wall)",
            format!("{:.1}", mb / secs),
            format!(
                "{:.1}% of cat",
                mb / secs / (mb / cat.0.as_secs_f64()) * 100.0
            ),
        ),
        (
            "agent: MiB/s per CPU core",
            format!("{:.1}", mb / busy_cpu),
            "bytes / (user+sys CPU seconds)".into(),
        ),
        (
            "agent: CPU seconds per GB",
            format!("{:.2}", busy_cpu / gb),
            format!("{busy_cpu:.1} CPU-s in all"),
        ),
        (
            "agent: peak RSS",
            format!("{:.1} MiB", peak_rss as f64 / 1024.0),
            "while reading".into(),
        ),
        (
            "agent: steady-state RSS",
            format!("{:.1} MiB", steady_rss as f64 / 1024.0),
            "after the file is read".into(),
        ),
        (
            "agent: idle CPU",
            format!("{idle_pct:.2}%"),
            "of one core, over 10 s".into(),
        ),
    ];
    println!("\n| measurement | value | notes |\n|---|---|---|");
    for (a, b, c) in rows {
        println!("| {a} | {b} | {c} |");
    }
    Ok(())
}
