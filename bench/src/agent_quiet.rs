//! The agent as most hosts see it: 50 log files, idle or written a little at a time —
//! not the throughput run's one big file. Each scenario runs the real `triad agent` and,
//! on the same files in the same run, rsyslog's `imfile` (inotify mode) forwarding over
//! TCP with a disk-assisted queue: the classic node log shipper doing the same job.
//!
//! Measured is the CPU time of the shipper's process (all threads, from /proc) over a
//! window after its start-up and catch-up, as a share of one core. Scenarios:
//! - idle: 50 files already read, nothing written;
//! - trickle: 1,500 lines/s spread over the 50 files (30 lines/s each, one `write` per
//!   line, as a line-buffered application writes), destination up;
//! - trickle with the destination unreachable (a closed port): both keep buffering.
//!
//! The writer runs in this process: its CPU is not in the figures.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::datagen;
use crate::procstat::cpu_seconds;

/// Files of the quiet scenarios.
pub const FILES: usize = 50;
/// Lines per second of the trickle, over all files.
pub const TRICKLE_LINES_PER_SEC: u64 = 1500;

/// Which log shipper a scenario runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shipper {
    Triad,
    Rsyslog,
}

impl Shipper {
    pub fn name(self) -> &'static str {
        match self {
            Shipper::Triad => "triad agent",
            Shipper::Rsyslog => "rsyslog imfile",
        }
    }
}

/// What one scenario measured.
pub struct Outcome {
    /// CPU of the shipper over the window, in % of one core.
    pub cpu_pct: f64,
    /// Lines written during the scenario (trickle), and how many of all lines arrived.
    pub written: u64,
    pub arrived: u64,
    /// Lines that should have arrived (those in the files, when the destination is up).
    pub expected: u64,
}

/// Writes the starting lines: a few per file, as applications that have been running.
pub fn prepare_files(dir: &Path) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut rng = datagen::Rng::new(7);
    let now = triad_model::now_ns() as u64;
    let mut lines = 0;
    for i in 0..FILES {
        let mut f = std::fs::File::create(dir.join(format!("svc-{i:02}.log")))?;
        for _ in 0..20 {
            let l = datagen::log_record(&mut rng, now + lines);
            writeln!(f, "{}", l.json_line)?;
            lines += 1;
        }
    }
    Ok(lines)
}

/// Appends `TRICKLE_LINES_PER_SEC` lines a second over the files until `stop`, one
/// `write` per line, in ticks of 10 ms. Returns the count so far through `written`.
pub fn spawn_writer(
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::spawn(move || {
        let mut files = (0..FILES)
            .map(|i| {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(dir.join(format!("svc-{i:02}.log")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rng = datagen::Rng::new(11);
        let start = Instant::now();
        let mut next = 0usize;
        let tick = Duration::from_millis(10);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // Lines due by now, at the rate: no drift however long a tick took.
            let due = (start.elapsed().as_secs_f64() * TRICKLE_LINES_PER_SEC as f64) as u64;
            while n < due {
                let l = datagen::log_record(&mut rng, triad_model::now_ns() as u64);
                let mut line = l.json_line.into_bytes();
                line.push(b'\n');
                files[next].write_all(&line)?;
                next = (next + 1) % FILES;
                n += 1;
            }
            written.store(n, Ordering::Relaxed);
            std::thread::sleep(tick);
        }
        Ok(())
    })
}

/// A TCP listener that counts the newline-terminated messages rsyslog forwards.
pub async fn tcp_line_counter(
    counted: Arc<AtomicU64>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port().to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
                    counted.fetch_add(lines as u64, Ordering::Relaxed);
                }
            });
        }
    });
    Ok((port, task))
}

/// A port nothing listens on.
pub fn closed_port() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port().to_string())
}

/// Starts `triad agent` tailing `logs/*.log` into `endpoint`.
pub fn start_triad(data: &Path, logs: &Path, endpoint: &str) -> anyhow::Result<Child> {
    let triad = std::env::current_exe()?.with_file_name("triad");
    let mut child = Command::new(&triad)
        .args(["agent", "--data-dir"])
        .arg(data)
        .arg("--include")
        .arg(format!("{}/*.log", logs.display()))
        .args(["--collector", endpoint])
        .args(["--otlp-grpc-listen", "", "--otlp-http-listen", ""])
        .args(["--zipkin-listen", "", "--metrics-listen", ""])
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
    Ok(child)
}

/// Starts rsyslogd in the foreground with only imfile (inotify mode) on `logs/*.log`,
/// forwarding over TCP to `port` through a disk-assisted queue (as the agent's buffer).
pub fn start_rsyslog(work: &Path, logs: &Path, port: &str) -> anyhow::Result<Child> {
    std::fs::create_dir_all(work.join("spool"))?;
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{spool}")
module(load="imfile" mode="inotify")
input(type="imfile" file="{logs}/*.log" tag="app" freshStartTail="off")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       queue.type="LinkedList" queue.filename="fwd" queue.maxDiskSpace="1g"
       queue.saveOnShutdown="on" action.resumeRetryCount="-1")
"#,
            spool = work.join("spool").display(),
            logs = logs.display(),
        ),
    )?;
    Command::new("rsyslogd")
        .args(["-n", "-i"])
        .arg(work.join("rsyslogd.pid"))
        .arg("-f")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start rsyslogd (Debian package rsyslog; scripts/bench.sh installs it)")
}

/// True when rsyslogd can be run.
pub fn rsyslog_available() -> bool {
    Command::new("rsyslogd")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until `arrived()` reaches `want` (or `timeout` passes); returns the count.
pub async fn settle(arrived: &dyn Fn() -> u64, want: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    while arrived() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    arrived()
}

/// CPU of `pid` over `window`, in % of one core.
pub async fn cpu_pct(pid: &str, window: Duration) -> f64 {
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(window).await;
    (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0
}

/// Stops a shipper: SIGTERM, then SIGKILL after a grace.
pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
