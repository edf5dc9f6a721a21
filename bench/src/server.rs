//! The `triad up` process under test: started from the release build beside this
//! benchmark, on ephemeral ports, measured through /proc and queried over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub struct Server {
    child: Child,
    pub grpc: String,
    pub query: String,
}

impl Server {
    /// Starts `triad up` with `data_dir` and `config`; returns once it printed `ready:`.
    pub fn start(data_dir: &Path, config: &Path) -> anyhow::Result<Server> {
        let exe = std::env::current_exe()?;
        let triad = exe.with_file_name("triad");
        anyhow::ensure!(
            triad.exists(),
            "{} not found: build it first (scripts/bench.sh does: cargo build --release --workspace)",
            triad.display()
        );
        let mut child = Command::new(&triad)
            .args([
                "up",
                "--otlp-grpc-listen",
                "127.0.0.1:0",
                "--otlp-http-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--query-listen",
                "127.0.0.1:0",
                "--zipkin-listen",
                "",
                "--data-dir",
            ])
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", triad.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (mut grpc, mut query) = (String::new(), String::new());
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["listening", "otlp-grpc", addr] => grpc = addr.to_string(),
                ["listening", "query", addr] => query = addr.to_string(),
                [first, ..] if *first == "ready:" => break,
                _ => {}
            }
        }
        anyhow::ensure!(
            !grpc.is_empty() && !query.is_empty(),
            "triad up did not report its ports"
        );
        Ok(Server {
            child,
            grpc: format!("http://{grpc}"),
            query,
        })
    }

    fn proc_field(&self, file: &str, key: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id())).ok()?;
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse().ok()
    }

    /// Peak resident set size, KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_field("status", "VmHWM:").unwrap_or(0)
    }

    /// Resident anonymous memory (heap, not file-backed index pages), KiB.
    pub fn anon_kib(&self) -> u64 {
        self.proc_field("status", "RssAnon:").unwrap_or(0)
    }

    /// Current resident set size, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_field("status", "VmRSS:").unwrap_or(0)
    }

    /// User + system CPU time consumed so far, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        crate::procstat::cpu_seconds(&self.child.id().to_string())
    }

    /// `GET path` on the query server; returns the body (HTTP/1.1, Connection: close).
    pub fn get(&self, path: &str) -> anyhow::Result<String> {
        let mut s = std::net::TcpStream::connect(&self.query)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.query
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("malformed HTTP response")?;
        anyhow::ensure!(
            head.starts_with("HTTP/1.1 200"),
            "GET {path}: {}",
            head.lines().next().unwrap_or("")
        );
        Ok(body.to_string())
    }

    /// The exact total of a log search over all time.
    pub fn log_total(&self, q: &str) -> u64 {
        self.get(&format!("/api/logs/search?limit=1&start=0&q={}", encode(q)))
            .ok()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0)
    }

    /// Graceful stop (SIGTERM), as an operator would; waits up to a minute.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "triad exited with {status}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        anyhow::bail!("triad did not stop within a minute")
    }
}

impl Drop for Server {
    /// A benchmark that fails must not leave the server running on a deleted directory.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
