//! The collector's [`Destination`]: validate and convert each item, append the valid
//! ones durably, and report the rejected ones as OTLP partial success.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use triad_model::otlp::{self, Converted};
use triad_receiver::{Accepted, Destination, IngestError, IngestFuture};

use triad_splits::log_index::LogStore;
use triad_splits::trace_store::TraceStore;

/// Stores what the receivers decode.
pub struct StoreDestination {
    /// Where logs go.
    pub logs: Arc<LogStore>,
    /// Where spans go.
    pub traces: Arc<TraceStore>,
    /// Where OTLP metrics go.
    pub metrics: Arc<triad_tsdb::metric_store::MetricStore>,
    /// RED metrics derived from the stored spans.
    pub span_metrics: Arc<crate::span_metrics::SpanMetrics>,
    /// Sealed splits waiting for object storage: beyond their bound, logs and spans
    /// are refused (retryable) so senders buffer instead of the collector's disk filling.
    pub backlog: Arc<crate::publish::Backlog>,
    /// The tenants' limits on the shape of metric series.
    pub limits: Arc<triad_receiver::limits::Limits>,
}

impl StoreDestination {
    fn check_backlog(&self) -> Result<(), IngestError> {
        match self.backlog.over() {
            None => Ok(()),
            Some(bytes) => Err(IngestError::Full {
                message: format!(
                    "{bytes} bytes of sealed splits wait for object storage \
                     (storage.max_unpublished_bytes); retry later"
                ),
                retry_after: std::time::Duration::from_secs(10),
            }),
        }
    }
}

impl Destination for StoreDestination {
    fn traces(&self, req: ExportTraceServiceRequest, tenant: &str) -> IngestFuture<'_> {
        let converted = otlp::spans_from_otlp(req, tenant, triad_model::now_ns());
        let red = crate::span_metrics::SpanMetrics::summarize(&converted.items);
        Box::pin(async move {
            self.check_backlog()?;
            let accepted = store_converted(converted, |items| self.traces.append(items)).await?;
            self.span_metrics.add(red);
            Ok(accepted)
        })
    }

    fn logs(&self, req: ExportLogsServiceRequest, tenant: &str) -> IngestFuture<'_> {
        let converted = otlp::logs_from_otlp(req, tenant, triad_model::now_ns());
        Box::pin(async move {
            self.check_backlog()?;
            store_converted(converted, |items| self.logs.append(items)).await
        })
    }

    fn metrics(&self, req: ExportMetricsServiceRequest, tenant: &str) -> IngestFuture<'_> {
        let mut c = crate::otlp_metrics::convert(req);
        let l = self.limits.of(tenant);
        let (limited, first) = c
            .batch
            .retain_series(l.max_labels_per_series, l.max_label_bytes);
        if limited > 0 {
            self.limits
                .count("max_labels_per_series", tenant, limited as u64);
            c.rejected += limited as u64;
            if c.message.is_empty()
                && let Some(series) = first
            {
                c.message = format!(
                    "{limited} samples of series over limits.max_labels_per_series ({}) or \
                     limits.max_label_bytes ({}), e.g. {series}",
                    l.max_labels_per_series, l.max_label_bytes
                );
            }
        }
        let tenant = tenant.to_string();
        Box::pin(async move {
            let accepted = c.batch.samples.len() as u64;
            if accepted == 0 && c.rejected > 0 {
                return Err(IngestError::Invalid {
                    message: c.message,
                    rejected: c.rejected,
                });
            }
            let store = self.metrics.clone();
            let batch = c.batch;
            let t = tenant.clone();
            let out = tokio::task::spawn_blocking(move || store.append(&t, &batch, true))
                .await
                .map_err(|e| IngestError::Unavailable(e.to_string()))?
                .map_err(|e| {
                    tracing::error!(error = %e, "metric append failed");
                    IngestError::Unavailable(e.to_string())
                })?;
            let rejected = c.rejected + out.rejected() as u64;
            if out.series_limited > 0 {
                self.limits
                    .count("max_series", &tenant, out.series_limited as u64);
            }
            let message = match (c.message.is_empty(), out.rejected()) {
                (false, _) => c.message,
                (true, _) if out.series_limited > 0 => format!(
                    "{} samples of new series refused: the tenant has its most series \
                     (limits.max_series)",
                    out.series_limited
                ),
                (true, 0) => String::new(),
                (true, n) => format!("{n} samples out of order or with a duplicate timestamp"),
            };
            Ok(Accepted {
                accepted: out.accepted as u64,
                rejected,
                message,
            })
        })
    }
}

/// Appends the valid items (moved, not copied); refuses the request if all were invalid.
async fn store_converted<T, F, Fut>(c: Converted<T>, append: F) -> Result<Accepted, IngestError>
where
    F: FnOnce(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = triad_splits::Result<()>>,
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
