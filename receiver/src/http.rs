//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs` and `/v1/metrics` with protobuf or JSON bodies,
//! optionally gzip-compressed, answered in the encoding of the request as the OTLP
//! specification says; Loki's `POST /loki/api/v1/push` ([`crate::loki`]). Also
//! `/metrics`, `/healthz` and `/readyz` of the collector.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prometheus_client::registry::Registry;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use triad_model::auth::{Principal, Role};

use crate::auth::{Access, Routes};
use crate::{Ingest, IngestError};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// `google.rpc.Status`, the error body OTLP/HTTP prescribes.
#[derive(Clone, PartialEq, Message, Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// State of the HTTP receiver.
#[derive(Clone)]
pub struct HttpState {
    /// The ingest path.
    pub ingest: Ingest,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Registry rendered on `/metrics`.
    pub registry: Arc<Registry>,
    /// Readiness: true when the destination accepts writes.
    pub ready: Readiness,
}

/// A refused request: HTTP status plus the `google.rpc.Status` body.
pub(crate) struct Refusal {
    pub(crate) http: StatusCode,
    grpc_code: i32,
    pub(crate) message: String,
    pub(crate) outcome: &'static str,
    /// Seconds for `Retry-After` on 429 and 503.
    retry_after: u64,
}

impl Refusal {
    fn new(
        http: StatusCode,
        grpc_code: i32,
        outcome: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            http,
            grpc_code,
            message: message.into(),
            outcome,
            retry_after: 1,
        }
    }

    fn into_response(self, enc: Encoding) -> Response {
        let status = RpcStatus {
            code: self.grpc_code,
            message: self.message,
        };
        let mut resp = encode(enc, &status, self.http);
        if self.http == StatusCode::SERVICE_UNAVAILABLE
            || self.http == StatusCode::TOO_MANY_REQUESTS
        {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(self.retry_after),
            );
        }
        resp
    }
}

fn encode<T: Message + Serialize>(enc: Encoding, msg: &T, status: StatusCode) -> Response {
    match enc {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, PROTOBUF)],
            msg.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            // Protobuf JSON leaves unset fields out; serde would write them as null.
            let mut value = serde_json::to_value(msg).unwrap_or_default();
            strip_nulls(&mut value);
            let body = serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec());
            (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
    }
}

fn strip_nulls(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = v {
        map.retain(|_, x| !x.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

fn encoding_of(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

/// Reads a decompressing reader to its end, refusing anything that inflates past `limit`.
fn inflate(reader: impl Read, what: &str, hint: usize, limit: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::with_capacity(hint.saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                3,
                "invalid",
                format!("invalid {what} body: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            8,
            "too_large",
            format!("decompressed body exceeds {limit} bytes"),
        ));
    }
    Ok(Bytes::from(out))
}

/// Decompresses per `Content-Encoding`, refusing anything that inflates past `limit`.
pub(crate) fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Refusal> {
    let ce = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match ce.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => inflate(
            flate2::read::GzDecoder::new(&body[..]),
            "gzip",
            body.len(),
            limit,
        ),
        "zstd" => {
            let dec = zstd::stream::read::Decoder::with_buffer(&body[..]).map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    3,
                    "invalid",
                    format!("invalid zstd body: {e}"),
                )
            })?;
            inflate(dec, "zstd", body.len(), limit)
        }
        other => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            "unsupported_media_type",
            format!("unsupported Content-Encoding {other:?}: use gzip, zstd or none"),
        )),
    }
}

fn decode<T: Message + Default + DeserializeOwned>(
    enc: Encoding,
    body: &[u8],
) -> Result<T, Refusal> {
    let invalid = |m: String| Refusal::new(StatusCode::BAD_REQUEST, 3, "invalid", m);
    match enc {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| invalid(format!("malformed protobuf: {e}")))
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| invalid(format!("malformed OTLP JSON: {e}")))
        }
    }
}

fn refusal_of(e: IngestError) -> Refusal {
    match e {
        IngestError::Invalid { message, .. } => {
            Refusal::new(StatusCode::BAD_REQUEST, 3, "invalid", message)
        }
        IngestError::Unavailable(m) => {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, 14, "unavailable", m)
        }
        IngestError::Full {
            message,
            retry_after,
        } => {
            let mut r = Refusal::new(StatusCode::TOO_MANY_REQUESTS, 8, "queue_full", message);
            r.retry_after = retry_after.as_secs().max(1);
            r
        }
    }
}

/// Content type, decompression and decoding shared by both endpoints.
fn prepare<T: Message + Default + DeserializeOwned>(
    state: &HttpState,
    signal: &'static str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Encoding, T), Box<Response>> {
    let Some(enc) = encoding_of(headers) else {
        state
            .ingest
            .record_outcome(signal, "http", "unsupported_media_type");
        let r = Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            "unsupported_media_type",
            "Content-Type must be application/x-protobuf or application/json",
        );
        return Err(Box::new(r.into_response(Encoding::Json)));
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let r = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    8,
                    "too_large",
                    "request body exceeds max_request_bytes",
                )
            } else {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    3,
                    "invalid",
                    format!("cannot read request body: {rejection}"),
                )
            };
            state.ingest.record_outcome(signal, "http", r.outcome);
            return Err(Box::new(r.into_response(enc)));
        }
    };
    state.ingest.record_bytes(signal, "http", body.len());
    let result =
        decompress(headers, body, state.max_decompressed_bytes).and_then(|b| decode::<T>(enc, &b));
    result.map(|msg| (enc, msg)).map_err(|r| {
        state.ingest.record_outcome(signal, "http", r.outcome);
        tracing::debug!(signal, error = %r.message, "refused OTLP/HTTP request");
        Box::new(r.into_response(enc))
    })
}

async fn traces(
    State(state): State<HttpState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (enc, req) = match prepare::<ExportTraceServiceRequest>(&state, "traces", &headers, body) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    match state.ingest.traces(req, &caller.tenant, "http").await {
        Ok(a) => {
            let partial_success = (a.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: a.rejected as i64,
                error_message: a.message,
            });
            encode(
                enc,
                &ExportTraceServiceResponse { partial_success },
                StatusCode::OK,
            )
        }
        Err(e) => refusal_of(e).into_response(enc),
    }
}

async fn logs(
    State(state): State<HttpState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (enc, req) = match prepare::<ExportLogsServiceRequest>(&state, "logs", &headers, body) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    match state.ingest.logs(req, &caller.tenant, "http").await {
        Ok(a) => {
            let partial_success = (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: a.rejected as i64,
                error_message: a.message,
            });
            encode(
                enc,
                &ExportLogsServiceResponse { partial_success },
                StatusCode::OK,
            )
        }
        Err(e) => refusal_of(e).into_response(enc),
    }
}

async fn metrics(
    State(state): State<HttpState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (enc, req) = match prepare::<ExportMetricsServiceRequest>(&state, "metrics", &headers, body)
    {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    match state.ingest.metrics(req, &caller.tenant, "http").await {
        Ok(a) => {
            let partial_success = (a.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: a.rejected as i64,
                error_message: a.message,
            });
            encode(
                enc,
                &ExportMetricsServiceResponse { partial_success },
                StatusCode::OK,
            )
        }
        Err(e) => refusal_of(e).into_response(enc),
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render_metrics(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => (
            StatusCode::OK,
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

/// Readiness as `/readyz` reports it.
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// `/metrics` (the registry in the Prometheus text format), `/healthz` and `/readyz`.
pub fn ops_routes(registry: Arc<Registry>, ready: Readiness) -> Routes {
    Routes::new()
        .route(
            "/metrics",
            Access::Metrics,
            get(move || {
                let registry = registry.clone();
                async move { render_metrics(&registry) }
            }),
        )
        .route("/healthz", Access::Open, get(|| async { "ok" }))
        .route(
            "/readyz",
            Access::Open,
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
}

/// The OTLP/HTTP routes (and Loki's push) with [`ops_routes`], and the body limit of
/// `max_request_bytes` (413 above it). Sending needs the `write` role.
pub fn router(state: HttpState, max_request_bytes: usize) -> Routes {
    let ops = ops_routes(state.registry.clone(), state.ready.clone());
    let write = Access::Role(Role::Write);
    Routes::new()
        .route("/v1/traces", write, post(traces))
        .route("/v1/logs", write, post(logs))
        .route("/v1/metrics", write, post(metrics))
        .route("/loki/api/v1/push", write, post(crate::loki::push))
        .map_router(|r| r.layer(DefaultBodyLimit::max(max_request_bytes)))
        .with_state(state)
        .merge(ops)
}

/// Serves `app` on `listener` as a task of `tasks` until `cancel` fires; in-flight
/// requests finish first. A failure is reported as `"{name}: {error}"`.
pub fn spawn_server(
    name: &'static str,
    listener: crate::tls::Listener,
    app: axum::Router,
    cancel: &tokio_util::sync::CancellationToken,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
) {
    let c = cancel.child_token();
    tasks.spawn(async move {
        crate::serve::serve(listener, app, c)
            .await
            .map_err(|e| format!("{name}: {e}"))
    });
}
