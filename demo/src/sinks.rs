//! Where the simulated services' telemetry goes: log files (JSON lines, Docker
//! json-file, CRI), OTLP/gRPC export of spans, and Prometheus registries served on
//! `/metrics/<service>` and `/metrics/hosts`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::DemoError;
use crate::topology::{HOSTS, LogFormat, SERVICES};

/// Latency buckets of the services' histograms, seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCode {
    route: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// Exemplar labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabels {
    trace_id: String,
    span_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabels {
    host: String,
    cpu: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabel {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FsLabels {
    host: String,
    mountpoint: String,
    fstype: String,
}

struct ServiceMetrics {
    registry: Registry,
    requests: Family<RouteCode, Counter>,
    duration: Family<RouteLabel, HistogramWithExemplars<TraceLabels>>,
    transfers: Counter,
}

/// The services' and hosts' metrics.
#[derive(Clone)]
pub struct Telemetry {
    services: Arc<HashMap<&'static str, ServiceMetrics>>,
    hosts: Arc<Registry>,
    cpu: Family<CpuLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    mem_avail: Family<HostLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Telemetry {
    /// Registries for every service and host.
    pub fn new() -> Telemetry {
        let mut services = HashMap::new();
        for s in SERVICES {
            let mut registry = Registry::default();
            let requests = Family::<RouteCode, Counter>::default();
            let duration =
                Family::<RouteLabel, HistogramWithExemplars<TraceLabels>>::new_with_constructor(
                    || HistogramWithExemplars::new(BUCKETS.into_iter()),
                );
            let transfers = Counter::default();
            registry.register(
                "http_server_requests",
                "HTTP requests served",
                requests.clone(),
            );
            registry.register(
                "http_server_request_duration_seconds",
                "HTTP request duration",
                duration.clone(),
            );
            if s.name == "account" {
                registry.register(
                    "bank_transfers",
                    "Money transfers booked",
                    transfers.clone(),
                );
            }
            services.insert(
                s.name,
                ServiceMetrics {
                    registry,
                    requests,
                    duration,
                    transfers,
                },
            );
        }
        let mut hosts = Registry::default();
        let cpu = Family::<CpuLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        let mem_total = Family::<HostLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let mem_avail = Family::<HostLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let fs_size = Family::<FsLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let fs_avail = Family::<FsLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        hosts.register(
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode",
            cpu.clone(),
        );
        hosts.register(
            "node_memory_MemTotal_bytes",
            "Memory of the host",
            mem_total.clone(),
        );
        hosts.register(
            "node_memory_MemAvailable_bytes",
            "Memory available",
            mem_avail.clone(),
        );
        hosts.register(
            "node_filesystem_size_bytes",
            "File system size",
            fs_size.clone(),
        );
        hosts.register(
            "node_filesystem_avail_bytes",
            "File system space available",
            fs_avail.clone(),
        );
        for h in HOSTS {
            let host = HostLabel {
                host: h.name.into(),
            };
            mem_total.get_or_create(&host).set(h.memory_bytes);
            mem_avail.get_or_create(&host).set(h.memory_bytes * 0.6);
            let fs = FsLabels {
                host: h.name.into(),
                mountpoint: "/".into(),
                fstype: "ext4".into(),
            };
            fs_size.get_or_create(&fs).set(100e9);
            fs_avail.get_or_create(&fs).set(55e9);
        }
        Telemetry {
            services: Arc::new(services),
            hosts: Arc::new(hosts),
            cpu,
            mem_avail,
        }
    }

    /// Counts one request handled by `service`.
    pub fn observe(
        &self,
        service: &str,
        route: &str,
        code: u16,
        seconds: f64,
        trace_id: &str,
        span_id: &str,
    ) {
        let Some(m) = self.services.get(service) else {
            return;
        };
        m.requests
            .get_or_create(&RouteCode {
                route: route.into(),
                code: code.to_string(),
            })
            .inc();
        m.duration
            .get_or_create(&RouteLabel {
                route: route.into(),
            })
            .observe(
                seconds,
                Some(TraceLabels {
                    trace_id: trace_id.into(),
                    span_id: span_id.into(),
                }),
                None,
            );
        if route == "POST /transfers" && code < 400 {
            m.transfers.inc();
        }
    }

    /// Advances the hosts' CPU counters by `dt` with each host busy `busy(host)` of the
    /// time (per CPU, with the given jitter), and sets memory use with it.
    pub fn run_hosts(&self, dt: Duration, mut busy: impl FnMut(&str, usize) -> f64) {
        let secs = dt.as_secs_f64();
        for h in HOSTS {
            let mut total = 0.0;
            for c in 0..h.cpus {
                let b = busy(h.name, c).clamp(0.0, 1.0);
                total += b;
                let l = |mode: &str| CpuLabels {
                    host: h.name.into(),
                    cpu: c.to_string(),
                    mode: mode.into(),
                };
                self.cpu.get_or_create(&l("idle")).inc_by(secs * (1.0 - b));
                self.cpu.get_or_create(&l("user")).inc_by(secs * b * 0.8);
                self.cpu.get_or_create(&l("system")).inc_by(secs * b * 0.2);
            }
            let load = total / h.cpus as f64;
            self.mem_avail
                .get_or_create(&HostLabel {
                    host: h.name.into(),
                })
                .set(h.memory_bytes * (0.7 - 0.4 * load));
        }
    }
}

fn encode(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/metrics/<service>` and `/metrics/hosts`.
pub fn metrics_router(t: Telemetry) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics/{name}",
            axum::routing::get(
                |State(t): State<Telemetry>, UrlPath(name): UrlPath<String>| async move {
                    if name == "hosts" {
                        return encode(&t.hosts);
                    }
                    match t.services.get(name.as_str()) {
                        Some(m) => encode(&m.registry),
                        None => (StatusCode::NOT_FOUND, format!("no demo service {name}"))
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(t)
}

/// The services' log files.
pub struct LogFiles {
    files: HashMap<&'static str, (LogFormat, String, BufWriter<File>)>,
}

impl LogFiles {
    /// Creates (or appends to) one file per service under `dir`.
    pub fn open(dir: &Path) -> Result<LogFiles, DemoError> {
        let mut files = HashMap::new();
        for s in SERVICES {
            let path = match s.log_format {
                LogFormat::Json => dir.join("app").join(format!("{}.log", s.name)),
                // Kubernetes' naming: <pod>_<namespace>_<container>-<container id>.log
                _ => dir.join("containers").join(format!(
                    "{name}-7d9f8b6c5-x2x4q_demo_{name}-{id}.log",
                    id = "0123456789abcdef".repeat(4),
                    name = s.name
                )),
            };
            let io = |source| DemoError::Io {
                path: path.display().to_string(),
                source,
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            files.insert(
                s.name,
                (s.log_format, path.display().to_string(), BufWriter::new(f)),
            );
        }
        Ok(LogFiles { files })
    }

    /// Appends one JSON log line (`line` is the app's own JSON) for `service` at `ns`.
    pub fn write(&mut self, service: &str, ns: i64, line: &str) -> Result<(), DemoError> {
        let Some((format, path, w)) = self.files.get_mut(service) else {
            return Ok(());
        };
        let time = rfc3339_nanos(ns);
        let r = match format {
            LogFormat::Json => writeln!(w, "{line}"),
            LogFormat::Docker => {
                let entry = serde_json::json!({"log": format!("{line}\n"), "stream": "stdout", "time": time});
                writeln!(w, "{entry}")
            }
            LogFormat::Cri => writeln!(w, "{time} stdout F {line}"),
        };
        r.map_err(|source| DemoError::Io {
            path: path.clone(),
            source,
        })
    }

    /// Flushes every file.
    pub fn flush(&mut self) -> Result<(), DemoError> {
        for (_, path, w) in self.files.values_mut() {
            w.flush().map_err(|source| DemoError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// RFC 3339 with nanoseconds, UTC.
pub fn rfc3339_nanos(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Exports span batches over OTLP/gRPC until the channel closes or `cancel` fires; a
/// batch the collector refuses is retried a few times, then dropped and counted.
pub async fn export(
    endpoint: String,
    mut rx: mpsc::Receiver<ExportTraceServiceRequest>,
    cancel: CancellationToken,
) -> Result<(), DemoError> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .map_err(|_| DemoError::Endpoint(endpoint.clone()))?
        .connect_lazy();
    let mut client = TraceServiceClient::new(channel);
    let mut dropped = 0u64;
    loop {
        let req = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = rx.recv() => match r { Some(r) => r, None => return Ok(()) },
        };
        let mut attempt = 0;
        loop {
            match client.export(req.clone()).await {
                Ok(_) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "demo span export failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(200 << attempt)) => {}
                    }
                }
                Err(e) => {
                    dropped += 1;
                    tracing::warn!(error = %e, dropped, "demo span batch dropped");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_in_three_formats_that_the_agent_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = LogFiles::open(dir.path()).unwrap();
        for s in SERVICES {
            f.write(s.name, 1_700_000_000_123_456_789, r#"{"msg":"hi"}"#)
                .unwrap();
        }
        f.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(&dir.path().join("app/gateway.log")),
            "{\"msg\":\"hi\"}\n"
        );
        let id = "0123456789abcdef".repeat(4);
        let docker = read(&dir.path().join(format!(
            "containers/feed-7d9f8b6c5-x2x4q_demo_feed-{id}.log"
        )));
        assert!(
            docker.starts_with(r#"{"log":"{\"msg\":\"hi\"}\n","#),
            "{docker}"
        );
        let cri = read(&dir.path().join(format!(
            "containers/account-7d9f8b6c5-x2x4q_demo_account-{id}.log"
        )));
        assert_eq!(
            cri,
            "2023-11-14T22:13:20.123456789Z stdout F {\"msg\":\"hi\"}\n"
        );
    }
}
