//! OTLP/gRPC receiver (TraceService, LogsService). MetricsService is not registered,
//! so tonic answers UNIMPLEMENTED for it.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use triad_model::DEFAULT_TENANT;

use super::{Ingest, IngestError};

fn status(e: IngestError) -> Status {
    match e {
        IngestError::Invalid(m) => Status::invalid_argument(m),
        // UNAVAILABLE is retryable for OTLP exporters.
        IngestError::Unavailable(m) => Status::unavailable(m),
    }
}

struct Traces(Ingest);
struct Logs(Ingest);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let accepted = self
            .0
            .traces(request.get_ref(), DEFAULT_TENANT, "grpc")
            .await
            .map_err(status)?;
        let partial_success = (accepted.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: accepted.rejected as i64,
            error_message: accepted.message,
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let accepted = self
            .0
            .logs(request.get_ref(), DEFAULT_TENANT, "grpc")
            .await
            .map_err(status)?;
        let partial_success = (accepted.rejected > 0).then_some(ExportLogsPartialSuccess {
            rejected_log_records: accepted.rejected as i64,
            error_message: accepted.message,
        });
        Ok(Response::new(ExportLogsServiceResponse { partial_success }))
    }
}

/// Serves OTLP/gRPC on `listener` until `cancel` fires; in-flight calls finish first.
/// `max_message_bytes` bounds a message after decompression (RESOURCE_EXHAUSTED above).
pub async fn serve(
    ingest: Ingest,
    listener: tokio::net::TcpListener,
    max_message_bytes: usize,
    cancel: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let traces = TraceServiceServer::new(Traces(ingest.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let logs = LogsServiceServer::new(Logs(ingest))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    tonic::transport::Server::builder()
        .add_service(traces)
        .add_service(logs)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            cancel.cancelled_owned(),
        )
        .await
}
