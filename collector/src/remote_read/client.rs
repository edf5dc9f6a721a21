//! A [`MetricRead`] over a remote read endpoint, for query servers without a metric
//! store of their own.

use axum::http::header;
use prost::Message;
use triad_model::metric::{Labels, MatchOp, Matcher, SeriesSamples};
use triad_model::store::MetricRead;

use super::{LabelMatcher, Query, ReadHints, ReadRequest, ReadResponse};
use crate::remote_write::Label;

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
        let client = triad_receiver::client::http_client(timeout)?;
        Ok(RemoteReader {
            url: url.to_string(),
            client,
            handle,
        })
    }

    fn read(
        &self,
        tenant: &str,
        queries: Vec<Query>,
    ) -> triad_model::store::StoreResult<ReadResponse> {
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
            .header(triad_receiver::auth::ORG_ID_HEADER, tenant)
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
        let bytes = crate::wait(&self.handle, fetched).map_err(|e| {
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
        tenant: &str,
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
            .read(tenant, queries)?
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
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<SeriesSamples>> {
        let resp = self.read(
            tenant,
            vec![Query {
                start_timestamp_ms: start_ms,
                end_timestamp_ms: end_ms,
                matchers: matchers.iter().map(wire_matcher).collect(),
                hints: None,
            }],
        )?;
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
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<Labels>> {
        self.label_sets(tenant, matcher_sets, start_ms, end_ms)
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<String>> {
        let mut names: Vec<String> = self
            .label_sets(tenant, matcher_sets, start_ms, end_ms)?
            .iter()
            .flat_map(|l| l.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> triad_model::store::StoreResult<Vec<String>> {
        let mut values: Vec<String> = self
            .label_sets(tenant, matcher_sets, start_ms, end_ms)?
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
