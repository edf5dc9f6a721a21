//! Prometheus remote read 0.1.0 server: `POST /api/v1/read`, a snappy-compressed
//! protobuf `ReadRequest` in, a snappy-compressed `ReadResponse` of raw samples out, as
//! Prometheus' own `/api/v1/read` answers it. Prometheus (`remote_read:`), Thanos and
//! other tools read Triad's series through it.
//!
//! Only the `SAMPLES` response type is served (Prometheus' own client asks for it);
//! a request accepting only streamed chunks is refused with 400, as Prometheus refuses
//! response types it does not know. Samples are returned as stored, staleness markers
//! included. A request may read at most [`SAMPLE_LIMIT`] samples (Prometheus'
//! `--storage.remote.read-sample-limit` default); beyond it the answer is 400.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message;
use triad_model::DEFAULT_TENANT;
use triad_model::metric::{Labels, MatchOp, Matcher, SeriesSamples};
use triad_model::store::MetricRead;

use crate::remote_write::{CodeLabel, Label, TimeSeries, WireSample, decompress};
use triad_tsdb::metric_store::MetricStore;

/// Most samples one request may read.
pub const SAMPLE_LIMIT: usize = 50_000_000;

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ReadRequest {
    /// The queries, answered in order.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Response types the client accepts, in its order of preference (0 = `SAMPLES`,
    /// 1 = `STREAMED_XOR_CHUNKS`); empty means `SAMPLES`.
    #[prost(int32, repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, Message)]
pub struct Query {
    /// Start, ms, inclusive.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// End, ms, inclusive.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Matchers, all of which a series must satisfy.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// What the reader will do with the data.
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.ReadHints`. Only `func` is used: `"series"` asks for label sets alone,
/// as Prometheus' `/api/v1/series` asks its own storage.
#[derive(Clone, PartialEq, Message)]
pub struct ReadHints {
    /// Query step, ms.
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// The function the data is for (`"series"`: labels only).
    #[prost(string, tag = "2")]
    pub func: String,
    /// Start of the evaluation, ms.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// End of the evaluation, ms.
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelMatcher {
    /// 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or regular expression.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.ReadResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ReadResponse {
    /// One result per query, in order.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    /// Matching series with their samples in the range, sorted by labels.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// Remote read metrics (`triad_remote_read_*`).
#[derive(Clone)]
pub struct RemoteReadMetrics {
    requests: Family<CodeLabel, Counter>,
    samples: Counter,
}

impl RemoteReadMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> RemoteReadMetrics {
        let m = RemoteReadMetrics {
            requests: Family::default(),
            samples: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("triad_remote_read");
        r.register(
            "requests",
            "Requests by HTTP status code",
            m.requests.clone(),
        );
        r.register("samples", "Samples returned", m.samples.clone());
        m
    }
}

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
                .series(DEFAULT_TENANT, &[matchers], start, end)
                .map_err(internal)?
                .into_iter()
                .map(|labels| SeriesSamples {
                    labels,
                    samples: Vec::new(),
                })
                .collect()
        } else {
            store
                .select(DEFAULT_TENANT, &matchers, start, end)
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
pub async fn read(State(s): State<RemoteReadState>, headers: HeaderMap, body: Bytes) -> Response {
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
                match tokio::task::spawn_blocking(move || answer(&store, &req)).await {
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

/// The router holding `/api/v1/read`.
pub fn router(state: RemoteReadState) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/read", axum::routing::post(read))
        .with_state(state)
}

/// Reads metric series from a remote read endpoint — a Triad collector's or a
/// Prometheus' `/api/v1/read` — for a query server that has no metric store of its own
/// (`triad query` with `query.remote_read_url`).
///
/// Selects are remote read queries; series, label names and values are remote read
/// queries with the `series` hint (a Triad collector then sends labels only, a
/// Prometheus may send samples too, which are ignored). Metadata and exemplars are not
/// part of the protocol: there are none. The store calls are synchronous (the query
/// engine runs on blocking threads), so each waits for its request on the runtime.
#[derive(Debug)]
pub struct RemoteReader {
    url: String,
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

impl RemoteReader {
    /// A reader of `url`; must be created inside the Tokio runtime it will use.
    pub fn new(url: &str, timeout: std::time::Duration) -> Result<RemoteReader, String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "a remote reader needs the Tokio runtime".to_string())?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(RemoteReader {
            url: url.to_string(),
            client,
            handle,
        })
    }

    fn read(&self, queries: Vec<Query>) -> triad_model::store::StoreResult<ReadResponse> {
        use triad_model::store::StoreError;
        let req = ReadRequest {
            queries,
            accepted_response_types: vec![0],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .map_err(|e| StoreError::Internal(format!("snappy: {e}")))?;
        let send = self
            .client
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body)
            .send();
        let fetched = async {
            let resp = send.await.map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes);
                return Err(format!("HTTP {status}: {}", text.trim()));
            }
            Ok(bytes)
        };
        let bytes = tokio::task::block_in_place(|| self.handle.block_on(fetched)).map_err(|e| {
            tracing::warn!(url = %self.url, error = %e, "remote read failed");
            StoreError::Internal(format!("remote read from {}: {e}", self.url))
        })?;
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&bytes)
            .map_err(|e| StoreError::Internal(format!("remote read answer: snappy: {e}")))?;
        ReadResponse::decode(raw.as_slice())
            .map_err(|e| StoreError::Internal(format!("remote read answer: protobuf: {e}")))
    }

    /// Label sets of series matching any matcher set (all series when there is none).
    fn label_sets(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<Labels>> {
        let all = [vec![
            Matcher::new(MatchOp::Regex, "__name__", ".+")
                .map_err(|e| triad_model::store::StoreError::Internal(e.to_string()))?,
        ]];
        let sets = if matcher_sets.is_empty() {
            &all[..]
        } else {
            matcher_sets
        };
        let queries = sets
            .iter()
            .map(|ms| Query {
                start_timestamp_ms: start_ms,
                end_timestamp_ms: end_ms,
                matchers: ms.iter().map(wire_matcher).collect(),
                hints: Some(ReadHints {
                    func: "series".into(),
                    start_ms,
                    end_ms,
                    ..Default::default()
                }),
            })
            .collect();
        let mut out: Vec<Labels> = self
            .read(queries)?
            .results
            .into_iter()
            .flat_map(|r| r.timeseries)
            .map(|t| wire_labels(t.labels))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn wire_matcher(m: &Matcher) -> LabelMatcher {
    LabelMatcher {
        r#type: match m.op {
            MatchOp::Equal => 0,
            MatchOp::NotEqual => 1,
            MatchOp::Regex => 2,
            MatchOp::NotRegex => 3,
        },
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

fn wire_labels(labels: Vec<Label>) -> Labels {
    Labels::new(labels.into_iter().map(|l| (l.name, l.value)).collect())
}

impl MetricRead for RemoteReader {
    fn select(
        &self,
        _tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<SeriesSamples>> {
        let resp = self.read(vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms,
            matchers: matchers.iter().map(wire_matcher).collect(),
            hints: None,
        }])?;
        let mut out: Vec<SeriesSamples> = resp
            .results
            .into_iter()
            .flat_map(|r| r.timeseries)
            .filter(|t| !t.samples.is_empty())
            .map(|t| SeriesSamples {
                samples: t.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
                labels: wire_labels(t.labels),
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn series(
        &self,
        _tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<Labels>> {
        self.label_sets(matcher_sets, start_ms, end_ms)
    }

    fn label_names(
        &self,
        _tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<String>> {
        let mut names: Vec<String> = self
            .label_sets(matcher_sets, start_ms, end_ms)?
            .iter()
            .flat_map(|l| l.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        _tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<String>> {
        let mut values: Vec<String> = self
            .label_sets(matcher_sets, start_ms, end_ms)?
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn metadata(
        &self,
        _tenant: &str,
        _metric: Option<&str>,
    ) -> triad_model::store::StoreResult<
        std::collections::BTreeMap<String, Vec<triad_model::metric::MetricMetadata>>,
    > {
        Ok(Default::default())
    }

    fn exemplars(
        &self,
        _tenant: &str,
        _matcher_sets: &[Vec<Matcher>],
        _start_ms: i64,
        _end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<triad_model::metric::SeriesExemplars>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_model::metric::Labels;
    use triad_tsdb::{AppendBatch, TsdbOptions};

    #[test]
    fn answers_queries_in_order_and_refuses_what_it_cannot_serve() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricStore::open(dir.path(), TsdbOptions::default(), &mut Registry::default())
            .unwrap();
        let l = |job: &str| {
            Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("job".into(), job.into()),
            ])
        };
        let batch = AppendBatch {
            samples: vec![
                (l("a"), 1000, 1.0),
                (l("b"), 1000, 0.0),
                (l("a"), 2000, 1.0),
            ],
            ..Default::default()
        };
        store.append(DEFAULT_TENANT, &batch, false).unwrap();
        let m = |t: i32, n: &str, v: &str| LabelMatcher {
            r#type: t,
            name: n.into(),
            value: v.into(),
        };
        let req = ReadRequest {
            queries: vec![
                Query {
                    start_timestamp_ms: 0,
                    end_timestamp_ms: 1500,
                    matchers: vec![m(0, "__name__", "up")],
                    hints: None,
                },
                Query {
                    start_timestamp_ms: 0,
                    end_timestamp_ms: 5000,
                    matchers: vec![m(2, "job", "a|c"), m(1, "job", "b")],
                    hints: None,
                },
            ],
            accepted_response_types: vec![0],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let resp = answer(&store, &decode(&body, 1 << 20).unwrap()).unwrap();
        let jobs = |r: &QueryResult| -> Vec<(String, usize)> {
            r.timeseries
                .iter()
                .map(|t| {
                    let job = t.labels.iter().find(|l| l.name == "job").unwrap();
                    (job.value.clone(), t.samples.len())
                })
                .collect()
        };
        assert_eq!(
            jobs(&resp.results[0]),
            vec![("a".to_string(), 1), ("b".to_string(), 1)]
        );
        assert_eq!(jobs(&resp.results[1]), vec![("a".to_string(), 2)]);
        // Streamed chunks only, an unknown matcher type, a bad regex, garbage.
        let chunks_only = ReadRequest {
            accepted_response_types: vec![1],
            ..req.clone()
        };
        assert_eq!(
            answer(&store, &chunks_only).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        let mut bad = req.clone();
        bad.queries[0].matchers = vec![m(9, "job", "a")];
        assert_eq!(answer(&store, &bad).unwrap_err().0, StatusCode::BAD_REQUEST);
        bad.queries[0].matchers = vec![m(2, "job", "(")];
        assert_eq!(answer(&store, &bad).unwrap_err().0, StatusCode::BAD_REQUEST);
        assert_eq!(
            decode(b"\xff\xff\xff\xff\x0f", 1 << 20).unwrap_err().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            decode(b"\x05ab", 1 << 20).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_reader_sees_what_the_store_holds() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::default();
        let store =
            Arc::new(MetricStore::open(dir.path(), TsdbOptions::default(), &mut registry).unwrap());
        let l = |job: &str, code: &str| {
            Labels::new(vec![
                ("__name__".into(), "req".into()),
                ("code".into(), code.into()),
                ("job".into(), job.into()),
            ])
        };
        let batch = AppendBatch {
            samples: (0..10)
                .flat_map(|i| {
                    [
                        (l("a", "200"), i * 1000, i as f64),
                        (l("b", "500"), i * 1000, f64::from(i as u8) * 2.0),
                    ]
                })
                .chain([(l("a", "200"), 10_000, triad_model::metric::stale_nan())])
                .collect(),
            ..Default::default()
        };
        store.append(DEFAULT_TENANT, &batch, false).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(RemoteReadState {
            store: store.clone(),
            metrics: RemoteReadMetrics::register(&mut registry),
            max_decompressed_bytes: 1 << 20,
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let reader = RemoteReader::new(
            &format!("http://{addr}/api/v1/read"),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let local = store.clone();
        tokio::task::spawn_blocking(move || {
            let ms = [Matcher::new(MatchOp::Regex, "job", "a|b").unwrap()];
            let remote = reader.select("default", &ms, 2000, 10_000).unwrap();
            let here = local.select(DEFAULT_TENANT, &ms, 2000, 10_000).unwrap();
            assert_eq!(remote.len(), 2);
            for (r, h) in remote.iter().zip(&here) {
                assert_eq!(r.labels, h.labels);
                let bits = |s: &SeriesSamples| -> Vec<(i64, u64)> {
                    s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect()
                };
                assert_eq!(bits(r), bits(h), "staleness markers travel too");
            }
            assert_eq!(
                reader
                    .label_values("default", "code", &[], 0, 10_000)
                    .unwrap(),
                vec!["200", "500"]
            );
            assert_eq!(
                reader
                    .label_names("default", &[vec![Matcher::equal("job", "b")]], 0, 10_000)
                    .unwrap(),
                vec!["__name__", "code", "job"]
            );
            assert_eq!(reader.series("default", &[], 0, 10_000).unwrap().len(), 2);
            // A refused query is an error for the caller, not an empty answer.
            let bad = [Matcher::new(MatchOp::Regex, "job", "a").unwrap()];
            let nowhere = RemoteReader {
                url: format!("http://{addr}/nowhere"),
                ..reader
            };
            assert!(nowhere.select("default", &bad, 0, 1).is_err());
        })
        .await
        .unwrap();
    }
}
