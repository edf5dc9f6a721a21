//! The `/api/v1/read` handler: decodes a request, answers it from the metric store on a
//! blocking thread, and counts requests by status and samples returned.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use triad_model::auth::{Principal, Role};
use triad_model::metric::{MatchOp, Matcher, SeriesSamples};
use triad_model::store::MetricRead;
use triad_tsdb::metric_store::MetricStore;

use super::{LabelMatcher, QueryResult, ReadRequest, ReadResponse, SAMPLE_LIMIT};
use crate::metrics::{CodeLabel, RemoteReadMetrics};
use crate::remote_write::{Label, TimeSeries, WireSample, decompress};

/// What the handler needs.
#[derive(Clone)]
pub struct RemoteReadState {
    /// Where series come from.
    pub store: Arc<MetricStore>,
    /// Counters.
    pub metrics: RemoteReadMetrics,
    /// Largest snappy-decompressed request.
    pub max_decompressed_bytes: usize,
}

fn matcher(m: &LabelMatcher) -> Result<Matcher, String> {
    let op = match m.r#type {
        0 => MatchOp::Equal,
        1 => MatchOp::NotEqual,
        2 => MatchOp::Regex,
        3 => MatchOp::NotRegex,
        other => return Err(format!("unknown matcher type {other}")),
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())
}

/// Decodes a request; the error is for the sender.
pub fn decode(body: &[u8], max_decompressed: usize) -> Result<ReadRequest, (StatusCode, String)> {
    let raw = decompress(body, max_decompressed)?;
    ReadRequest::decode(raw.as_slice())
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("protobuf: {e}")))
}

/// Answers a decoded request from the store.
pub fn answer(
    store: &MetricStore,
    tenant: &str,
    req: &ReadRequest,
) -> Result<ReadResponse, (StatusCode, String)> {
    if !req.accepted_response_types.is_empty() && !req.accepted_response_types.contains(&0) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "server does not support any of the requested response types: {:?}; supported: [SAMPLES]",
                req.accepted_response_types
            ),
        ));
    }
    let mut results = Vec::with_capacity(req.queries.len());
    let mut samples = 0usize;
    for q in &req.queries {
        let matchers = q
            .matchers
            .iter()
            .map(matcher)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let internal =
            |e: triad_model::store::StoreError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let (start, end) = (q.start_timestamp_ms, q.end_timestamp_ms);
        let series = if q.hints.as_ref().is_some_and(|h| h.func == "series") {
            store
                .series(tenant, &[matchers], start, end)
                .map_err(internal)?
                .into_iter()
                .map(|labels| SeriesSamples {
                    labels,
                    samples: Vec::new(),
                })
                .collect()
        } else {
            store
                .select(tenant, &matchers, start, end)
                .map_err(internal)?
        };
        samples += series.iter().map(|s| s.samples.len()).sum::<usize>();
        if samples > SAMPLE_LIMIT {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("exceeded sample limit ({SAMPLE_LIMIT})"),
            ));
        }
        results.push(QueryResult {
            timeseries: series
                .into_iter()
                .map(|s| TimeSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    samples: s
                        .samples
                        .into_iter()
                        .map(|(t, v)| WireSample {
                            value: v,
                            timestamp: t,
                        })
                        .collect(),
                    exemplars: Vec::new(),
                })
                .collect(),
        });
    }
    Ok(ReadResponse { results })
}

/// `POST /api/v1/read`.
pub async fn read(
    State(s): State<RemoteReadState>,
    axum::Extension(caller): axum::Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("snappy");
    let result = if !encoding.eq_ignore_ascii_case("snappy") {
        Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {encoding:?}: remote read bodies are snappy"),
        ))
    } else {
        match decode(&body, s.max_decompressed_bytes) {
            Err(e) => Err(e),
            Ok(req) => {
                let store = s.store.clone();
                match tokio::task::spawn_blocking(move || answer(&store, &caller.tenant, &req))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => Err((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("remote read task failed: {e}"),
                    )),
                }
            }
        }
    };
    let response = match result.and_then(|resp| {
        let n: usize = resp
            .results
            .iter()
            .flat_map(|r| &r.timeseries)
            .map(|t| t.samples.len())
            .sum();
        snap::raw::Encoder::new()
            .compress_vec(&resp.encode_to_vec())
            .map(|b| (b, n))
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("snappy: {e}")))
    }) {
        Ok((body, n)) => {
            s.metrics.samples.inc_by(n as u64);
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/x-protobuf"),
                    (header::CONTENT_ENCODING, "snappy"),
                ],
                body,
            )
                .into_response()
        }
        Err((code, message)) => {
            if code.is_server_error() {
                tracing::error!(error = %message, "remote read failed");
            } else {
                tracing::debug!(status = code.as_u16(), error = %message, "remote read refused");
            }
            (code, message).into_response()
        }
    };
    s.metrics
        .requests
        .get_or_create(&CodeLabel {
            code: response.status().as_u16(),
        })
        .inc();
    response
}

/// The route `/api/v1/read` (the `read` role).
pub fn router(state: RemoteReadState) -> triad_receiver::auth::Routes {
    use triad_receiver::auth::{Access, Routes};
    Routes::new()
        .route(
            "/api/v1/read",
            Access::Role(Role::Read),
            axum::routing::post(read),
        )
        .with_state(state)
}
