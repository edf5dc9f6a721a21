//! The `triad.yaml` configuration: one section per component, every field documented,
//! defaults such that no file is needed at all.
//!
//! Loading (reading the file, YAML parsing) is the binary's job; this module holds the
//! structs, their defaults and [`Config::validate`], which does no I/O.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod auth;
mod limits;
mod retention;
mod storage;
mod tls;
pub use auth::{AuthConfig, AuthSetting, TokenConfig};
pub use limits::{Effective as EffectiveLimits, LimitsConfig, TenantLimits};
pub use retention::{Retention, Retentions};
pub use storage::{MetastoreConfig, StorageConfig};
pub use tls::TlsConfig;

/// A configuration value that is out of range; the message names the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}; {fix}")]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `collector.logs.commit_interval_ms`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// The whole `triad.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for all stored data (write-ahead logs, indexes). `--data-dir` overrides it.
    pub data_dir: PathBuf,
    /// The collector: receivers and storage.
    pub collector: CollectorConfig,
    /// The query server: HTTP APIs.
    pub query: QueryConfig,
    /// The node agent's file tailing (in `triad up`, it runs in-process).
    pub agent: AgentConfig,
    /// Alert rules, golden signals and webhook notifications (run by the query server).
    pub alerting: crate::alerting::AlertingConfig,
    /// Where sealed log and trace splits go. The default keeps them in the data
    /// directory; an `s3://` URL puts them in object storage shared by several machines.
    pub storage: StorageConfig,
    /// The list of splits in object storage: a file for one process, PostgreSQL when
    /// query servers run apart from the collector.
    pub metastore: MetastoreConfig,
    /// Authentication: absent, Triad serves without it and on loopback only; `none`,
    /// without it on any address; or a map with `tokens` (see `triad token new`).
    pub auth: AuthSetting,
    /// A file holding the token this process sends to other Triad servers: the agent to
    /// its collectors, a query server to collectors' internal and remote-read APIs
    /// (`TRIAD_TOKEN` in the environment takes precedence). Such a token needs the
    /// `trusted` flag where it reads for several tenants.
    pub client_token_file: Option<PathBuf>,
    /// TLS on this process's servers and for its calls to other Triad servers.
    pub tls: TlsConfig,
    /// What one tenant may cost (ingest rate, series shape, query range and
    /// concurrency, live tails) and what one request may hold.
    pub limits: LimitsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./triad-data"),
            collector: CollectorConfig::default(),
            query: QueryConfig::default(),
            agent: AgentConfig::default(),
            alerting: crate::alerting::AlertingConfig::default(),
            storage: StorageConfig::default(),
            metastore: MetastoreConfig::default(),
            auth: AuthSetting::Unset,
            client_token_file: None,
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// Where to start reading files found at start-up without a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Read what the files already hold.
    Beginning,
    /// Only lines written from now on.
    End,
}

/// The node agent's file tailing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Glob patterns of log files to tail, e.g. `/var/log/containers/*.log`. Empty: no
    /// file tailing. JSON lines, Docker json-file, CRI and plain text are recognised.
    pub include: Vec<String>,
    /// Glob patterns of files to skip even when included.
    pub exclude: Vec<String>,
    /// `beginning` or `end`: where to start in files found at start-up without a
    /// checkpoint. Files that appear later are always read from their beginning.
    pub read_from: ReadFrom,
    /// Longer lines are cut at this many bytes, with a `…[truncated]` marker.
    pub max_line_bytes: usize,
    /// How often to scan the globs and read every open file whatever change
    /// notifications said, in seconds: the fallback for events that never come
    /// (network file systems, a directory created after the start, an overflowed
    /// inotify queue). Changes are otherwise read as they are reported.
    pub scan_interval_secs: u64,
    /// Files unchanged for longer than this are not opened, in seconds; 0: no limit.
    pub ignore_older_secs: u64,
    /// A fully read file that has not grown for this long is closed, freeing its file
    /// descriptor, and reopened where it stopped once it grows, in seconds; 0: never.
    pub close_idle_secs: u64,
    /// Labels added to every record as attributes, e.g. `{env: prod}`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `triad agent` only: the collector's OTLP/gRPC endpoint to forward to; several,
    /// comma-separated, spread batches over them (a failing one is skipped for a
    /// while), and a name resolving to several addresses (a Kubernetes headless
    /// Service) stands for each of them.
    pub collector_endpoint: String,
    /// `triad agent` only: bound of the on-disk buffer that holds batches until the
    /// collector acknowledges them, in bytes.
    pub max_buffer_bytes: u64,
    /// `triad agent` only: OTLP/gRPC receiver address (`""` turns it off).
    pub otlp_grpc_listen: String,
    /// `triad agent` only: OTLP/HTTP receiver address (`""` turns it off).
    pub otlp_http_listen: String,
    /// `triad agent` only: Zipkin v2 JSON receiver address (`""` turns it off).
    pub zipkin_listen: String,
    /// `triad agent` only: address of `/metrics` (agent and host metrics), `/healthz`
    /// and `/readyz`.
    pub metrics_listen: String,
    /// `triad agent` only: largest request body the receivers accept, in bytes.
    pub max_request_bytes: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            max_line_bytes: 256 * 1024,
            scan_interval_secs: 10,
            ignore_older_secs: 0,
            close_idle_secs: 300,
            labels: Default::default(),
            collector_endpoint: "http://127.0.0.1:4317".into(),
            max_buffer_bytes: 1 << 30,
            otlp_grpc_listen: "0.0.0.0:4317".into(),
            otlp_http_listen: "0.0.0.0:4318".into(),
            zipkin_listen: "0.0.0.0:9411".into(),
            metrics_listen: "0.0.0.0:9464".into(),
            max_request_bytes: 16 << 20,
        }
    }
}

/// Collector section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Address of the OTLP/gRPC receiver.
    pub otlp_grpc_listen: SocketAddr,
    /// Address of the OTLP/HTTP receiver (`/v1/traces`, `/v1/logs`).
    pub otlp_http_listen: SocketAddr,
    /// Address of the Zipkin v2 receiver (`POST /api/v2/spans`, JSON), as Jaeger's
    /// all-in-one has; `""` turns it off.
    pub zipkin_listen: String,
    /// Largest request body accepted, in bytes, as sent (compressed). Larger: HTTP 413 /
    /// gRPC RESOURCE_EXHAUSTED.
    pub max_request_bytes: usize,
    /// Largest request body after gzip decompression, in bytes (guards against gzip bombs).
    pub max_decompressed_bytes: usize,
    /// Log store settings.
    pub logs: StoreConfig,
    /// Trace store settings.
    pub traces: StoreConfig,
    /// Metric store and scraping.
    pub metrics: MetricsConfig,
    /// This collector's name in the metastore and in object keys; unique per collector.
    /// Empty: the host name.
    pub node_id: String,
    /// With object storage: the URL query servers reach this collector's HTTP receiver
    /// at (`http://collector-0.triad-collector:4318`), published with its lease. Empty:
    /// `otlp_http_listen`'s address, or the host name when that is `0.0.0.0`.
    pub advertise_url: String,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            otlp_grpc_listen: SocketAddr::from(([0, 0, 0, 0], 4317)),
            otlp_http_listen: SocketAddr::from(([0, 0, 0, 0], 4318)),
            zipkin_listen: "0.0.0.0:9411".into(),
            max_request_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            logs: StoreConfig::default(),
            traces: StoreConfig::default(),
            metrics: MetricsConfig::default(),
            node_id: String::new(),
            advertise_url: String::new(),
        }
    }
}

/// The metric store (TSDB) and the Prometheus scraper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Time span of the in-memory head before it becomes an on-disk block, in seconds.
    pub block_range_secs: u64,
    /// Drop blocks whose newest sample is older than this (seconds). 0 keeps forever.
    pub retention_secs: u64,
    /// Drop the oldest blocks while the metric store is larger than this (bytes). 0: no limit.
    pub retention_bytes: u64,
    /// A Prometheus configuration file (`prometheus.yml`) whose `global` and
    /// `scrape_configs` sections the scraper follows. Relative paths are relative to the
    /// working directory.
    pub scrape_config_file: Option<PathBuf>,
    /// How often the RED metrics derived from spans (`triad_span_*`) are written, in
    /// seconds.
    pub span_metrics_interval_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            block_range_secs: 7_200,
            retention_secs: 15 * 86_400,
            retention_bytes: 0,
            scrape_config_file: None,
            span_metrics_interval_secs: 15,
        }
    }
}

impl MetricsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        range(
            "collector.metrics.span_metrics_interval_secs",
            self.span_metrics_interval_secs,
            1,
            3_600,
            "e.g. 15",
        )?;
        range(
            "collector.metrics.block_range_secs",
            self.block_range_secs,
            60,
            7 * 86_400,
            "e.g. 7200 (two hours, as Prometheus)",
        )?;
        if self.retention_secs != 0 && self.retention_secs < self.block_range_secs {
            return Err(ConfigError {
                key: "collector.metrics.retention_secs".into(),
                problem: format!(
                    "{} is shorter than block_range_secs ({})",
                    self.retention_secs, self.block_range_secs
                ),
                fix: "retention drops whole blocks: make it at least block_range_secs, or 0 to keep forever".into(),
            });
        }
        Ok(())
    }
}

/// Settings of one store (logs or traces). See docs/architecture.md for the commit
/// policy and the split lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Longest time between index commits: how long until acknowledged data is searchable.
    pub commit_interval_ms: u64,
    /// Commit early once this many documents are waiting.
    pub commit_docs: u64,
    /// Seal the active split once it holds this many documents.
    pub split_max_docs: u64,
    /// Seal the active split once it is this old (seconds), so retention can drop whole splits.
    pub split_max_age_secs: u64,
    /// Drop sealed splits whose newest record is older than this (seconds). 0 keeps forever.
    pub retention_secs: u64,
    /// Drop the oldest sealed splits while the store is larger than this (bytes). 0: no limit.
    pub retention_bytes: u64,
    /// Indexing threads of the tantivy writer.
    pub indexer_threads: usize,
    /// Memory budget of the tantivy writer, in MiB, shared by its threads.
    pub indexer_memory_mb: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            commit_interval_ms: 1_000,
            commit_docs: 200_000,
            split_max_docs: 10_000_000,
            split_max_age_secs: 3_600,
            retention_secs: 7 * 86_400,
            retention_bytes: 0,
            indexer_threads: 1,
            indexer_memory_mb: 128,
        }
    }
}

/// Query server section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Address of the query server (UI, Jaeger API, log API, `/metrics`).
    pub listen: SocketAddr,
    /// Most log hits one search may return (`limit` is capped to it).
    pub max_log_hits: usize,
    /// Most traces one Jaeger search may return.
    pub max_traces: usize,
    /// How often a live tail (`/api/logs/tail`) looks for new lines, in ms.
    pub tail_poll_interval_ms: u64,
    /// Most samples one PromQL query may hold in memory (Prometheus' `--query.max-samples`).
    pub max_samples: usize,
    /// Longest PromQL evaluation, in seconds (`--query.timeout`).
    pub query_timeout_secs: u64,
    /// How far back a PromQL selector looks for a sample, in seconds
    /// (`--query.lookback-delta`).
    pub lookback_delta_secs: u64,
    /// Where a separate `triad query` reads metric series for PromQL: the remote read
    /// endpoint of a collector (`http://collector:4318/api/v1/read`) or of a Prometheus
    /// (`http://prometheus:9090/api/v1/read`). Unset, a separate `triad query` answers
    /// the Prometheus API with `unavailable` — with object storage it reads the
    /// collector's (`<collector_url>/api/v1/read`); `triad up` always reads its own store.
    pub remote_read_url: Option<String>,
    /// With object storage: the HTTP address of the collector (`http://collector:4318`)
    /// that a separate `triad query` asks for the logs, traces and samples it has not
    /// published yet. Unset, it asks every live collector, as their leases in the
    /// metastore list them; `triad up` reads its own collector.
    pub collector_url: Option<String>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 7070)),
            max_log_hits: 1_000,
            max_traces: 1_500,
            tail_poll_interval_ms: 500,
            max_samples: 50_000_000,
            query_timeout_secs: 120,
            lookback_delta_secs: 300,
            remote_read_url: None,
            collector_url: None,
        }
    }
}

/// A configuration that passed [`Config::validate`].
#[derive(Debug, Clone)]
pub struct ValidConfig(Config, bool);

impl std::ops::Deref for ValidConfig {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.0
    }
}

impl ValidConfig {
    /// Replaces the data directory (the `--data-dir` flag); any path is valid.
    pub fn with_data_dir(mut self, dir: PathBuf) -> Self {
        self.0.data_dir = dir;
        self
    }

    /// Whether listeners were moved to loopback because no `auth` is configured (the
    /// binary says so at start).
    pub fn held_to_loopback(&self) -> bool {
        self.1
    }

    /// Applies `f` and validates again, for overrides from the command line or tests.
    pub fn modify(self, f: impl FnOnce(&mut Config)) -> Result<ValidConfig, ConfigError> {
        let (mut c, held) = (self.0, self.1);
        f(&mut c);
        c.validate().map(|mut v| {
            v.1 |= held;
            v
        })
    }
}

pub(crate) fn range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    v: T,
    min: T,
    max: T,
    fix: &str,
) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError {
            key: key.to_string(),
            problem: format!("{v} is out of range [{min}, {max}]"),
            fix: fix.to_string(),
        });
    }
    Ok(())
}

impl StoreConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |f: &str| format!("{prefix}.{f}");
        range(
            &k("commit_interval_ms"),
            self.commit_interval_ms,
            10,
            600_000,
            "set how often new data becomes searchable, e.g. 1000",
        )?;
        range(
            &k("commit_docs"),
            self.commit_docs,
            1,
            100_000_000,
            "e.g. 200000",
        )?;
        range(
            &k("split_max_docs"),
            self.split_max_docs,
            1_000,
            2_000_000_000,
            "e.g. 10000000 documents per split",
        )?;
        range(
            &k("split_max_age_secs"),
            self.split_max_age_secs,
            1,
            7 * 86_400,
            "e.g. 3600: one split per hour",
        )?;
        if self.retention_secs != 0 && self.retention_secs < self.split_max_age_secs {
            return Err(ConfigError {
                key: k("retention_secs"),
                problem: format!(
                    "{} is shorter than split_max_age_secs ({})",
                    self.retention_secs, self.split_max_age_secs
                ),
                fix: "retention drops whole splits: make it at least split_max_age_secs, or 0 to keep forever".into(),
            });
        }
        range(
            &k("indexer_threads"),
            self.indexer_threads,
            1,
            64,
            "e.g. 1 or the number of cores",
        )?;
        // tantivy needs at least 15 MB per indexing thread.
        let min_mem = 16 * self.indexer_threads;
        range(
            &k("indexer_memory_mb"),
            self.indexer_memory_mb,
            min_mem,
            16_384,
            "at least 16 MiB per indexer thread, e.g. 128",
        )
    }
}

impl Config {
    /// Without an `auth` key, every listener is held to loopback: an address on every
    /// interface (`0.0.0.0`, `::`) becomes loopback's, any other non-loopback address is
    /// an error. Returns whether any address was changed.
    fn hold_to_loopback(&mut self) -> Result<bool, ConfigError> {
        if self.auth != AuthSetting::Unset {
            return Ok(false);
        }
        let mut changed = false;
        let mut hold = |key: &str, addr: &mut SocketAddr| -> Result<(), ConfigError> {
            let ip = addr.ip();
            if ip.is_loopback() {
                return Ok(());
            }
            if !ip.is_unspecified() {
                return Err(ConfigError {
                    key: key.into(),
                    problem: format!(
                        "{addr} is reachable from other machines, and no `auth` is configured"
                    ),
                    fix: "configure tokens under `auth:` (see `triad token new`), or write \
                          `auth: none` to serve without authentication"
                        .into(),
                });
            }
            addr.set_ip(if ip.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
            changed = true;
            Ok(())
        };
        hold(
            "collector.otlp_grpc_listen",
            &mut self.collector.otlp_grpc_listen,
        )?;
        hold(
            "collector.otlp_http_listen",
            &mut self.collector.otlp_http_listen,
        )?;
        hold("query.listen", &mut self.query.listen)?;
        let a = &mut self.agent;
        for (key, text) in [
            ("collector.zipkin_listen", &mut self.collector.zipkin_listen),
            ("agent.otlp_grpc_listen", &mut a.otlp_grpc_listen),
            ("agent.otlp_http_listen", &mut a.otlp_http_listen),
            ("agent.zipkin_listen", &mut a.zipkin_listen),
            ("agent.metrics_listen", &mut a.metrics_listen),
        ] {
            if let Ok(mut addr) = text.parse::<SocketAddr>() {
                hold(key, &mut addr)?;
                *text = addr.to_string();
            }
        }
        Ok(changed)
    }

    /// Whether tokens are also kept in the metastore (`triad token add`): with object
    /// storage and a PostgreSQL metastore, which every process shares.
    pub fn tokens_in_metastore(&self) -> bool {
        self.storage.is_remote() && self.metastore.url.starts_with("postgres")
    }

    /// Checks every value; the error names the key and how to fix it. Does no I/O.
    pub fn validate(mut self) -> Result<ValidConfig, ConfigError> {
        self.auth.validate(self.tokens_in_metastore())?;
        self.tls.validate()?;
        self.limits.validate()?;
        self.validate_retentions()?;
        let held = self.hold_to_loopback()?;
        let c = &self.collector;
        range(
            "collector.max_request_bytes",
            c.max_request_bytes,
            1024,
            1 << 30,
            "e.g. 16777216 (16 MiB)",
        )?;
        range(
            "collector.max_decompressed_bytes",
            c.max_decompressed_bytes,
            c.max_request_bytes,
            4 << 30,
            "must be at least max_request_bytes, e.g. 67108864 (64 MiB)",
        )?;
        c.logs.validate("collector.logs")?;
        c.traces.validate("collector.traces")?;
        let q = &self.query;
        range(
            "query.max_log_hits",
            q.max_log_hits,
            1,
            100_000,
            "e.g. 1000",
        )?;
        range("query.max_traces", q.max_traces, 1, 100_000, "e.g. 1500")?;
        range(
            "query.tail_poll_interval_ms",
            q.tail_poll_interval_ms,
            50,
            60_000,
            "e.g. 500",
        )?;
        range(
            "query.max_samples",
            q.max_samples,
            1_000,
            1_000_000_000,
            "e.g. 50000000",
        )?;
        range(
            "query.query_timeout_secs",
            q.query_timeout_secs,
            1,
            3_600,
            "e.g. 120",
        )?;
        range(
            "query.lookback_delta_secs",
            q.lookback_delta_secs,
            1,
            86_400,
            "e.g. 300 (5 minutes, as Prometheus)",
        )?;
        if let Some(url) = &q.remote_read_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError {
                key: "query.remote_read_url".into(),
                problem: format!("{url:?} is not an http:// or https:// URL"),
                fix: "e.g. http://collector:4318/api/v1/read".into(),
            });
        }
        if let Some(url) = &q.collector_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError {
                key: "query.collector_url".into(),
                problem: format!("{url:?} is not an http:// or https:// URL"),
                fix: "the collector's OTLP/HTTP address, e.g. http://collector:4318".into(),
            });
        }
        c.metrics.validate()?;
        let a = &self.agent;
        range(
            "agent.max_line_bytes",
            a.max_line_bytes,
            1024,
            64 << 20,
            "e.g. 262144 (256 KiB)",
        )?;
        range(
            "agent.scan_interval_secs",
            a.scan_interval_secs,
            1,
            3600,
            "e.g. 10",
        )?;
        range(
            "agent.max_buffer_bytes",
            a.max_buffer_bytes,
            1 << 20,
            1 << 50,
            "e.g. 1073741824 (1 GiB)",
        )?;
        range(
            "agent.max_request_bytes",
            a.max_request_bytes,
            1024,
            1 << 30,
            "e.g. 16777216 (16 MiB)",
        )?;
        for endpoint in a.collector_endpoint.split(',').map(str::trim) {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                || endpoint.len() <= "http://".len()
            {
                return Err(ConfigError {
                    key: "agent.collector_endpoint".into(),
                    problem: format!("{endpoint:?} is not an http:// or https:// URL"),
                    fix: "set the collector's OTLP/gRPC address, e.g. http://collector:4317, \
                          or several, comma-separated"
                        .into(),
                });
            }
        }
        for (key, addr) in [
            ("collector.zipkin_listen", &self.collector.zipkin_listen),
            ("agent.otlp_grpc_listen", &a.otlp_grpc_listen),
            ("agent.otlp_http_listen", &a.otlp_http_listen),
            ("agent.zipkin_listen", &a.zipkin_listen),
            ("agent.metrics_listen", &a.metrics_listen),
        ] {
            if !addr.is_empty() && addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError {
                    key: key.into(),
                    problem: format!("{addr:?} is not an address"),
                    fix: "write ip:port, e.g. 0.0.0.0:4317, or \"\" to turn it off".into(),
                });
            }
        }
        self.alerting.validate()?;
        self.storage.validate("storage")?;
        // A published split's local copy must outlive the query servers' next listing
        // and the longest query that may still read it.
        let least = self.storage.refresh_secs + self.query.query_timeout_secs;
        if self.storage.is_remote() && self.storage.local_grace_secs < least {
            return Err(ConfigError {
                key: "storage.local_grace_secs".into(),
                problem: format!(
                    "{} is shorter than storage.refresh_secs + query.query_timeout_secs ({least})",
                    self.storage.local_grace_secs
                ),
                fix: format!("set it to at least {least}, e.g. {}", least.max(600)),
            });
        }
        self.metastore.validate("metastore")?;
        if c.node_id.contains(['/', ' ', '\n']) {
            return Err(ConfigError {
                key: "collector.node_id".into(),
                problem: format!("{:?} contains a slash or whitespace", c.node_id),
                fix: "use letters, digits, dots and dashes, e.g. collector-0".into(),
            });
        }
        let url = c.advertise_url.as_str();
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError {
                key: "collector.advertise_url".into(),
                problem: format!("{:?} is not an http:// or https:// URL", c.advertise_url),
                fix: "e.g. http://collector-0.triad-collector:4318".into(),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError {
                key: "data_dir".into(),
                problem: "is empty".into(),
                fix: "set a directory, e.g. ./triad-data".into(),
            });
        }
        Ok(ValidConfig(self, held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = Config::default();
        c.collector.traces.commit_interval_ms = 0;
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "collector.traces.commit_interval_ms");
        assert!(e.to_string().contains("out of range"), "{e}");

        let mut c = Config::default();
        c.collector.logs.retention_secs = 60;
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "collector.logs.retention_secs");

        let mut c = Config::default();
        c.query.remote_read_url = Some("collector:4318/api/v1/read".into());
        let e = c.clone().validate().unwrap_err();
        assert_eq!(e.key, "query.remote_read_url");
        c.query.remote_read_url = Some("http://collector:4318/api/v1/read".into());
        c.validate().unwrap();
    }
}
