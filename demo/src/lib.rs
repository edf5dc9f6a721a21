//! A simulated microservice system: an API gateway in front of feed, profile and topic
//! services, and an account service in the spirit of a small bank. Every request is a
//! trace across services sent over OTLP/gRPC; every service writes JSON log lines with
//! trace and span IDs to files (plain JSON lines, Docker `json-file` and CRI, as on
//! Kubernetes nodes) and exposes Prometheus `/metrics` with exemplars; the simulated hosts
//! expose node_exporter-named metrics. Faults follow a schedule, so golden-signal alerts
//! fire and resolve within minutes of the start.
//!
//! Same seed, same requests: IDs, routes, durations and errors come from one seeded RNG
//! (wall-clock time only decides when they are sent).
//!
//! | file | what |
//! |---|---|
//! | `topology.rs` | services, hosts, routes and their calls |
//! | `faults.rs` | the fault schedule |
//! | `traffic.rs` | one request → spans, log lines, metric observations |
//! | `sinks.rs` | log files, OTLP export, `/metrics` endpoints |

mod faults;
mod sinks;
mod topology;
mod traffic;

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use faults::{Fault, FaultKind, schedule};
pub use topology::{HOSTS, SERVICES};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A log file could not be written.
    #[error("demo log file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The OTLP endpoint is not a valid URI.
    #[error("demo OTLP endpoint {0:?} is not a URL")]
    Endpoint(String),
}

/// Settings of a demo run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Requests per second entering the gateway.
    pub rate: f64,
    /// OTLP/gRPC endpoint the spans go to, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: String,
    /// Directory of the services' log files (`<dir>/app/*.log` JSON lines,
    /// `<dir>/containers/*.log` Docker json-file and CRI).
    pub log_dir: PathBuf,
    /// Length of one fault cycle; faults repeat every cycle.
    pub cycle: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 42,
            rate: 20.0,
            otlp_endpoint: "http://127.0.0.1:4317".into(),
            log_dir: PathBuf::from("./triad-demo"),
            cycle: Duration::from_secs(600),
        }
    }
}

/// Globs of the demo's log files, for the agent's `include`.
pub fn log_globs(cfg: &DemoConfig) -> Vec<String> {
    ["app", "containers"]
        .iter()
        .map(|d| {
            cfg.log_dir
                .join(d)
                .join("*.log")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// A Prometheus configuration (`prometheus.yml` text) with one job per demo service and
/// one for the simulated hosts, scraping the demo's `/metrics` endpoints at `addr` every
/// `interval_secs`.
pub fn scrape_config(addr: std::net::SocketAddr, interval_secs: u64) -> String {
    let mut out = String::from("scrape_configs:\n");
    let job = |name: &str, path: &str, labels: &str| {
        format!(
            "  - job_name: {name}\n    scrape_interval: {interval_secs}s\n    scrape_timeout: {interval_secs}s\n    metrics_path: {path}\n    static_configs:\n      - targets: ['{addr}']{labels}\n"
        )
    };
    for s in SERVICES {
        out += &job(
            &format!("demo-{}", s.name),
            &format!("/metrics/{}", s.name),
            &format!("\n        labels: {{service: {}}}", s.name),
        );
    }
    out += &job("demo-hosts", "/metrics/hosts", "");
    out
}

/// The running demo: its `/metrics` server and traffic generator. Returns when `cancel`
/// fires or a sink fails.
pub async fn run(
    cfg: DemoConfig,
    metrics_listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) -> Result<(), DemoError> {
    let telemetry = sinks::Telemetry::new();
    let server = {
        let app = sinks::metrics_router(telemetry.clone());
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let r = axum::serve(metrics_listener, app)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "demo metrics server failed");
            }
        })
    };
    let result = traffic::run(cfg, telemetry, cancel.clone()).await;
    cancel.cancel();
    let _ = server.await;
    result
}
