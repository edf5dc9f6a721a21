//! OTLP/gRPC receiver (TraceService, LogsService, MetricsService). Requests may be
//! gzip- or zstd-compressed.
//!
//! The services are written out here rather than taken from `opentelemetry-proto`'s
//! generated servers for one reason: those decode with `tonic-prost`'s codec, which
//! reports malformed protobuf as INTERNAL. OTLP senders treat INTERNAL as retryable
//! and would resend the same garbage forever; [`OtlpCodec`] reports it as
//! INVALID_ARGUMENT, which they drop. Everything else (framing, gzip, size limits)
//! is tonic's own `Grpc` machinery.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::codegen::{BoxFuture, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use triad_model::auth::Role;

use crate::auth::{Access, Gate};

use crate::{Ingest, IngestError};

fn status(e: IngestError) -> Status {
    match e {
        IngestError::Invalid { message, .. } => Status::invalid_argument(message),
        // UNAVAILABLE is retryable for OTLP exporters.
        IngestError::Unavailable(m) => Status::unavailable(m),
        // RESOURCE_EXHAUSTED is retryable only with a RetryInfo detail (OTLP spec).
        IngestError::Full {
            message,
            retry_after,
        } => Status::with_details(
            tonic::Code::ResourceExhausted,
            message.clone(),
            retry_info_details(8, &message, retry_after).into(),
        ),
    }
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.Status` with details.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// The `grpc-status-details-bin` payload carrying a `google.rpc.RetryInfo`, which
/// OTLP exporters read to wait before retrying a RESOURCE_EXHAUSTED export.
pub fn retry_info_details(code: i32, message: &str, delay: std::time::Duration) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    RpcStatus {
        code,
        message: message.to_string(),
        details: vec![ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// Reads the retry delay from a `grpc-status-details-bin` payload, if it has one.
pub fn retry_delay_of(details: &[u8]) -> Option<std::time::Duration> {
    let status = RpcStatus::decode(details).ok()?;
    status.details.iter().find_map(|d| {
        if !d.type_url.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        let delay = RetryInfo::decode(&d.value[..]).ok()?.retry_delay?;
        Some(std::time::Duration::new(
            delay.seconds.max(0) as u64,
            delay.nanos.clamp(0, 999_999_999) as u32,
        ))
    })
}

/// Protobuf codec whose decode errors are INVALID_ARGUMENT, counted in the metrics.
pub struct OtlpCodec<E, D> {
    ingest: Ingest,
    signal: &'static str,
    _types: PhantomData<(E, D)>,
}

/// Decoder half of [`OtlpCodec`].
pub struct OtlpDecoder<D> {
    ingest: Ingest,
    signal: &'static str,
    _type: PhantomData<D>,
}

impl<D: Message + Default> Decoder for OtlpDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        D::decode(buf).map(Some).map_err(|e| {
            self.ingest.record_outcome(self.signal, "grpc", "invalid");
            Status::invalid_argument(format!("malformed protobuf: {e}"))
        })
    }
}

impl<E, D> Codec for OtlpCodec<E, D>
where
    E: Message + Send + 'static,
    D: Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = <tonic_prost::ProstCodec<E, D> as Codec>::Encoder;
    type Decoder = OtlpDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<E, D>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder {
            ingest: self.ingest.clone(),
            signal: self.signal,
            _type: PhantomData,
        }
    }
}

/// One OTLP export method: its gRPC name, messages and handler.
pub trait ExportMethod: Send + Sync + 'static {
    /// Fully qualified gRPC service name.
    const SERVICE: &'static str;
    /// Metrics label of the signal.
    const SIGNAL: &'static str;
    /// Request message.
    type Req: Message + Default + Send + 'static;
    /// Response message.
    type Resp: Message + Send + 'static;
    /// Handles one export.
    fn handle(ingest: Ingest, req: Self::Req, tenant: String) -> BoxFuture<Self::Resp, Status>;
}

/// `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
pub struct TraceExport;
/// `opentelemetry.proto.collector.logs.v1.LogsService/Export`.
pub struct LogsExport;

impl ExportMethod for TraceExport {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const SIGNAL: &'static str = "traces";
    type Req = ExportTraceServiceRequest;
    type Resp = ExportTraceServiceResponse;

    fn handle(ingest: Ingest, req: Self::Req, tenant: String) -> BoxFuture<Self::Resp, Status> {
        Box::pin(async move {
            let a = ingest.traces(req, &tenant, "grpc").await.map_err(status)?;
            let partial_success = (a.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: a.rejected as i64,
                error_message: a.message,
            });
            Ok(ExportTraceServiceResponse { partial_success })
        })
    }
}

impl ExportMethod for LogsExport {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const SIGNAL: &'static str = "logs";
    type Req = ExportLogsServiceRequest;
    type Resp = ExportLogsServiceResponse;

    fn handle(ingest: Ingest, req: Self::Req, tenant: String) -> BoxFuture<Self::Resp, Status> {
        Box::pin(async move {
            let a = ingest.logs(req, &tenant, "grpc").await.map_err(status)?;
            let partial_success = (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: a.rejected as i64,
                error_message: a.message,
            });
            Ok(ExportLogsServiceResponse { partial_success })
        })
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`.
pub struct MetricsExport;

impl ExportMethod for MetricsExport {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const SIGNAL: &'static str = "metrics";
    type Req = ExportMetricsServiceRequest;
    type Resp = ExportMetricsServiceResponse;

    fn handle(ingest: Ingest, req: Self::Req, tenant: String) -> BoxFuture<Self::Resp, Status> {
        Box::pin(async move {
            let a = ingest.metrics(req, &tenant, "grpc").await.map_err(status)?;
            let partial_success = (a.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: a.rejected as i64,
                error_message: a.message,
            });
            Ok(ExportMetricsServiceResponse { partial_success })
        })
    }
}

/// A gRPC service with the single `Export` method of `M`.
pub struct ExportService<M> {
    ingest: Ingest,
    gate: Gate,
    max_message_bytes: usize,
    _m: PhantomData<M>,
}

impl<M> Clone for ExportService<M> {
    fn clone(&self) -> Self {
        Self {
            ingest: self.ingest.clone(),
            gate: self.gate.clone(),
            max_message_bytes: self.max_message_bytes,
            _m: PhantomData,
        }
    }
}

impl<M: ExportMethod> NamedService for ExportService<M> {
    const NAME: &'static str = M::SERVICE;
}

struct Unary<M>(Ingest, String, PhantomData<M>);

impl<M: ExportMethod> UnaryService<M::Req> for Unary<M> {
    type Response = M::Resp;
    type Future = BoxFuture<Response<M::Resp>, Status>;

    fn call(&mut self, request: Request<M::Req>) -> Self::Future {
        let (ingest, tenant) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            M::handle(ingest, request.into_inner(), tenant)
                .await
                .map(Response::new)
        })
    }
}

impl<M, B> tonic::codegen::Service<http::Request<B>> for ExportService<M>
where
    M: ExportMethod,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let export_path = format!("/{}/Export", M::SERVICE);
        if req.uri().path() != export_path {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let (ingest, max) = (self.ingest.clone(), self.max_message_bytes);
        // Before anything is read: the token's role and tenant.
        let tenant = match self.gate.check(req.headers(), Access::Role(Role::Write)) {
            Ok(p) => p.map(|p| p.tenant).unwrap_or_default(),
            Err(e) => {
                let status = if e.is_unauthenticated() {
                    Status::unauthenticated(e.to_string())
                } else {
                    Status::permission_denied(e.to_string())
                };
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        Box::pin(async move {
            let compression = {
                let mut e = EnabledCompressionEncodings::default();
                e.enable(CompressionEncoding::Gzip);
                e.enable(CompressionEncoding::Zstd);
                e
            };
            let codec = OtlpCodec::<M::Resp, M::Req> {
                ingest: ingest.clone(),
                signal: M::SIGNAL,
                _types: PhantomData,
            };
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(compression, compression)
                .apply_max_message_size_config(Some(max), None);
            let mut resp = grpc
                .unary(Unary::<M>(ingest.clone(), tenant, PhantomData), req)
                .await;
            // Size limits are enforced by tonic before any of our code runs. A message
            // over the limit is OUT_OF_RANGE in tonic, RESOURCE_EXHAUSTED in gRPC's own
            // servers and the OTLP specification (our handlers never answer OUT_OF_RANGE):
            // say RESOURCE_EXHAUSTED, and count them here.
            let code = resp.headers().get(Status::GRPC_STATUS).cloned();
            if code.as_ref().is_some_and(|c| c == "11") {
                resp.headers_mut()
                    .insert(Status::GRPC_STATUS, http::HeaderValue::from_static("8"));
            }
            if code.is_some_and(|c| c == "8" || c == "11") {
                ingest.record_outcome(M::SIGNAL, "grpc", "too_large");
            }
            Ok(resp)
        })
    }
}

/// Serves OTLP/gRPC on `listener` until `cancel` fires; in-flight calls finish first.
/// `max_message_bytes` bounds a message after decompression (RESOURCE_EXHAUSTED above).
pub async fn serve(
    ingest: Ingest,
    gate: Gate,
    listener: crate::tls::Listener,
    max_message_bytes: usize,
    cancel: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let traces = ExportService::<TraceExport> {
        ingest: ingest.clone(),
        gate: gate.clone(),
        max_message_bytes,
        _m: PhantomData,
    };
    let logs = ExportService::<LogsExport> {
        ingest: ingest.clone(),
        gate: gate.clone(),
        max_message_bytes,
        _m: PhantomData,
    };
    let metrics = ExportService::<MetricsExport> {
        ingest,
        gate,
        max_message_bytes,
        _m: PhantomData,
    };
    let crate::tls::Listener { tcp, tls, limits } = listener;
    let server = tonic::transport::Server::builder()
        .http2_max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        .add_service(traces)
        .add_service(logs)
        .add_service(metrics);
    match tls {
        None => {
            server
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(tcp),
                    cancel.cancelled_owned(),
                )
                .await
        }
        Some(tls) => {
            let rx = crate::tls::handshakes(tcp, tls, cancel.clone());
            let incoming = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|(s, _)| (Ok::<_, std::io::Error>(s), rx))
            });
            server
                .serve_with_incoming_shutdown(incoming, cancel.cancelled_owned())
                .await
        }
    }
}
