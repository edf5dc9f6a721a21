//! Receivers shared by the agent and the collector: OTLP/gRPC ([`grpc`]), OTLP/HTTP
//! ([`http`]) and Zipkin v2 JSON ([`zipkin`]).
//!
//! The receivers own the protocols — framing, compression, size limits, decoding, the
//! error shapes each protocol prescribes, the counters — and hand decoded OTLP requests
//! to a [`Destination`]. The collector's destination validates, converts and stores; the
//! agent's adds the host's resource attributes and queues the request for forwarding.
//! A destination reports per-item rejections as OTLP partial success, a request whose
//! every item is invalid as [`IngestError::Invalid`] (HTTP 400 / gRPC INVALID_ARGUMENT),
//! and a full queue as [`IngestError::Full`] (HTTP 429 / gRPC RESOURCE_EXHAUSTED, both
//! with a retry hint), so the sender sees a clear, actionable answer.

pub mod auth;
pub mod client;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod loki;
pub mod metrics;
pub mod serve;
pub mod tls;
pub mod zipkin;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::metrics::{OutcomeLabels, ReceiverMetrics, RecvLabels};

/// Why an export was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Every item was invalid; nothing was stored. Do not retry.
    #[error("{message}")]
    Invalid {
        /// Why, for the sender.
        message: String,
        /// How many items were refused.
        rejected: u64,
    },
    /// Storage did not accept the data; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The destination's queue is full; retry after the given delay.
    #[error("queue full: {message}")]
    Full {
        /// What is full, for the sender.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
}

/// The result of an accepted export.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Items taken (stored or queued).
    pub accepted: u64,
    /// Items rejected as invalid (the rest were taken).
    pub rejected: u64,
    /// Why, for OTLP's partial-success `error_message`.
    pub message: String,
}

/// A boxed future returned by [`Destination`] methods.
pub type IngestFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Accepted, IngestError>> + Send + 'a>>;

/// Where decoded requests go. A method resolves once the data is durable (stored, or
/// queued on disk): the receiver acknowledges the sender only then.
pub trait Destination: Send + Sync + 'static {
    /// Takes an OTLP trace export request.
    fn traces(&self, req: ExportTraceServiceRequest, tenant: &str) -> IngestFuture<'_>;
    /// Takes an OTLP logs export request.
    fn logs(&self, req: ExportLogsServiceRequest, tenant: &str) -> IngestFuture<'_>;
    /// Takes an OTLP metrics export request.
    fn metrics(&self, req: ExportMetricsServiceRequest, tenant: &str) -> IngestFuture<'_>;
}

/// The ingest path shared by the receivers: a destination and the counters.
#[derive(Clone)]
pub struct Ingest {
    /// Where requests go.
    pub destination: Arc<dyn Destination>,
    /// Receiver counters.
    pub metrics: ReceiverMetrics,
    /// The tenants' ingest rates.
    pub limits: Arc<limits::Limits>,
}

impl Ingest {
    /// An ingest path into `destination`, counted in `metrics`, without rate limits.
    pub fn new(destination: Arc<dyn Destination>, metrics: ReceiverMetrics) -> Self {
        Self {
            destination,
            metrics,
            limits: limits::Limits::defaults(),
        }
    }

    /// The same path under `limits` (the ingest rate per tenant).
    pub fn with_limits(mut self, limits: Arc<limits::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Takes `items` from the tenant's ingest budget, or refuses the request with a
    /// retry hint (429 / RESOURCE_EXHAUSTED with RetryInfo): the sender retries, nothing
    /// is lost.
    fn admit(
        &self,
        signal: &'static str,
        transport: &'static str,
        tenant: &str,
        items: u64,
    ) -> Result<(), IngestError> {
        self.limits.admit_ingest(tenant, items).map_err(|r| {
            self.record_outcome(signal, transport, "rate_limited");
            IngestError::Full {
                message: r.message,
                retry_after: r.retry_after.unwrap_or(Duration::from_secs(1)),
            }
        })
    }

    fn count(
        &self,
        signal: &'static str,
        transport: &'static str,
        outcome: &Result<Accepted, IngestError>,
    ) {
        let l = RecvLabels { signal, transport };
        let outcome = match outcome {
            Ok(a) => {
                self.metrics.accepted.get_or_create(&l).inc_by(a.accepted);
                self.metrics.rejected.get_or_create(&l).inc_by(a.rejected);
                if a.rejected > 0 { "partial" } else { "ok" }
            }
            Err(IngestError::Invalid { rejected, .. }) => {
                self.metrics.rejected.get_or_create(&l).inc_by(*rejected);
                "invalid"
            }
            Err(IngestError::Unavailable(_)) => "unavailable",
            Err(IngestError::Full { .. }) => "queue_full",
        };
        self.record_outcome(signal, transport, outcome);
    }

    /// Counts a request outcome decided before the destination (decode errors, limits).
    pub fn record_outcome(
        &self,
        signal: &'static str,
        transport: &'static str,
        outcome: &'static str,
    ) {
        self.metrics
            .requests
            .get_or_create(&OutcomeLabels {
                signal,
                transport,
                outcome,
            })
            .inc();
    }

    /// Counts request body bytes as received.
    pub fn record_bytes(&self, signal: &'static str, transport: &'static str, bytes: usize) {
        self.metrics
            .bytes
            .get_or_create(&RecvLabels { signal, transport })
            .inc_by(bytes as u64);
    }

    /// Hands spans to the destination.
    pub async fn traces(
        &self,
        req: ExportTraceServiceRequest,
        tenant: &str,
        transport: &'static str,
    ) -> Result<Accepted, IngestError> {
        let n = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum();
        self.admit("traces", transport, tenant, n)?;
        let result = self.destination.traces(req, tenant).await;
        self.count("traces", transport, &result);
        result
    }

    /// Hands metric data points to the destination.
    pub async fn metrics(
        &self,
        req: ExportMetricsServiceRequest,
        tenant: &str,
        transport: &'static str,
    ) -> Result<Accepted, IngestError> {
        self.admit("metrics", transport, tenant, data_points(&req))?;
        let result = self.destination.metrics(req, tenant).await;
        self.count("metrics", transport, &result);
        result
    }

    /// Hands log records to the destination.
    pub async fn logs(
        &self,
        req: ExportLogsServiceRequest,
        tenant: &str,
        transport: &'static str,
    ) -> Result<Accepted, IngestError> {
        let n = req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum();
        self.admit("logs", transport, tenant, n)?;
        let result = self.destination.logs(req, tenant).await;
        self.count("logs", transport, &result);
        result
    }
}

/// The data points of a metrics request (what the ingest rate counts).
fn data_points(req: &ExportMetricsServiceRequest) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(x)) => x.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(x)) => x.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}
