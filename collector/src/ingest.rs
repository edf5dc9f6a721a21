//! The collector's [`Destination`]: validate and convert each item, append the valid
//! ones durably, and report the rejected ones as OTLP partial success.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use triad_model::otlp::{self, Converted};
use triad_receiver::{Accepted, Destination, IngestError, IngestFuture};

use crate::log_index::LogStore;
use crate::trace_store::TraceStore;

/// Stores what the receivers decode.
pub struct StoreDestination {
    /// Where logs go.
    pub logs: Arc<LogStore>,
    /// Where spans go.
    pub traces: Arc<TraceStore>,
    /// RED metrics derived from the stored spans.
    pub span_metrics: Arc<crate::span_metrics::SpanMetrics>,
}

impl Destination for StoreDestination {
    fn traces(&self, req: ExportTraceServiceRequest, tenant: &str) -> IngestFuture<'_> {
        let converted = otlp::spans_from_otlp(req, tenant, triad_model::now_ns());
        let red = crate::span_metrics::SpanMetrics::summarize(&converted.items);
        Box::pin(async move {
            let accepted = store_converted(converted, |items| self.traces.append(items)).await?;
            self.span_metrics.add(red);
            Ok(accepted)
        })
    }

    fn logs(&self, req: ExportLogsServiceRequest, tenant: &str) -> IngestFuture<'_> {
        let converted = otlp::logs_from_otlp(req, tenant, triad_model::now_ns());
        Box::pin(store_converted(converted, |items| self.logs.append(items)))
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
        return Err(IngestError::Invalid {
            message,
            rejected: c.rejected,
        });
    }
    let accepted = c.items.len() as u64;
    append(c.items).await.map_err(|e| {
        tracing::error!(error = %e, "append failed");
        IngestError::Unavailable(e.to_string())
    })?;
    Ok(Accepted {
        accepted,
        rejected: c.rejected,
        message,
    })
}
