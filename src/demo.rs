//! Wiring of the simulated microservice system: `triad up --demo` (everything in one
//! process, the demo's logs tailed, its `/metrics` scraped, golden signals on) and
//! `triad demo` (against a stack that runs elsewhere).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::alerting::{ErrorSignal, GoldenSignals, LatencySignal, SaturationSignal};
use triad_model::config::Config;
use triad_model::promconfig::PromConfig;

/// How often `triad up --demo` scrapes the demo's `/metrics`, seconds.
const DEMO_SCRAPE_SECS: u64 = 5;

/// Options of the simulated system.
#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    /// Requests per second entering the demo's API gateway.
    #[arg(long = "demo-rate", value_name = "RPS", default_value_t = 20.0)]
    pub rate: f64,
    /// Seed of the demo's random choices (same seed, same requests and faults).
    #[arg(long = "demo-seed", value_name = "N", default_value_t = 42)]
    pub seed: u64,
    /// Length of the demo's fault cycle in seconds (latency spike, error burst, hot
    /// host, then calm).
    #[arg(long = "demo-cycle-secs", value_name = "SECS", default_value_t = 600)]
    pub cycle_secs: u64,
}

impl DemoArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if !(self.rate > 0.0 && self.rate <= 10_000.0) {
            anyhow::bail!("--demo-rate: {} is out of range (0, 10000]", self.rate);
        }
        if !(60..=86_400).contains(&self.cycle_secs) {
            anyhow::bail!(
                "--demo-cycle-secs: {} is out of range [60, 86400]",
                self.cycle_secs
            );
        }
        Ok(())
    }

    /// The demo's settings, with its files under `log_dir`.
    pub fn config(
        &self,
        otlp_endpoint: String,
        log_dir: PathBuf,
    ) -> anyhow::Result<triad_demo::DemoConfig> {
        self.validate()?;
        Ok(triad_demo::DemoConfig {
            seed: self.seed,
            rate: self.rate,
            otlp_endpoint,
            log_dir,
            cycle: Duration::from_secs(self.cycle_secs),
        })
    }
}

/// What `--demo` changes in the configuration: tail the demo's log files, write RED
/// series and evaluate rules often, and switch golden signals on for every service when
/// the configuration has none, with windows short enough to fire within minutes.
pub fn adjust_config(c: &mut Config, log_dir: &std::path::Path) {
    let cfg = triad_demo::DemoConfig {
        log_dir: log_dir.to_path_buf(),
        ..Default::default()
    };
    c.agent.include.extend(triad_demo::log_globs(&cfg));
    c.collector.metrics.span_metrics_interval_secs =
        c.collector.metrics.span_metrics_interval_secs.min(5);
    c.alerting.evaluation_interval_secs = c.alerting.evaluation_interval_secs.min(10);
    let gs = &mut c.alerting.golden_signals;
    if gs.default.is_none() && gs.services.is_empty() {
        gs.default = Some(GoldenSignals {
            latency: Some(LatencySignal {
                threshold_seconds: 0.5,
                quantile: 0.99,
                window_secs: 60,
                for_secs: 20,
            }),
            errors: Some(ErrorSignal {
                ratio_threshold: 0.05,
                window_secs: 60,
                for_secs: 20,
                slo: Some(0.99),
            }),
            traffic: None,
            saturation: Some(SaturationSignal {
                cpu_ratio: Some(0.9),
                memory_ratio: Some(0.95),
                disk_ratio: Some(0.95),
                host_label: "host".into(),
                window_secs: 60,
                for_secs: 20,
            }),
        });
    }
}

/// The user's scrape configuration with the demo's jobs added.
pub fn scrape_config(
    user: Option<PromConfig>,
    demo_addr: SocketAddr,
) -> anyhow::Result<Option<PromConfig>> {
    let text = triad_demo::scrape_config(demo_addr, DEMO_SCRAPE_SECS);
    let demo = crate::config_file::parse_scrape_config(&text)
        .map_err(|e| anyhow::anyhow!("demo scrape config: {e}"))?;
    Ok(Some(match user {
        Some(mut u) => {
            u.scrape_configs.extend(demo.scrape_configs);
            u
        }
        None => demo,
    }))
}

/// Spawns the demo into `tasks`.
pub fn spawn(
    cfg: triad_demo::DemoConfig,
    listener: tokio::net::TcpListener,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) {
    let cancel = cancel.child_token();
    tasks.spawn(async move {
        triad_demo::run(cfg, listener, cancel)
            .await
            .map_err(|e| format!("demo: {e}"))
    });
}

/// `triad demo`: the simulated system against a Triad that runs elsewhere.
#[derive(Args)]
pub struct DemoCommand {
    /// OTLP/gRPC endpoint of a collector or agent the spans go to.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:4317")]
    pub otlp_endpoint: String,
    /// Directory the demo services write their log files to; point an agent at it.
    #[arg(long, value_name = "DIR", default_value = "./triad-demo")]
    pub log_dir: PathBuf,
    /// Address of the demo's /metrics endpoints (/metrics/<service>, /metrics/hosts).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_listen: SocketAddr,
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// Runs `triad demo` until Ctrl-C.
pub async fn run_standalone(
    a: DemoCommand,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<()> {
    let cfg = a.demo.config(a.otlp_endpoint.clone(), a.log_dir.clone())?;
    let listener = crate::bind("demo-metrics", a.metrics_listen).await?;
    let addr = listener.local_addr().context("demo metrics address")?;
    println!("# The demo's log files, for the agent's include:");
    for g in triad_demo::log_globs(&cfg) {
        println!("#   {g}");
    }
    println!("# A prometheus.yml for its /metrics (collector.metrics.scrape_config_file):");
    for line in triad_demo::scrape_config(addr, 15).lines() {
        println!("#   {line}");
    }
    spawn(cfg, listener, cancel, tasks);
    println!("ready: demo sending spans to {}", a.otlp_endpoint);
    Ok(())
}
