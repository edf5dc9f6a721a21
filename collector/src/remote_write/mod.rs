//! Prometheus remote_write 1.0 receiver: `POST /api/v1/write`, snappy-compressed
//! protobuf `WriteRequest`, as Prometheus, Grafana Alloy and the OpenTelemetry
//! collector send it.
//!
//! Answers as Prometheus' own receiver does: 204 once the samples are durable in the
//! WAL; 400 (not retried by senders) for undecodable bodies, invalid series and samples
//! that the store refuses (out of order, duplicate timestamp) — the other samples of
//! the request are kept; 413 for oversized bodies; 503 (retried) when the store fails.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use triad_model::metric::is_label_name;
use triad_model::metric::{Exemplar, Labels, MetricMetadata};

mod wire;

use crate::metrics::CodeLabel;
pub use crate::metrics::RemoteWriteMetrics;
use triad_tsdb::AppendBatch;
use triad_tsdb::metric_store::MetricStore;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// Series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<WireMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Labels, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WireSample>,
    /// Exemplars.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<WireExemplar>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct WireSample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Timestamp, ms.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, Message)]
pub struct WireExemplar {
    /// Labels (trace_id, span_id).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Timestamp, ms.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct WireMetadata {
    /// 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info,
    /// 7 stateset.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// What the handler needs.
#[derive(Clone)]
pub struct RemoteWriteState {
    /// Where samples go.
    pub store: Arc<MetricStore>,
    /// The tenants' ingest rate and series shape.
    pub limits: Arc<triad_receiver::limits::Limits>,
    /// Counters.
    pub metrics: RemoteWriteMetrics,
    /// Largest snappy-decompressed body.
    pub max_decompressed_bytes: usize,
}

fn metric_type(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

/// A series' labels as sent: names valid and unique, empty values dropped.
fn to_labels(wire: &[(&str, &str)]) -> Result<Labels, String> {
    if let Some((name, _)) = wire.iter().find(|(n, _)| !is_label_name(n)) {
        return Err(format!("invalid label name {name:?}"));
    }
    // Senders sort labels (the protocol asks them to): then nothing is copied twice.
    if wire.windows(2).all(|w| w[0].0 < w[1].0) {
        return Ok(Labels::from_sorted(
            wire.iter().copied().filter(|(_, v)| !v.is_empty()),
        ));
    }
    let mut names: Vec<&str> = wire.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("label {:?} repeated", w[0]));
    }
    Ok(Labels::new(
        wire.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    ))
}

/// Undoes the snappy block compression of a remote write or read body, refusing one
/// whose length header exceeds `max_decompressed` before allocating anything; the
/// error is for the sender.
pub(crate) fn decompress(
    body: &[u8],
    max_decompressed: usize,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}")))?;
    if len > max_decompressed {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body of {len} bytes exceeds the limit of {max_decompressed}"),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}")))
}

/// Decodes a request body into a batch; the error is for the sender.
pub fn decode(
    body: &[u8],
    max_decompressed: usize,
) -> Result<(AppendBatch, usize), (StatusCode, String)> {
    let raw = decompress(body, max_decompressed)?;
    let mut batch = AppendBatch::default();
    let mut metadata = Vec::new();
    let mut invalid = 0usize;
    wire::read_request(
        &raw,
        |ts| {
            let labels = match to_labels(&ts.labels) {
                Ok(l) if l.name().is_some_and(|n| !n.is_empty()) => l,
                _ => {
                    invalid += ts.samples.len();
                    return;
                }
            };
            for &(t, v) in &ts.samples {
                batch.samples.push((labels.clone(), t, v));
            }
            for e in &ts.exemplars {
                let Ok(el) = to_labels(&e.labels) else {
                    continue;
                };
                batch.exemplars.push((
                    labels.clone(),
                    Exemplar {
                        labels: el,
                        value: e.value,
                        timestamp_ms: e.timestamp,
                    },
                ));
            }
        },
        |m| {
            if m.family.is_empty() {
                return;
            }
            metadata.push((
                m.family.to_string(),
                MetricMetadata {
                    metric_type: metric_type(m.r#type).into(),
                    help: m.help.to_string(),
                    unit: m.unit.to_string(),
                },
            ));
        },
    )
    .map_err(|e| (StatusCode::BAD_REQUEST, format!("protobuf: {e}")))?;
    batch.metadata = metadata;
    Ok((batch, invalid))
}

/// `POST /api/v1/write`.
pub async fn write(
    State(s): State<RemoteWriteState>,
    axum::Extension(caller): axum::Extension<triad_model::auth::Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.metrics.bytes.inc_by(body.len() as u64);
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("snappy");
    let (status, message) = if !encoding.eq_ignore_ascii_case("snappy") {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Encoding {encoding:?}: remote write 1.0 bodies are snappy"
            ),
        )
    } else {
        match decode(&body, s.max_decompressed_bytes) {
            Err((code, msg)) => (code, msg),
            Ok((mut batch, invalid)) => {
                let tenant = caller.tenant;
                if let Err(r) = s.limits.admit_ingest(&tenant, batch.samples.len() as u64) {
                    s.metrics
                        .requests
                        .get_or_create(&CodeLabel { code: 429 })
                        .inc();
                    return triad_receiver::limits::refusal(&r);
                }
                let l = s.limits.of(&tenant);
                let (limited, _) = batch.retain_series(l.max_labels_per_series, l.max_label_bytes);
                if limited > 0 {
                    s.limits
                        .count("max_labels_per_series", &tenant, limited as u64);
                }
                let invalid = invalid + limited;
                let store = s.store.clone();
                let t = tenant.clone();
                let res = tokio::task::spawn_blocking(move || store.append(&t, &batch, true)).await;
                match res {
                    Ok(Ok(out)) => {
                        s.metrics.samples.inc_by(out.accepted as u64);
                        if out.series_limited > 0 {
                            s.limits
                                .count("max_series", &tenant, out.series_limited as u64);
                        }
                        let rejected = out.rejected() + invalid;
                        s.metrics.rejected.inc_by(rejected as u64);
                        if rejected == 0 {
                            (StatusCode::NO_CONTENT, String::new())
                        } else {
                            (
                                StatusCode::BAD_REQUEST,
                                format!(
                                    "{rejected} samples rejected ({} out of order, {} duplicate timestamp, {invalid} invalid series or over limits.max_labels_per_series / max_label_bytes, {} of new series over limits.max_series); {} stored",
                                    out.out_of_order,
                                    out.duplicate_timestamp,
                                    out.series_limited,
                                    out.accepted
                                ),
                            )
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "remote write: store failed");
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("store failed: {e}"),
                        )
                    }
                    Err(e) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("store task failed: {e}"),
                    ),
                }
            }
        }
    };
    s.metrics
        .requests
        .get_or_create(&CodeLabel {
            code: status.as_u16(),
        })
        .inc();
    if status.is_client_error() {
        tracing::debug!(status = status.as_u16(), error = %message, "remote write refused");
    }
    (status, message).into_response()
}

/// The route `/api/v1/write` (the `write` role).
pub fn router(state: RemoteWriteState) -> triad_receiver::auth::Routes {
    use triad_receiver::auth::{Access, Routes};
    Routes::new()
        .route(
            "/api/v1/write",
            Access::Role(triad_model::auth::Role::Write),
            axum::routing::post(write),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn decodes_and_refuses_garbage() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "up".into(),
                        },
                        Label {
                            name: "job".into(),
                            value: "a".into(),
                        },
                    ],
                    samples: vec![WireSample {
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    exemplars: vec![],
                },
                TimeSeries {
                    labels: vec![Label {
                        name: "0bad".into(),
                        value: "x".into(),
                    }],
                    samples: vec![WireSample {
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    exemplars: vec![],
                },
            ],
            metadata: vec![WireMetadata {
                r#type: 1,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let (batch, invalid) = decode(&body(&req), 1 << 20).unwrap();
        assert_eq!(batch.samples.len(), 1);
        assert_eq!(invalid, 1);
        assert_eq!(batch.metadata[0].1.metric_type, "counter");
        // A length header claiming 4 GiB is refused before any allocation.
        assert_eq!(
            decode(b"\xff\xff\xff\xff\x0f", 1 << 20).unwrap_err().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            decode(b"\x05ab", 1 << 20).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            decode(&body(&req), 10).unwrap_err().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let garbage = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff")
            .unwrap();
        assert_eq!(
            decode(&garbage, 1 << 20).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }

    type Flat = (
        Vec<(
            Vec<(String, String)>,
            Vec<(i64, u64)>,
            Vec<(Vec<(String, String)>, u64, i64)>,
        )>,
        Vec<(i32, String, String, String)>,
    );

    fn pairs(ls: &[(&str, &str)]) -> Vec<(String, String)> {
        ls.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// What the borrowing reader hands out, owned.
    fn by_reader(raw: &[u8]) -> Result<Flat, String> {
        let (mut series, mut meta) = (Vec::new(), Vec::new());
        wire::read_request(
            raw,
            |s| {
                series.push((
                    pairs(&s.labels),
                    s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
                    s.exemplars
                        .iter()
                        .map(|e| (pairs(&e.labels), e.value.to_bits(), e.timestamp))
                        .collect(),
                ));
            },
            |m| meta.push((m.r#type, m.family.into(), m.help.into(), m.unit.into())),
        )
        .map_err(|e| e.to_string())?;
        Ok((series, meta))
    }

    /// What prost's derived decoder makes of the same bytes.
    fn by_prost(raw: &[u8]) -> Result<Flat, String> {
        let req = WriteRequest::decode(raw).map_err(|e| e.to_string())?;
        let owned = |ls: &[Label]| -> Vec<(String, String)> {
            ls.iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect()
        };
        Ok((
            req.timeseries
                .iter()
                .map(|s| {
                    (
                        owned(&s.labels),
                        s.samples
                            .iter()
                            .map(|x| (x.timestamp, x.value.to_bits()))
                            .collect(),
                        s.exemplars
                            .iter()
                            .map(|e| (owned(&e.labels), e.value.to_bits(), e.timestamp))
                            .collect(),
                    )
                })
                .collect(),
            req.metadata
                .iter()
                .map(|m| {
                    (
                        m.r#type,
                        m.metric_family_name.clone(),
                        m.help.clone(),
                        m.unit.clone(),
                    )
                })
                .collect(),
        ))
    }

    fn request() -> impl proptest::strategy::Strategy<Value = WriteRequest> {
        use proptest::prelude::*;
        let label = ("[a-z_]{0,4}", "\\PC{0,6}").prop_map(|(name, value)| Label { name, value });
        let sample = (any::<f64>(), any::<i64>())
            .prop_map(|(value, timestamp)| WireSample { value, timestamp });
        let exemplar = (
            proptest::collection::vec(label.clone(), 0..3),
            any::<f64>(),
            any::<i64>(),
        )
            .prop_map(|(labels, value, timestamp)| WireExemplar {
                labels,
                value,
                timestamp,
            });
        let series = (
            proptest::collection::vec(label, 0..4),
            proptest::collection::vec(sample, 0..4),
            proptest::collection::vec(exemplar, 0..2),
        )
            .prop_map(|(labels, samples, exemplars)| TimeSeries {
                labels,
                samples,
                exemplars,
            });
        let meta = (any::<i32>(), "[a-z]{0,4}", "\\PC{0,6}", "[a-z]{0,3}").prop_map(
            |(r#type, metric_family_name, help, unit)| WireMetadata {
                r#type,
                metric_family_name,
                help,
                unit,
            },
        );
        (
            proptest::collection::vec(series, 0..4),
            proptest::collection::vec(meta, 0..2),
        )
            .prop_map(|(timeseries, metadata)| WriteRequest {
                timeseries,
                metadata,
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The borrowing reader agrees with prost's derived decoder on what senders
        /// write, and on those bytes cut short or with one byte changed: the same
        /// series, samples, exemplars and metadata, or an error from both.
        #[test]
        fn reader_agrees_with_prost(
            req in request(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            flip in proptest::prelude::any::<(proptest::sample::Index, u8)>(),
        ) {
            let raw = req.encode_to_vec();
            proptest::prop_assert_eq!(by_reader(&raw), by_prost(&raw));
            if !raw.is_empty() {
                let short = &raw[..cut.index(raw.len())];
                proptest::prop_assert_eq!(by_reader(short).is_ok(), by_prost(short).is_ok());
                if let (Ok(a), Ok(b)) = (by_reader(short), by_prost(short)) {
                    proptest::prop_assert_eq!(a, b);
                }
                let mut changed = raw.clone();
                changed[flip.0.index(raw.len())] ^= flip.1 | 1;
                let (a, b) = (by_reader(&changed), by_prost(&changed));
                proptest::prop_assert_eq!(a.is_ok(), b.is_ok(), "{:?} vs {:?}", a, b);
                if let (Ok(a), Ok(b)) = (a, b) {
                    proptest::prop_assert_eq!(a, b);
                }
            }
        }

        /// Arbitrary bytes: both accept or both refuse, and agree when they accept.
        #[test]
        fn reader_agrees_with_prost_on_noise(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let (a, b) = (by_reader(&raw), by_prost(&raw));
            proptest::prop_assert_eq!(a.is_ok(), b.is_ok(), "{:?} vs {:?}", a, b);
            if let (Ok(a), Ok(b)) = (a, b) {
                proptest::prop_assert_eq!(a, b);
            }
        }
    }
}
