//! `triad agent`: file source and receivers feed the on-disk buffer; the forwarder
//! drains it into the collector; `/metrics` shows the agent's and the host's metrics.
//!
//! ```text
//! files ──► FileSource ──► BufferSink ─┐
//! OTLP gRPC/HTTP, Zipkin ──► receivers ├─► DiskBuffer ──► Forwarder ──► collector :4317
//!                                      │        ▲                │
//!                   checkpoints ◄── AckBoard ◄──┴──── ack ◄──────┘
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_receiver::http::spawn_server;
use triad_receiver::metrics::ReceiverMetrics;
use triad_receiver::tls::Listener;
use triad_receiver::{Accepted, Destination, Ingest, IngestError, IngestFuture};

use crate::buffer::{BufferError, DiskBuffer, Kind, Producer};
use crate::forward::{AckBoard, Forwarder};
use crate::metrics::{AgentMetrics, HostMetrics};
use crate::source::{Batch, DeliverFuture, FileSource, Sink, SourceConfig};

/// zstd level of buffered batches: fast, and still 5–10× on log lines.
const ZSTD_LEVEL: i32 = 1;
/// What a refused sender is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Settings of a standalone agent.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Holds the buffer (`buffer/`) and the checkpoints.
    pub data_dir: PathBuf,
    /// The collector's OTLP/gRPC endpoint.
    pub collector_endpoint: String,
    /// Bound of the on-disk buffer.
    pub max_buffer_bytes: u64,
    /// File tailing, if any files are configured.
    pub source: Option<SourceConfig>,
    /// Host name added to what the receivers take.
    pub host: String,
    /// Largest request body the receivers accept.
    pub max_request_bytes: usize,
    /// Largest request body after decompression.
    pub max_decompressed_bytes: usize,
    /// Who may send to the receivers (the agent's own `auth`; what it forwards goes
    /// to the collector under its own token, so to that token's tenant).
    pub gate: triad_receiver::auth::Gate,
}

/// Sockets the agent serves on; `None` turns a receiver off.
#[derive(Default)]
pub struct Listeners {
    /// OTLP/gRPC.
    pub otlp_grpc: Option<Listener>,
    /// OTLP/HTTP.
    pub otlp_http: Option<Listener>,
    /// Zipkin v2 JSON.
    pub zipkin: Option<Listener>,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics: Option<Listener>,
}

/// A running agent's parts.
pub struct Agent {
    settings: AgentSettings,
    buffer: Arc<DiskBuffer>,
    metrics: AgentMetrics,
    receiver_metrics: ReceiverMetrics,
    acks: AckBoard,
}

impl Agent {
    /// Opens the buffer (recovering what a previous run left) and registers the
    /// metrics. Blocking.
    pub fn open(settings: AgentSettings, registry: &mut Registry) -> Result<Agent, BufferError> {
        let buffer = Arc::new(DiskBuffer::open(
            &settings.data_dir.join("buffer"),
            settings.max_buffer_bytes,
        )?);
        let metrics = AgentMetrics::register(registry);
        metrics.set_buffer(&buffer);
        registry.register_collector(Box::new(HostMetrics));
        let receiver_metrics = ReceiverMetrics::register_under(registry, "triad_agent");
        if !buffer.is_empty() {
            tracing::info!(
                batches = buffer.len(),
                bytes = buffer.bytes(),
                "agent buffer holds batches from the last run; sending them first"
            );
        }
        Ok(Agent {
            settings,
            buffer,
            metrics,
            receiver_metrics,
            acks: AckBoard::default(),
        })
    }

    /// The buffer (for tests and readiness).
    pub fn buffer(&self) -> &Arc<DiskBuffer> {
        &self.buffer
    }

    /// Starts the forwarder, the file source, the receivers and the metrics server.
    /// Every task stops when `cancel` fires.
    pub fn spawn(
        &self,
        listeners: Listeners,
        registry: Arc<Registry>,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<Result<(), String>>,
    ) -> crate::Result<()> {
        let forwarder = Forwarder::new(
            &self.settings.collector_endpoint,
            self.buffer.clone(),
            self.acks.clone(),
            self.metrics.clone(),
        )?;
        let c = cancel.child_token();
        tasks.spawn(async move {
            forwarder.run(c).await;
            Ok(())
        });
        let compressors = Arc::new(Compressors::new());

        if let Some(cfg) = self.settings.source.clone() {
            let mut source = FileSource::new(cfg, self.acks.clone(), self.metrics.clone())?;
            source.resume_after(self.buffer.pending_positions()?);
            let stop = cancel.child_token();
            let sink: Arc<dyn Sink> = Arc::new(BufferSink {
                buffer: self.buffer.clone(),
                compressors: compressors.clone(),
                metrics: self.metrics.clone(),
                stop: stop.clone(),
            });
            let handle = tokio::runtime::Handle::current();
            let (waker, stopping) = (source.waker(), stop.clone());
            tasks.spawn(async move {
                // The source sleeps until its files change: wake it to stop.
                stopping.cancelled().await;
                waker.wake();
                Ok(())
            });
            tasks.spawn_blocking(move || {
                source.run(sink, |f| handle.block_on(f), || stop.is_cancelled());
                Ok(())
            });
        }

        let ingest = Ingest::new(
            Arc::new(BufferDestination {
                buffer: self.buffer.clone(),
                compressors: compressors.clone(),
                metrics: self.metrics.clone(),
                resource: host_resource(&self.settings.host),
            }),
            self.receiver_metrics.clone(),
        );
        let max = self.settings.max_decompressed_bytes;
        if let Some(l) = listeners.otlp_grpc {
            let (ingest, c) = (ingest.clone(), cancel.child_token());
            let gate = self.settings.gate.clone();
            tasks.spawn(async move {
                triad_receiver::grpc::serve(ingest, gate, l, max, c)
                    .await
                    .map_err(|e| format!("agent otlp grpc: {e}"))
            });
        }
        let ready: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(|| true);
        if let Some(l) = listeners.otlp_http {
            let state = triad_receiver::http::HttpState {
                ingest: ingest.clone(),
                max_decompressed_bytes: max,
                registry: registry.clone(),
                ready: ready.clone(),
            };
            let app = triad_receiver::http::router(state, self.settings.max_request_bytes)
                .into_router(self.settings.gate.clone());
            spawn_server("agent otlp http", l, app, cancel, tasks);
        }
        if let Some(l) = listeners.zipkin {
            let app = triad_receiver::zipkin::router(
                ingest.clone(),
                max,
                self.settings.max_request_bytes,
            )
            .into_router(self.settings.gate.clone());
            spawn_server("agent zipkin", l, app, cancel, tasks);
        }
        if let Some(l) = listeners.metrics {
            let app = triad_receiver::http::ops_routes(registry, ready)
                .into_router(self.settings.gate.clone());
            spawn_server("agent metrics", l, app, cancel, tasks);
        }
        Ok(())
    }
}

fn str_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The resource attributes the agent adds: `host.name`, `host.arch`, `os.type`.
fn host_resource(host: &str) -> Vec<KeyValue> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    vec![
        str_kv("host.name", host),
        str_kv("host.arch", arch),
        str_kv("os.type", std::env::consts::OS),
    ]
}

/// Adds the host's attributes to a resource, leaving those the sender set alone.
fn enrich(resource: &mut Option<Resource>, host: &[KeyValue]) {
    let r = resource.get_or_insert_with(Resource::default);
    for kv in host {
        if !r.attributes.iter().any(|a| a.key == kv.key) {
            r.attributes.push(kv.clone());
        }
    }
}

/// zstd compression contexts, reused: creating one per batch costs more than a small
/// batch's compression.
struct Compressors(std::sync::Mutex<Vec<zstd::bulk::Compressor<'static>>>);

impl Compressors {
    fn new() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }

    fn compress(&self, body: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        let pooled = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut c = match pooled {
            Some(c) => c,
            None => zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
        };
        let out = c.compress(body);
        let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 4 {
            pool.push(c);
        }
        out
    }
}

/// The receivers' destination: enrich, encode, compress, queue durably.
struct BufferDestination {
    buffer: Arc<DiskBuffer>,
    compressors: Arc<Compressors>,
    metrics: AgentMetrics,
    resource: Vec<KeyValue>,
}

impl BufferDestination {
    async fn queue(&self, kind: Kind, body: Vec<u8>, items: u64) -> Result<Accepted, IngestError> {
        let (buffer, compressors) = (self.buffer.clone(), self.compressors.clone());
        let pushed = tokio::task::spawn_blocking(move || {
            let compressed = compressors.compress(&body).map_err(BufferError::Io)?;
            // Data from a receiver exists nowhere else: fsync before the sender's ack.
            buffer.try_push(Producer::Receiver, kind, &[], &compressed, true)
        })
        .await
        .map_err(|e| IngestError::Unavailable(format!("agent buffer task failed: {e}")))?;
        self.metrics.set_buffer(&self.buffer);
        match pushed {
            Ok(_) => Ok(Accepted {
                accepted: items,
                ..Accepted::default()
            }),
            Err(e @ BufferError::Full { .. }) => Err(IngestError::Full {
                message: e.to_string(),
                retry_after: RETRY_AFTER,
            }),
            Err(e) => Err(IngestError::Unavailable(e.to_string())),
        }
    }
}

impl Destination for BufferDestination {
    fn traces(&self, mut req: ExportTraceServiceRequest, _tenant: &str) -> IngestFuture<'_> {
        let mut items = 0;
        for rs in &mut req.resource_spans {
            enrich(&mut rs.resource, &self.resource);
            items += rs
                .scope_spans
                .iter()
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
        }
        Box::pin(self.queue(Kind::Traces, req.encode_to_vec(), items))
    }

    fn logs(&self, mut req: ExportLogsServiceRequest, _tenant: &str) -> IngestFuture<'_> {
        let mut items = 0;
        for rl in &mut req.resource_logs {
            enrich(&mut rl.resource, &self.resource);
            items += rl
                .scope_logs
                .iter()
                .map(|s| s.log_records.len() as u64)
                .sum::<u64>();
        }
        Box::pin(self.queue(Kind::Logs, req.encode_to_vec(), items))
    }

    fn metrics(&self, mut req: ExportMetricsServiceRequest, _tenant: &str) -> IngestFuture<'_> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let mut items = 0;
        for rm in &mut req.resource_metrics {
            enrich(&mut rm.resource, &self.resource);
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    items += match &m.data {
                        Some(Data::Gauge(g)) => g.data_points.len(),
                        Some(Data::Sum(s)) => s.data_points.len(),
                        Some(Data::Histogram(h)) => h.data_points.len(),
                        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                        Some(Data::Summary(s)) => s.data_points.len(),
                        None => 0,
                    } as u64;
                }
            }
        }
        Box::pin(self.queue(Kind::Metrics, req.encode_to_vec(), items))
    }
}

/// The file source's sink: encode and compress on the source's thread, then wait for
/// room in the buffer (backpressure stops the reading, not memory).
struct BufferSink {
    buffer: Arc<DiskBuffer>,
    compressors: Arc<Compressors>,
    metrics: AgentMetrics,
    stop: CancellationToken,
}

impl Sink for BufferSink {
    fn deliver(&self, batch: Batch) -> DeliverFuture<'_> {
        Box::pin(async move {
            let Batch { records, positions } = batch;
            let body = triad_model::otlp::logs_to_otlp(records).encode_to_vec();
            let compressed = match self.compressors.compress(&body) {
                Ok(c) => c,
                Err(e) => return Err((format!("compressing a batch: {e}"), Batch::default())),
            };
            let mut backoff = Duration::from_millis(100);
            loop {
                let stop = || self.stop.is_cancelled();
                match self
                    .buffer
                    .push_wait(Kind::Logs, &positions, &compressed, &stop)
                {
                    Ok(_) => break,
                    Err(BufferError::Stopped) => {
                        return Err(("agent stopping".into(), Batch::default()));
                    }
                    Err(e) => {
                        // Disk full or failing: keep the batch and try again.
                        tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "writing to the agent buffer failed; retrying");
                        if self.stop.is_cancelled() {
                            return Err(("agent stopping".into(), Batch::default()));
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            self.metrics.set_buffer(&self.buffer);
            Ok(())
        })
    }
}
