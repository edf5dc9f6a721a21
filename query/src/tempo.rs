//! Tempo's trace-by-ID API beside Jaeger's, so Grafana's Tempo data source works on the
//! same port: `GET /api/v2/traces/{id}` (OTLP JSON, or Tempo's `TraceByIDResponse`
//! protobuf on `Accept: application/protobuf`; 404 when not found), and
//! `GET /api/traces/{id}` answering Tempo's `Trace` protobuf to clients that accept
//! only it (Jaeger JSON otherwise, see [`crate::jaeger::trace`]). Plus `/api/echo` and
//! `/api/status/buildinfo`, which Grafana's "Save & test" asks.
//!
//! Tempo's `Trace` message (`repeated ResourceSpans resourceSpans = 1`) has the wire form
//! of OTLP's `TracesData`; `TraceByIDResponse` wraps it as field 1, with a
//! `PartialStatus` (0 complete, 1 partial) as field 3 and a message as field 4.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde_json::json;
use triad_model::{DEFAULT_TENANT, TraceId};

use crate::AppState;

/// The media type of Tempo's protobuf answers.
pub const PROTOBUF: &str = "application/protobuf";

/// Whether the client asks for protobuf (Tempo's clients send `Accept:
/// application/protobuf`).
pub fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().map(str::trim) == Some(PROTOBUF))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// The trace's spans and the warnings of sources that did not answer.
async fn fetch(st: &AppState, id: &str) -> Result<(Vec<triad_model::Span>, Vec<String>), Response> {
    let trace_id = TraceId::from_hex(id)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid trace ID: {e}")))?;
    let traces = st.traces.clone();
    tokio::task::spawn_blocking(move || traces.trace_partial(DEFAULT_TENANT, trace_id))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], bytes).into_response()
}

/// `GET /api/traces/{id}` for a client that accepts only protobuf: Tempo's `Trace`.
pub async fn trace_v1_protobuf(st: &AppState, id: &str) -> Response {
    match fetch(st, id).await {
        Err(r) => r,
        Ok((spans, _)) if spans.is_empty() => error(StatusCode::NOT_FOUND, "trace not found"),
        Ok((spans, _)) => protobuf(triad_model::otlp::spans_to_otlp(spans).encode_to_vec()),
    }
}

/// `GET /api/v2/traces/{id}`.
pub async fn trace_v2(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (spans, warnings) = match fetch(&st, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if spans.is_empty() {
        let message = if warnings.is_empty() {
            "trace not found".to_string()
        } else {
            format!("trace not found; {}", warnings.join("; "))
        };
        return error(StatusCode::NOT_FOUND, message);
    }
    let trace = triad_model::otlp::spans_to_otlp(spans);
    let partial = !warnings.is_empty();
    if wants_protobuf(&headers) {
        let mut out = Vec::new();
        // TraceByIDResponse: trace = 1, status = 3, message = 4.
        prost::encoding::message::encode(1, &trace, &mut out);
        if partial {
            prost::encoding::int32::encode(3, &1, &mut out);
            prost::encoding::string::encode(4, &warnings.join("; "), &mut out);
        }
        return protobuf(out);
    }
    let mut body = json!({"trace": trace});
    if partial {
        body["status"] = json!("PARTIAL");
        body["message"] = json!(warnings.join("; "));
    }
    Json(body).into_response()
}

/// `GET /api/echo`: what Grafana's Tempo data source checks the connection with.
pub async fn echo() -> &'static str {
    "echo"
}

/// `GET /api/status/buildinfo`: Tempo's build information.
pub async fn buildinfo() -> Response {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_is_chosen_by_the_accept_header() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            wants_protobuf(&h)
        };
        assert!(with("application/protobuf"));
        assert!(with("application/json;q=0.5, application/protobuf"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!wants_protobuf(&HeaderMap::new()));
    }
}
