//! Zipkin v2 receiver: `POST /api/v2/spans` with a JSON array of spans (optionally
//! gzip- or zstd-compressed), converted to OTLP the way the OpenTelemetry Collector's
//! Zipkin receiver does: `localEndpoint.serviceName` becomes the resource's
//! `service.name`, tags become attributes, an `error` tag (or `otel.status_code`)
//! the span status, annotations events, `remoteEndpoint` the `net.peer.*` attributes.
//!
//! A span with a malformed ID or no timestamp is rejected on its own and counted; the
//! rest are taken. Zipkin's answer is 202 Accepted; malformed JSON, or a request whose
//! every span is invalid, is 400 with the reason as text.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde::Deserialize;
use triad_model::auth::{Principal, Role};

use crate::{Ingest, IngestError};

/// A Zipkin v2 endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Lower-case service name.
    pub service_name: Option<String>,
    /// IPv4 address.
    pub ipv4: Option<String>,
    /// IPv6 address.
    pub ipv6: Option<String>,
    /// Port.
    pub port: Option<u16>,
}

/// A Zipkin v2 annotation: an event at a time.
#[derive(Debug, Deserialize)]
pub struct Annotation {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    /// What happened.
    pub value: String,
}

/// A Zipkin v2 span, as JSON carries it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    /// 16 or 32 hex characters.
    pub trace_id: String,
    /// 16 hex characters.
    pub id: String,
    /// The parent's ID, absent on a root span.
    pub parent_id: Option<String>,
    /// Operation name.
    #[serde(default)]
    pub name: Option<String>,
    /// CLIENT, SERVER, PRODUCER or CONSUMER.
    pub kind: Option<String>,
    /// Start, in microseconds since the epoch.
    pub timestamp: Option<u64>,
    /// Duration in microseconds.
    pub duration: Option<u64>,
    /// The service that recorded the span.
    pub local_endpoint: Option<Endpoint>,
    /// The other side of an RPC.
    pub remote_endpoint: Option<Endpoint>,
    /// Events.
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    /// String tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn str_kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Hex ID of `len` bytes; shorter hex (64-bit trace IDs) is left-padded with zeros.
fn id_bytes(what: &str, hex_text: &str, len: usize) -> Result<Vec<u8>, String> {
    if hex_text.is_empty() || hex_text.len() > len * 2 {
        return Err(format!(
            "{what} {hex_text:?} must be 1 to {} hex characters",
            len * 2
        ));
    }
    let padded = format!("{hex_text:0>width$}", width = len * 2);
    let bytes = hex::decode(&padded).map_err(|_| format!("{what} {hex_text:?} is not hex"))?;
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("{what} is all zeros"));
    }
    Ok(bytes)
}

fn convert(z: ZipkinSpan) -> Result<(String, Span), String> {
    let trace_id = id_bytes("traceId", &z.trace_id, 16)?;
    let span_id = id_bytes("id", &z.id, 8)?;
    let parent_span_id = match z.parent_id.as_deref() {
        None | Some("") => Vec::new(),
        Some(p) => id_bytes("parentId", p, 8)?,
    };
    let start_us = z
        .timestamp
        .ok_or_else(|| format!("span {:?} has no timestamp", z.id))?;
    let start = start_us.saturating_mul(1000);
    let end = start.saturating_add(z.duration.unwrap_or(0).saturating_mul(1000));
    let kind = match z.kind.as_deref() {
        Some("SERVER") => span::SpanKind::Server,
        Some("CLIENT") => span::SpanKind::Client,
        Some("PRODUCER") => span::SpanKind::Producer,
        Some("CONSUMER") => span::SpanKind::Consumer,
        _ => span::SpanKind::Unspecified,
    };
    let local = z.local_endpoint.unwrap_or_default();
    let service = local
        .service_name
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| triad_model::otlp::UNKNOWN_SERVICE.to_string());
    let mut status = Status::default();
    let mut attributes = Vec::with_capacity(z.tags.len() + 3);
    let mut tags = z.tags;
    if let Some(code) = tags.remove("otel.status_code") {
        status.code = match code.as_str() {
            "ERROR" => 2,
            "OK" => 1,
            _ => 0,
        };
        status.message = tags.remove("otel.status_description").unwrap_or_default();
    }
    if let Some(err) = tags.remove("error") {
        // Zipkin: any `error` tag marks the span failed; its value is the message.
        status.code = 2;
        if status.message.is_empty() && err != "true" {
            status.message = err;
        }
    }
    attributes.extend(tags.into_iter().map(|(k, v)| str_kv(&k, v)));
    if let Some(ip) = local.ipv4.or(local.ipv6) {
        attributes.push(str_kv("net.host.ip", ip));
    }
    if let Some(remote) = z.remote_endpoint {
        if let Some(name) = remote.service_name.filter(|s| !s.is_empty()) {
            attributes.push(str_kv("peer.service", name));
        }
        if let Some(ip) = remote.ipv4.or(remote.ipv6) {
            attributes.push(str_kv("net.peer.ip", ip));
        }
        if let Some(port) = remote.port {
            attributes.push(int_kv("net.peer.port", i64::from(port)));
        }
    }
    let events = z
        .annotations
        .into_iter()
        .map(|a| span::Event {
            time_unix_nano: a.timestamp.saturating_mul(1000),
            name: a.value,
            ..Default::default()
        })
        .collect();
    Ok((
        service,
        Span {
            trace_id,
            span_id,
            parent_span_id,
            name: z.name.unwrap_or_default(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            events,
            status: Some(status),
            ..Default::default()
        },
    ))
}

/// Converts Zipkin v2 spans to one OTLP request (a resource per service). Returns the
/// request, the number of spans rejected, and the first reasons.
pub fn to_otlp(spans: Vec<ZipkinSpan>) -> (ExportTraceServiceRequest, u64, Vec<String>) {
    let mut by_service: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    let mut rejected = 0;
    let mut errors = Vec::new();
    for z in spans {
        match convert(z) {
            Ok((service, span)) => by_service.entry(service).or_default().push(span),
            Err(e) => {
                rejected += 1;
                if errors.len() < 5 {
                    errors.push(e);
                }
            }
        }
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![str_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    (
        ExportTraceServiceRequest { resource_spans },
        rejected,
        errors,
    )
}

#[derive(Clone)]
struct ZipkinState {
    ingest: Ingest,
    max_decompressed_bytes: usize,
}

fn refuse(state: &ZipkinState, status: StatusCode, outcome: &'static str, msg: String) -> Response {
    refuse_plain(&state.ingest, ("traces", "zipkin"), status, outcome, msg)
}

/// The body, or why it could not be read: too large (413) or cut off (400).
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, (StatusCode, &'static str, String)> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "request body exceeds max_request_bytes".into(),
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("cannot read body: {r}"),
            )
        }
    })
}

/// Counts a refused request of `(signal, transport)` and answers it in plain text,
/// with `Retry-After` on 429 and 503 (Zipkin's and Loki's receivers).
pub(crate) fn refuse_plain(
    ingest: &Ingest,
    (signal, transport): (&'static str, &'static str),
    status: StatusCode,
    outcome: &'static str,
    msg: String,
) -> Response {
    ingest.record_outcome(signal, transport, outcome);
    tracing::debug!(signal, transport, error = %msg, "refused request");
    let mut resp = (status, msg).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    resp
}

async fn spans(
    State(state): State<ZipkinState>,
    axum::extract::Extension(caller): axum::extract::Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match read_body(body) {
        Ok(b) => b,
        Err((status, outcome, msg)) => return refuse(&state, status, outcome, msg),
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return refuse(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {ct:?} is not supported: send Zipkin v2 JSON (application/json)"),
        );
    }
    state.ingest.record_bytes("traces", "zipkin", body.len());
    let body = match crate::http::decompress(&headers, body, state.max_decompressed_bytes) {
        Ok(b) => b,
        Err(r) => return refuse(&state, r.http, r.outcome, r.message),
    };
    let parsed: Vec<ZipkinSpan> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                &state,
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("malformed Zipkin v2 JSON: {e}"),
            );
        }
    };
    let total = parsed.len();
    let (req, rejected, errors) = to_otlp(parsed);
    if total > 0 && rejected as usize == total {
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            "invalid",
            errors.join("; "),
        );
    }
    if rejected > 0 {
        state
            .ingest
            .metrics
            .rejected
            .get_or_create(&crate::metrics::RecvLabels {
                signal: "traces",
                transport: "zipkin",
            })
            .inc_by(rejected);
    }
    match state.ingest.traces(req, &caller.tenant, "zipkin").await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => plain_refusal(e),
    }
}

/// A refused ingest as a plain-text answer (Zipkin's and Loki's receivers): 400 for
/// invalid data, 503 or 429 with `Retry-After` when the destination cannot take it now.
pub(crate) fn plain_refusal(e: IngestError) -> Response {
    match e {
        IngestError::Invalid { message, .. } => (StatusCode::BAD_REQUEST, message).into_response(),
        IngestError::Unavailable(m) => {
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, m).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
        IngestError::Full {
            message,
            retry_after,
        } => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
            r.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(retry_after.as_secs().max(1)),
            );
            r
        }
    }
}

/// The Zipkin v2 routes: `POST /api/v2/spans` (the `write` role).
pub fn router(
    ingest: Ingest,
    max_decompressed_bytes: usize,
    max_request_bytes: usize,
) -> crate::auth::Routes {
    use crate::auth::Access;
    crate::auth::Routes::new()
        .route("/api/v2/spans", Access::Role(Role::Write), post(spans))
        .map_router(|r| r.layer(DefaultBodyLimit::max(max_request_bytes)))
        .with_state(ZipkinState {
            ingest,
            max_decompressed_bytes,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<ZipkinSpan> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn converts_as_the_otel_collector_does() {
        let (req, rejected, _) = to_otlp(parse(
            r#"[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","parentId":"1b221d5bc9e6496c",
                 "name":"get /api","kind":"SERVER","timestamp":1700000000000000,"duration":1500,
                 "localEndpoint":{"serviceName":"frontend","ipv4":"10.0.0.1"},
                 "remoteEndpoint":{"serviceName":"browser","ipv4":"10.0.0.9","port":51000},
                 "tags":{"http.method":"GET","error":"timeout"},
                 "annotations":[{"timestamp":1700000000000100,"value":"ws"}]},
                {"traceId":"5af7183fb1d4cf5f","id":"7b221d5bc9e6496c","timestamp":1700000000000000,
                 "localEndpoint":{"serviceName":"backend"}}]"#,
        ));
        assert_eq!(rejected, 0);
        assert_eq!(req.resource_spans.len(), 2);
        let rs = req
            .resource_spans
            .iter()
            .find(|r| {
                r.resource.as_ref().unwrap().attributes[0]
                    .value
                    .as_ref()
                    .unwrap()
                    .value
                    == Some(any_value::Value::StringValue("frontend".into()))
            })
            .unwrap();
        let s = &rs.scope_spans[0].spans[0];
        assert_eq!(
            s.trace_id,
            hex::decode("00000000000000005af7183fb1d4cf5f").unwrap()
        );
        assert_eq!(s.kind, span::SpanKind::Server as i32);
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 1_500_000);
        let status = s.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "timeout"));
        let keys: Vec<_> = s.attributes.iter().map(|a| a.key.as_str()).collect();
        for k in [
            "http.method",
            "net.host.ip",
            "peer.service",
            "net.peer.ip",
            "net.peer.port",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert_eq!(s.events[0].name, "ws");
    }

    #[test]
    fn bad_spans_are_rejected_one_by_one() {
        let (req, rejected, errors) = to_otlp(parse(
            r#"[{"traceId":"zz","id":"6b221d5bc9e6496c","timestamp":1},
                {"traceId":"00","id":"6b221d5bc9e6496c","timestamp":1},
                {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c"},
                {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c1","timestamp":1},
                {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","timestamp":1700000000000000}]"#,
        ));
        assert_eq!(rejected, 4);
        assert_eq!(errors.len(), 4);
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 1);
    }
}
