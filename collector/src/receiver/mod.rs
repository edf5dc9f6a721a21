//! OTLP receivers. Both transports go through [`Ingest`]: validate and convert each
//! item, append the valid ones durably, and report the rejected ones as OTLP partial
//! success. A request whose every item is invalid is refused as a whole (HTTP 400 /
//! gRPC INVALID_ARGUMENT) so the sender sees a clear error.

pub mod grpc;
pub mod http;

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use triad_model::otlp::{self, Converted};

use crate::log_index::LogStore;
use crate::metrics::{OutcomeLabels, ReceiverMetrics, RecvLabels};
use crate::trace_store::TraceStore;

/// Why an export was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Every item was invalid; nothing was stored. Do not retry.
    #[error("{0}")]
    Invalid(String),
    /// Storage did not accept the data; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// The result of an accepted export.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Items rejected as invalid (the rest were stored).
    pub rejected: u64,
    /// Why, for OTLP's partial-success `error_message`.
    pub message: String,
}

/// The ingest path shared by the receivers.
#[derive(Clone)]
pub struct Ingest {
    /// Where logs go.
    pub logs: Arc<LogStore>,
    /// Where spans go.
    pub traces: Arc<TraceStore>,
    /// Receiver counters.
    pub metrics: ReceiverMetrics,
}

impl Ingest {
    fn count(
        &self,
        signal: &'static str,
        transport: &'static str,
        accepted: u64,
        rejected: u64,
        outcome: &Result<Accepted, IngestError>,
    ) {
        let l = RecvLabels { signal, transport };
        self.metrics.rejected.get_or_create(&l).inc_by(rejected);
        let outcome = match outcome {
            Ok(_) => {
                self.metrics.accepted.get_or_create(&l).inc_by(accepted);
                if rejected > 0 { "partial" } else { "ok" }
            }
            Err(IngestError::Invalid(_)) => "invalid",
            Err(IngestError::Unavailable(_)) => "unavailable",
        };
        self.record_outcome(signal, transport, outcome);
    }

    /// Counts a request outcome decided before conversion (decode errors, limits).
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

    /// Validates, converts and stores spans.
    pub async fn traces(
        &self,
        req: ExportTraceServiceRequest,
        tenant: &str,
        transport: &'static str,
    ) -> Result<Accepted, IngestError> {
        let converted = otlp::spans_from_otlp(req, tenant, triad_model::now_ns());
        let (accepted, rejected) = (converted.items.len() as u64, converted.rejected);
        let result = store_converted(converted, |items| self.traces.append(items)).await;
        self.count("traces", transport, accepted, rejected, &result);
        result
    }

    /// Validates, converts and stores log records.
    pub async fn logs(
        &self,
        req: ExportLogsServiceRequest,
        tenant: &str,
        transport: &'static str,
    ) -> Result<Accepted, IngestError> {
        let converted = otlp::logs_from_otlp(req, tenant, triad_model::now_ns());
        let (accepted, rejected) = (converted.items.len() as u64, converted.rejected);
        let result = store_converted(converted, |items| self.logs.append(items)).await;
        self.count("logs", transport, accepted, rejected, &result);
        result
    }
}

/// Appends the valid items (moved, not copied); refuses the request if all were invalid.
async fn store_converted<T, F, Fut>(c: Converted<T>, append: F) -> Result<Accepted, IngestError>
where
    F: FnOnce(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = crate::Result<()>>,
{
    let message = if c.rejected > 0 {
        c.error_message()
    } else {
        String::new()
    };
    if c.items.is_empty() && c.rejected > 0 {
        return Err(IngestError::Invalid(message));
    }
    append(c.items).await.map_err(|e| {
        tracing::error!(error = %e, "append failed");
        IngestError::Unavailable(e.to_string())
    })?;
    Ok(Accepted {
        rejected: c.rejected,
        message,
    })
}
