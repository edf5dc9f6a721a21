//! `scripts/bench.sh agent`: the node agent's file pipeline — tail, parse, batch,
//! compress, buffer on disk, forward over OTLP/gRPC — measured on the real `triad
//! agent` binary as a child process, next to `cat file > /dev/null` on the same file in
//! the same run.
//!
//! The agent forwards into a counting OTLP sink in this process (the receiver code the
//! collector uses, with a destination that only counts), so the figures are the agent's
//! own: its CPU time and memory come from /proc of the child. The timed span runs from
//! the agent's start until the sink has counted every line.
//!
//! Then the quiet scenarios (`agent_quiet.rs`): 50 files idle or trickled, next to
//! rsyslog's imfile on the same files; and the CPU of `triad up --demo` at its default
//! rate.

#[path = "../agent_quiet.rs"]
mod agent_quiet;
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A gRPC OTLP sink in this process that counts log records.
async fn counting_sink() -> anyhow::Result<(
    String,
    Arc<CountingSink>,
    tokio_util::sync::CancellationToken,
)> {
    let sink = Arc::new(CountingSink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let cancel = tokio_util::sync::CancellationToken::new();
    let ingest = Ingest::new(
        sink.clone(),
        ReceiverMetrics::register_under(
            &mut prometheus_client::registry::Registry::default(),
            "sink",
        ),
    );
    tokio::spawn(triad_receiver::grpc::serve(
        ingest,
        triad_receiver::auth::Gate::open(),
        triad_receiver::tls::Listener::plain(listener),
        64 << 20,
        cancel.clone(),
    ));
    Ok((endpoint, sink, cancel))
}

/// One quiet scenario (see `agent_quiet.rs`) for one shipper.
async fn quiet_scenario(
    shipper: agent_quiet::Shipper,
    trickle: bool,
    reachable: bool,
    window: Duration,
) -> anyhow::Result<agent_quiet::Outcome> {
    use agent_quiet::*;
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let initial = prepare_files(&logs)?;
    let rsyslog_count = Arc::new(AtomicU64::new(0));
    let mut cleanup: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut grpc: Option<(Arc<CountingSink>, tokio_util::sync::CancellationToken)> = None;
    let child = match (shipper, reachable) {
        (Shipper::Triad, true) => {
            let (endpoint, sink, cancel) = counting_sink().await?;
            grpc = Some((sink, cancel));
            start_triad(&tmp.path().join("agent"), &logs, &endpoint)?
        }
        (Shipper::Triad, false) => start_triad(
            &tmp.path().join("agent"),
            &logs,
            &format!("http://127.0.0.1:{}", closed_port()?),
        )?,
        (Shipper::Rsyslog, true) => {
            let (port, task) = tcp_line_counter(rsyslog_count.clone()).await?;
            cleanup.push(task);
            start_rsyslog(&tmp.path().join("rsyslog"), &logs, &port)?
        }
        (Shipper::Rsyslog, false) => {
            start_rsyslog(&tmp.path().join("rsyslog"), &logs, &closed_port()?)?
        }
    };
    let pid = child.id().to_string();
    let arrived = {
        let (g, r) = (grpc.as_ref().map(|(s, _)| s.clone()), rsyslog_count.clone());
        move || match &g {
            Some(s) => s.records.load(Ordering::Relaxed),
            None => r.load(Ordering::Relaxed),
        }
    };
    if reachable {
        let got = settle(&arrived, initial, Duration::from_secs(60)).await;
        anyhow::ensure!(
            got >= initial,
            "{}: {got} of {initial} starting lines arrived",
            shipper.name()
        );
    } else {
        // The starting lines go to the buffer or queue.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let stop_writer = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = trickle.then(|| spawn_writer(logs.clone(), stop_writer.clone(), written.clone()));
    // Settled: start-up, catch-up and the first checkpoint write are behind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_pct(&pid, window).await;
    stop_writer.store(true, Ordering::Relaxed);
    if let Some(w) = writer {
        w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    let written = written.load(Ordering::Relaxed);
    let expected = if reachable { initial + written } else { 0 };
    let got = if reachable {
        settle(&arrived, expected, Duration::from_secs(30)).await
    } else {
        arrived()
    };
    stop(child);
    if let Some((_, cancel)) = grpc {
        cancel.cancel();
    }
    for t in cleanup {
        t.abort();
    }
    Ok(Outcome {
        cpu_pct: cpu,
        written,
        arrived: got,
        expected,
    })
}

/// CPU of `triad up --demo` at its default rate, over `window` after a warm-up.
async fn demo_cpu(window: Duration) -> anyhow::Result<f64> {
    let tmp = tempfile::tempdir()?;
    let triad = std::env::current_exe()?.with_file_name("triad");
    let mut child = Command::new(&triad)
        .args(["up", "--demo", "--data-dir"])
        .arg(tmp.path())
        .args(["--otlp-grpc-listen", "127.0.0.1:0"])
        .args(["--otlp-http-listen", "127.0.0.1:0"])
        .args(["--query-listen", "127.0.0.1:0", "--zipkin-listen", ""])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", triad.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        if line?.starts_with("ready:") {
            break;
        }
    }
    let pid = child.id().to_string();
    // Warm-up: the first scrapes, block cuts and index commits.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let cpu = agent_quiet::cpu_pct(&pid, window).await;
    agent_quiet::stop(child);
    Ok(cpu)
}

/// The quiet scenarios for both shippers, and the demo, as a table.
async fn quiet_table(window: Duration, with_demo: bool) -> anyhow::Result<()> {
    use agent_quiet::Shipper;
    let mut shippers = vec![Shipper::Triad];
    if agent_quiet::rsyslog_available() {
        shippers.push(Shipper::Rsyslog);
    } else {
        println!("(rsyslogd not found: install Debian's rsyslog for the reference column)");
    }
    let scenarios = [
        ("idle, 50 files", false, true),
        ("1,500 lines/s over 50 files", true, true),
        ("1,500 lines/s, destination unreachable", true, false),
    ];
    println!(
        "\nquiet scenarios: {} files, CPU of the shipper over {} s, % of one core",
        agent_quiet::FILES,
        window.as_secs()
    );
    let mut rows = Vec::new();
    for (name, trickle, reachable) in scenarios {
        let mut cells = Vec::new();
        for &s in &shippers {
            let o = quiet_scenario(s, trickle, reachable, window).await?;
            let delivered = if reachable {
                format!("{} of {} lines arrived", o.arrived, o.expected)
            } else {
                format!("{} lines written, buffered", o.written)
            };
            cells.push((format!("{:.2}%", o.cpu_pct), delivered));
        }
        rows.push((name, cells));
    }
    print!("\n| scenario |");
    for s in &shippers {
        print!(" {} CPU | {} |", s.name(), s.name());
    }
    print!("\n|---|");
    for _ in &shippers {
        print!("---|---|");
    }
    println!();
    for (name, cells) in rows {
        print!("| {name} |");
        for (cpu, note) in cells {
            print!(" {cpu} | {note} |");
        }
        println!();
    }
    if with_demo {
        let cpu = demo_cpu(window).await?;
        println!(
            "\n| whole stack | CPU | notes |\n|---|---|---|\n| triad up --demo (default rate) | {cpu:.1}% | collector, query, in-process agent and the simulated services, over {} s |",
            window.as_secs()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut mib: u64 = 1024;
    let mut window = Duration::from_secs(20);
    let (mut throughput, mut quiet, mut demo) = (true, true, true);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                mib = 64;
                window = Duration::from_secs(10);
            }
            "--mib" => mib = args.next().context("--mib needs a number")?.parse()?,
            "--window" => {
                window =
                    Duration::from_secs(args.next().context("--window needs seconds")?.parse()?)
            }
            "--only" => match args.next().as_deref() {
                Some("throughput") => (quiet, demo) = (false, false),
                Some("quiet") => (throughput, demo) = (false, false),
                Some("demo") => (throughput, quiet) = (false, false),
                other => anyhow::bail!("--only takes throughput, quiet or demo, not {other:?}"),
            },
            "--help" | "-h" => {
                println!(
                    "usage: triad-bench-agent [--quick] [--mib N] [--window SECS] [--only throughput|quiet|demo]\n  \
                     --mib: size of the throughput run's file (default 1024; --quick: 64)\n  \
                     --window: CPU measuring window of the quiet scenarios and the demo (default 20; --quick: 10)"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    if throughput {
        throughput_table(mib).await?;
    }
    if quiet || demo {
        if quiet {
            quiet_table(window, demo).await?;
        } else {
            let cpu = demo_cpu(window).await?;
            println!(
                "triad up --demo (default rate): {cpu:.1}% of one core over {} s",
                window.as_secs()
            );
        }
    }
    Ok(())
}

/// The throughput run: one big file through the agent, next to `cat`.
async fn throughput_table(mib: u64) -> anyhow::Result<()> {
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

    let (endpoint, sink, cancel) = counting_sink().await?;

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
