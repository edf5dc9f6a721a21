//! OTLP/HTTP receiver: valid and hostile input through the router, without a network.

#[path = "../../splits/tests/common.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::registry::Registry;
use prost::Message;
use tower::ServiceExt;
use triad_collector::ingest::StoreDestination;
use triad_model::store::TraceRead;
use triad_receiver::Ingest;
use triad_receiver::http::{HttpState, router};
use triad_receiver::metrics::ReceiverMetrics;

const MAX_BODY: usize = 64 * 1024;
const MAX_INFLATED: usize = 1024 * 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    logs: Arc<triad_splits::log_index::LogStore>,
    traces: Arc<triad_splits::trace_store::TraceStore>,
    registry: Arc<Registry>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let logs = arc(open_logs(&dir.path().join("logs"), fast_cfg()));
    let traces = arc(open_traces(&dir.path().join("traces"), fast_cfg()));
    let mut registry = Registry::default();
    let ingest = Ingest::new(
        Arc::new(StoreDestination {
            logs: logs.clone(),
            traces: traces.clone(),
            metrics: Arc::new(
                triad_tsdb::metric_store::MetricStore::open(
                    &dir.path().join("metrics"),
                    Default::default(),
                    &mut Registry::default(),
                )
                .unwrap(),
            ),
            span_metrics: Arc::new(triad_collector::span_metrics::SpanMetrics::new()),
            backlog: Default::default(),
            limits: triad_receiver::limits::Limits::defaults(),
        }),
        ReceiverMetrics::register_under(&mut registry, "triad_collector"),
    );
    let registry = Arc::new(registry);
    let state = HttpState {
        ingest: ingest.clone(),
        max_decompressed_bytes: MAX_INFLATED,
        registry: registry.clone(),
        ready: Arc::new(|| true),
    };
    Fixture {
        _dir: dir,
        app: router(state, MAX_BODY).into_router(triad_receiver::auth::Gate::open()),
        logs,
        traces,
        registry,
    }
}

fn otlp_span(trace_id: Vec<u8>, start: u64, name: &str) -> Span {
    Span {
        trace_id,
        span_id: vec![2; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000,
        attributes: vec![KeyValue {
            key: "marker".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("XXXX".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("svc".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(
    app: &axum::Router,
    ctype: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::post("/v1/traces").header("content-type", ctype);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

fn rpc_message(body: &[u8]) -> String {
    // google.rpc.Status: field 2 is the message.
    #[derive(Clone, PartialEq, Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    RpcStatus::decode(body)
        .map(|s| s.message)
        .unwrap_or_default()
}

fn metric(registry: &Registry, needle: &str) -> f64 {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_errors_and_costs_no_data() {
    let f = fixture();
    let now = triad_model::now_ns() as u64;

    // A good batch first, so we can check it survives everything below.
    let good = request(vec![otlp_span(vec![1; 16], now, "good")]).encode_to_vec();
    let (status, body) = post(&f.app, "application/x-protobuf", None, good.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ExportTraceServiceResponse::decode(&body[..])
            .unwrap()
            .partial_success,
        None
    );

    // The same batch gzip-compressed is accepted too.
    let (status, _) = post(&f.app, "application/x-protobuf", Some("gzip"), gzip(&good)).await;
    assert_eq!(status, StatusCode::OK);

    // OTLP JSON: hex IDs, string-encoded 64-bit integers, answered in JSON.
    let json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json-svc"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"0102030405060708","name":"j","kind":2,
        "startTimeUnixNano":"{now}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
        "ab".repeat(16),
        now + 10
    );
    let (status, body) = post(&f.app, "application/json", None, json.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(b"{"));

    // Malformed protobuf.
    let (status, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        vec![0x0a, 0xff, 0xff, 0xff, 0x01, 0x02],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        rpc_message(&body).contains("malformed protobuf"),
        "{:?}",
        rpc_message(&body)
    );

    // Invalid JSON, answered with a JSON google.rpc.Status.
    let (status, body) = post(
        &f.app,
        "application/json",
        None,
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 3);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("malformed OTLP JSON")
    );

    // Wrong content type and unsupported encoding.
    let (status, _) = post(&f.app, "text/plain", None, good.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = post(&f.app, "application/x-protobuf", Some("br"), good.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Oversized body, gzip bomb, broken gzip.
    let (status, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        vec![0u8; MAX_BODY + 1],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(rpc_message(&body).contains("max_request_bytes"));
    let bomb = gzip(&vec![0u8; 50 * MAX_INFLATED]);
    assert!(bomb.len() < MAX_BODY, "the bomb itself fits the body limit");
    let (status, body) = post(&f.app, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(rpc_message(&body).contains("decompressed body exceeds"));
    let (status, _) = post(
        &f.app,
        "application/x-protobuf",
        Some("gzip"),
        b"not gzip at all".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Invalid UTF-8 inside an attribute string.
    let mut bad_utf8 = request(vec![otlp_span(vec![3; 16], now, "utf8")]).encode_to_vec();
    let pos = bad_utf8.windows(4).position(|w| w == b"XXXX").unwrap();
    bad_utf8[pos..pos + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    let (status, body) = post(&f.app, "application/x-protobuf", None, bad_utf8).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(rpc_message(&body).contains("malformed protobuf"));

    // Wrong-length trace IDs and absurd timestamps: only bad spans → 400 naming the problem.
    let (status, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        request(vec![otlp_span(vec![4; 15], now, "short")]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        rpc_message(&body).contains("trace_id must be 16 bytes, got 15"),
        "{}",
        rpc_message(&body)
    );
    let (status, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        request(vec![otlp_span(vec![5; 16], 42, "1970")]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(rpc_message(&body).contains("outside the accepted range"));

    // Mixed batch: the good span is kept, the bad one reported as partial success.
    let mixed = request(vec![
        otlp_span(vec![6; 16], now, "kept"),
        otlp_span(vec![7; 3], now, "dropped"),
    ]);
    let (status, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        mixed.encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ps = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_spans, 1);
    assert!(ps.error_message.contains("trace_id"));

    // Earlier data intact, the kept span stored, counters up.
    let traces = f.traces.clone();
    wait_for("good spans searchable", || {
        traces
            .trace("default", triad_model::TraceId([1; 16]))
            .unwrap()
            .len()
            == 1
            && traces
                .trace("default", triad_model::TraceId([6; 16]))
                .unwrap()
                .len()
                == 1
            && traces
                .trace("default", triad_model::TraceId([0xab; 16]))
                .unwrap()
                .len()
                == 1
    });
    assert!(
        traces
            .trace("default", triad_model::TraceId([5; 16]))
            .unwrap()
            .is_empty()
    );
    let r = &f.registry;
    assert_eq!(
        metric(
            r,
            r#"triad_collector_requests_total{signal="traces",transport="http",outcome="invalid"}"#
        ),
        6.0
    );
    assert_eq!(
        metric(
            r,
            r#"triad_collector_requests_total{signal="traces",transport="http",outcome="too_large"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            r,
            r#"triad_collector_requests_total{signal="traces",transport="http",outcome="unsupported_media_type"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            r,
            r#"triad_collector_requests_total{signal="traces",transport="http",outcome="partial"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            r,
            r#"triad_collector_rejected_items_total{signal="traces",transport="http"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            r,
            r#"triad_collector_accepted_items_total{signal="traces",transport="http"}"#
        ),
        4.0
    );
    f.traces.store().shutdown();
    f.logs.store().shutdown();
}
