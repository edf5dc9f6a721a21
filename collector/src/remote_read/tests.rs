//! The server answered from a real metric store, and the client reading it back over HTTP.

use super::*;
use crate::metrics::RemoteReadMetrics;
use axum::http::StatusCode;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use triad_model::DEFAULT_TENANT;
use triad_model::metric::Labels;
use triad_model::metric::{MatchOp, Matcher, SeriesSamples};
use triad_model::store::MetricRead;
use triad_tsdb::metric_store::MetricStore;
use triad_tsdb::{AppendBatch, TsdbOptions};

#[test]
fn answers_queries_in_order_and_refuses_what_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        MetricStore::open(dir.path(), TsdbOptions::default(), &mut Registry::default()).unwrap();
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
    let resp = answer(&store, DEFAULT_TENANT, &decode(&body, 1 << 20).unwrap()).unwrap();
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
        answer(&store, DEFAULT_TENANT, &chunks_only).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
    let mut bad = req.clone();
    bad.queries[0].matchers = vec![m(9, "job", "a")];
    assert_eq!(
        answer(&store, DEFAULT_TENANT, &bad).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
    bad.queries[0].matchers = vec![m(2, "job", "(")];
    assert_eq!(
        answer(&store, DEFAULT_TENANT, &bad).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
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
    })
    .into_router(triad_receiver::auth::Gate::open());
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
        let nowhere = RemoteReader::new(
            &format!("http://{addr}/nowhere"),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        assert!(nowhere.select("default", &bad, 0, 1).is_err());
    })
    .await
    .unwrap();
}
