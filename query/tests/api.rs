//! The query server's HTTP APIs in process: the real router (`triad_query::app`) over
//! real stores (tantivy splits, the TSDB) in a temporary directory, called with
//! `oneshot` as axum's testing example does — no network. Pins the response shapes and
//! error statuses of the Prometheus, Jaeger, logs and correlation APIs in Rust; the
//! end-to-end tests drive the same APIs with real clients.

#[path = "../../splits/tests/common.rs"]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use prometheus_client::registry::Registry;
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use triad_model::config::QueryConfig;
use triad_model::metric::Labels;
use triad_model::store::{LogRead, MetricRead};
use triad_query::{AppState, app};
use triad_tsdb::metric_store::MetricStore;
use triad_tsdb::{AppendBatch, TsdbOptions};

use common::*;

/// The stores behind a router, kept alive with their directory.
struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    metrics: triad_query::metrics::QueryMetrics,
    trace: triad_model::TraceId,
    now_ms: i64,
}

/// Logs, a trace of two services and a few metric series, searchable.
async fn fixture(with_metrics: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let logs = arc(open_logs(&dir.path().join("logs"), fast_cfg()));
    let traces = arc(open_traces(&dir.path().join("traces"), fast_cfg()));
    let now_ns = triad_model::now_ns();
    let now_ms = now_ns / 1_000_000;
    let trace = tid(7);
    traces
        .append(vec![
            span(
                trace,
                sid(1),
                None,
                "gateway",
                "GET /cart",
                now_ns - 5_000_000,
                4_000_000,
                false,
            ),
            span(
                trace,
                sid(2),
                Some(sid(1)),
                "cart",
                "load",
                now_ns - 4_000_000,
                2_000_000,
                true,
            ),
        ])
        .await
        .unwrap();
    logs.append(vec![
        log(
            now_ns - 4_000_000,
            "cart load failed",
            "cart",
            "error",
            Some(trace),
        ),
        log(
            now_ns - 3_000_000,
            "request served",
            "gateway",
            "info",
            None,
        ),
    ])
    .await
    .unwrap();
    let metrics: Option<Arc<dyn MetricRead>> = if with_metrics {
        let store = MetricStore::open(
            &dir.path().join("metrics"),
            TsdbOptions::default(),
            &mut Registry::default(),
        )
        .unwrap();
        let series = |job: &str, instance: &str| {
            Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("instance".into(), instance.into()),
                ("job".into(), job.into()),
            ])
        };
        let batch = AppendBatch {
            samples: vec![
                (series("api", "a:1"), now_ms - 30_000, 1.0),
                (series("api", "b:1"), now_ms - 30_000, 0.0),
                (series("db", "c:1"), now_ms - 30_000, 1.0),
            ],
            ..Default::default()
        };
        store.append("default", &batch, false).unwrap();
        Some(Arc::new(store))
    } else {
        None
    };
    let searchable = |logs: &Arc<triad_splits::log_index::LogStore>| {
        logs.search(&triad_model::store::LogQuery {
            tenant: "default".into(),
            query: String::new(),
            start_ns: 0,
            end_ns: i64::MAX,
            limit: 10,
            histogram_buckets: 1,
            oldest_first: false,
        })
        .is_ok_and(|r| r.total == 2)
    };
    wait_for("logs searchable", || searchable(&logs));
    wait_for("trace searchable", || {
        use triad_model::store::TraceRead;
        traces.trace("default", trace).is_ok_and(|s| s.len() == 2)
    });
    let metrics_of_server = triad_query::metrics::QueryMetrics::register(&mut Registry::default());
    let state = AppState {
        logs,
        traces,
        metrics,
        alerting: None,
        silences: None,
        remote_alerting: None,
        external_url: "http://triad.test".into(),
        cfg: QueryConfig::default(),
        registry: Arc::new(Registry::default()),
        ready: Arc::new(|| true),
        cancel: CancellationToken::new(),
        ui: triad_query::ui::no_ui,
        trace_cache: Default::default(),
        alert_tenants: Arc::new([triad_model::DEFAULT_TENANT.to_string()].into()),
        gate: triad_receiver::auth::Gate::open(),
        limits: triad_receiver::limits::Limits::defaults(),
    };
    Fixture {
        _dir: dir,
        state,
        metrics: metrics_of_server,
        trace,
        now_ms,
    }
}

impl Fixture {
    /// Calls the router; returns the status and the body as JSON (or a string).
    async fn call(&self, req: Request<Body>) -> (StatusCode, Json) {
        let resp = app(self.state.clone(), self.metrics.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Json) {
        self.call(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn bad_data(status: StatusCode, body: &Json) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], "bad_data", "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_api_answers_in_prometheus_shapes() {
    let f = fixture(true).await;
    let t = f.now_ms as f64 / 1000.0;

    let (s, b) = f.get(&format!("/api/v1/query?query=up&time={t}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["resultType"], "vector");
    let result = b["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3);
    let first = &result[0];
    assert_eq!(first["metric"]["__name__"], "up");
    assert_eq!(first["value"][0].as_f64().unwrap(), t);
    assert!(first["value"][1].is_string(), "values are strings: {first}");

    let (_, b) = f.get(&format!("/api/v1/query?query=1%2B1&time={t}")).await;
    assert_eq!(
        b["data"],
        json!({"resultType": "scalar", "result": [t, "2"]})
    );
    let (_, b) = f
        .get(&format!("/api/v1/query?query=%22x%22&time={t}"))
        .await;
    assert_eq!(
        b["data"],
        json!({"resultType": "string", "result": [t, "x"]})
    );

    // Grafana's health check posts a form.
    let form = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("query=1%2B1&time={t}")))
        .unwrap();
    let (s, b) = f.call(form).await;
    assert_eq!((s, &b["data"]["result"][1]), (StatusCode::OK, &json!("2")));

    let (start, end) = (t - 60.0, t);
    let (s, b) = f
        .get(&format!(
            "/api/v1/query_range?query=sum(up)&start={start}&end={end}&step=15"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["resultType"], "matrix");
    let values = b["data"]["result"][0]["values"].as_array().unwrap();
    assert!(
        !values.is_empty() && values.iter().all(|v| v[1] == "2"),
        "{b}"
    );

    let (_, b) = f
        .get("/api/v1/series?match[]=up%7Bjob%3D%22api%22%7D")
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2, "{b}");
    assert_eq!(b["data"][0]["job"], "api");
    let (_, b) = f.get("/api/v1/labels").await;
    assert_eq!(b["data"], json!(["__name__", "instance", "job"]));
    let (_, b) = f.get("/api/v1/label/job/values").await;
    assert_eq!(b["data"], json!(["api", "db"]));
    let (_, b) = f.get("/api/v1/status/buildinfo").await;
    assert!(b["data"]["version"].is_string(), "{b}");
    let (s, b) = f.get("/api/v1/metadata").await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("success")));
    let (s, b) = f
        .get(&format!(
            "/api/v1/query_exemplars?query=up&start={start}&end={end}"
        ))
        .await;
    assert_eq!((s, &b["data"]), (StatusCode::OK, &json!([])));
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_api_errors_carry_prometheus_types_and_statuses() {
    let f = fixture(true).await;
    let (s, b) = f.get("/api/v1/query?query=sum(").await;
    bad_data(s, &b);
    let (s, b) = f
        .get("/api/v1/query_range?query=up&start=10&end=0&step=15")
        .await;
    bad_data(s, &b);
    let (s, b) = f
        .get("/api/v1/query_range?query=up&start=0&end=10&step=abc")
        .await;
    bad_data(s, &b);
    let (s, b) = f.get("/api/v1/series").await;
    bad_data(s, &b);
    let (s, b) = f.get("/api/v1/labels?limit=-1").await;
    bad_data(s, &b);
    // Execution errors are 422 with errorType "execution", as in Prometheus.
    let (s, b) = f
        .get(&format!(
            "/api/v1/query?query={}",
            enc(r#"up * on(job) group_left() up"#)
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["errorType"], "execution");

    // Without a metric store the API says so, rather than answering empty.
    let none = fixture(false).await;
    let (s, b) = none.get("/api/v1/query?query=up").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["errorType"], "unavailable");
}

/// Regression: a number literal too large for a float was answered 200 with +Inf;
/// Prometheus answers 400 bad_data.
#[tokio::test(flavor = "multi_thread")]
async fn regression_overflowing_number_literal_is_bad_data() {
    let f = fixture(true).await;
    let (s, b) = f
        .get(&format!("/api/v1/query?query={}", "1".repeat(400)))
        .await;
    bad_data(s, &b);
    let (s, _) = f
        .get(&format!("/api/v1/query?query={}", "1".repeat(63)))
        .await;
    assert_eq!(s, StatusCode::OK, "63 digits fit a float, as in Prometheus");
}

/// Regression: label values of an invalid label name were answered 200 with nothing;
/// Prometheus answers 400 bad_data.
#[tokio::test(flavor = "multi_thread")]
async fn regression_label_values_of_an_invalid_label_name_are_bad_data() {
    let f = fixture(true).await;
    for name in ["1bad", "a-b", "caf%C3%A9"] {
        let (s, b) = f.get(&format!("/api/v1/label/{name}/values")).await;
        bad_data(s, &b);
        assert!(
            b["error"].as_str().unwrap().contains("invalid label name"),
            "{b}"
        );
    }
    let (s, _) = f.get("/api/v1/label/__name__/values").await;
    assert_eq!(s, StatusCode::OK);
}

/// Regression: `limit` (Grafana always sends one) was ignored by the series, label
/// names and label values endpoints. Cut results carry Prometheus' warning.
#[tokio::test(flavor = "multi_thread")]
async fn regression_series_and_label_endpoints_honour_limit() {
    let f = fixture(true).await;
    let (_, b) = f.get("/api/v1/labels?limit=2").await;
    assert_eq!(b["data"], json!(["__name__", "instance"]));
    assert_eq!(b["warnings"], json!(["results truncated due to limit"]));
    let (_, b) = f.get("/api/v1/label/instance/values?limit=1").await;
    assert_eq!(b["data"], json!(["a:1"]));
    assert_eq!(b["warnings"][0], "results truncated due to limit");
    let (_, b) = f.get("/api/v1/series?match[]=up&limit=2").await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2, "{b}");
    // A limit the result fits in (or 0: none) cuts nothing and warns of nothing.
    for q in [
        "/api/v1/series?match[]=up&limit=3",
        "/api/v1/series?match[]=up&limit=0",
    ] {
        let (_, b) = f.get(q).await;
        assert_eq!(b["data"].as_array().unwrap().len(), 3, "{q}: {b}");
        assert!(b.get("warnings").is_none(), "{q}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jaeger_api_answers_in_jaeger_shapes() {
    let f = fixture(false).await;
    let (s, b) = f.get("/api/services").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"], json!(["cart", "gateway"]));
    assert_eq!(b["total"], 2);
    let (_, b) = f.get("/api/services/gateway/operations").await;
    assert_eq!(b["data"], json!(["GET /cart"]));

    let id = f.trace.to_hex();
    let (s, b) = f.get(&format!("/api/traces/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let trace = &b["data"][0];
    assert_eq!(trace["traceID"], id);
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let child = spans.iter().find(|s| s["operationName"] == "load").unwrap();
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    let process = &trace["processes"][child["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "cart");
    assert!(
        child["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "error" && t["value"] == true),
        "{child}"
    );

    let (s, b) = f.get("/api/traces?service=gateway&limit=10").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"][0]["traceID"], id);

    let (s, b) = f.get(&format!("/api/traces/{}", "ab".repeat(16))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["data"], Json::Null);
    assert_eq!(b["errors"][0]["code"], 404, "{b}");
    let (s, b) = f.get("/api/traces/not-hex").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["errors"][0]["code"], 400, "{b}");
    let (s, _) = f.get("/api/traces?service=gateway&minDuration=fast").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn log_search_and_correlation_answer_in_their_shapes() {
    let f = fixture(false).await;
    let (s, b) = f.get("/api/logs/search?q=level:error&start=0").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["total"], 1);
    let hit = &b["hits"][0];
    assert_eq!(hit["body"], "cart load failed");
    assert_eq!(hit["trace_id"], f.trace.to_hex());
    assert!(
        b["histogram"].as_array().is_some_and(|h| !h.is_empty()),
        "{b}"
    );
    assert!(b["bucket_seconds"].as_f64().unwrap() > 0.0);

    let (s, b) = f.get("/api/logs/search?q=body:(unclosed&start=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = f.get("/api/logs/search?start=10&end=5").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let id = f.trace.to_hex();
    let (s, b) = f.get(&format!("/api/correlate/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["trace"]["traceID"], id);
    assert_eq!(b["logs"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["services"], json!(["cart", "gateway"]));
    let (s, _) = f.get("/api/correlate/zz").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = f.get(&format!("/api/correlate/{}", "ab".repeat(16))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_api_paths_are_json_404s_and_health_is_open() {
    let f = fixture(false).await;
    let (s, b) = f.get("/api/v9/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        b["error"].as_str().unwrap().contains("/api/v9/nothing"),
        "{b}"
    );
    // A UI route on a server built without the UI.
    let (s, b) = f.get("/traces/abc").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(f.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(f.get("/readyz").await.0, StatusCode::OK);
    let (s, b) = f.get("/metrics").await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

fn fake_ui(path: &str) -> Option<triad_query::ui::UiAsset> {
    let asset = |path, content_type, bytes: &'static [u8], immutable| triad_query::ui::UiAsset {
        path,
        content_type,
        bytes,
        immutable,
    };
    match path {
        "index.html" => Some(asset("index.html", "text/html", b"<html>ui</html>", false)),
        "assets/app-1.js" => Some(asset("assets/app-1.js", "text/javascript", b"js", true)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_answers_its_routes_only_and_other_paths_are_json_404s() {
    let mut f = fixture(false).await;
    f.state.ui = fake_ui;
    for ui in [
        "/",
        "/traces/abc",
        "/traces",
        "/logs",
        "/services/checkout",
        "/graph",
        "/alerts",
    ] {
        let (s, b) = f.get(ui).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::OK, Some("<html>ui</html>")),
            "{ui}"
        );
    }
    assert_eq!(f.get("/assets/app-1.js").await.1, "js");
    // What a misconfigured data source or a typo asks for: a clear JSON error, not the
    // UI's HTML.
    for other in [
        "/loki/api/v1/nothing",
        "/api/v2/nothing",
        "/internal/v1/nothing",
        "/assets/gone.js",
        "/favicon.ico",
        "/nothing",
    ] {
        let (s, b) = f.get(other).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{other}: {b}");
        assert!(b["error"].as_str().unwrap().contains(other), "{other}: {b}");
    }
}

#[tokio::test]
async fn the_trace_page_reads_rows_spans_and_finds() {
    let f = fixture(false).await;
    let id = f.trace.to_hex();
    let resp = app(f.state.clone(), f.metrics.clone())
        .oneshot(
            Request::get(format!("/api/traces/{id}/rows"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let lines: Vec<Json> = std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "a summary and a row per span");
    let (root, child) = (sid(1).to_hex(), sid(2).to_hex());
    assert_eq!(
        lines[0],
        json!({
            "traceID": id, "spanCount": 2, "services": ["cart", "gateway"], "depth": 2,
            "errors": 1, "start_us": lines[0]["start_us"], "duration_us": 4000,
            "critical": [root, child], "logs": 1, "partial": false, "warnings": [],
        })
    );
    assert_eq!(
        lines[1],
        json!({"id": root, "p": -1, "d": 0, "s": 1, "n": "GET /cart", "t": 0, "u": 4000, "e": false, "c": 1, "z": 2, "l": 0})
    );
    assert_eq!(
        lines[2],
        json!({"id": child, "p": 0, "d": 1, "s": 0, "n": "load", "t": 1000, "u": 2000, "e": true, "c": 0, "z": 1, "l": 0})
    );

    let (s, b) = f.get(&format!("/api/traces/{id}/spans/{child}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["span"]["operationName"], "load");
    assert!(
        b["span"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "http.status_code")
    );
    assert!(b["processes"].is_object() && b["logs"].is_array());

    for (q, rows) in [
        ("error", json!([1])),
        ("GATEWAY", json!([0])),
        ("http.status_code=500", json!([1])),
        ("nothing", json!([])),
    ] {
        let (s, b) = f.get(&format!("/api/traces/{id}/find?q={q}")).await;
        assert_eq!((s, &b["matches"]), (StatusCode::OK, &rows), "{q}");
    }
    let (s, _) = f.get(&format!("/api/traces/{id}/find")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = f.get(&format!("/api/traces/{id}/spans/zz")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = f
        .get(&format!("/api/traces/{id}/spans/{}", sid(9).to_hex()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f
        .get(&format!("/api/traces/{}/rows", tid(99).to_hex()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The correlation without its spans, for such a page.
    let (s, b) = f.get(&format!("/api/correlate/{id}?trace=false")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["trace"].is_null() && b["spans"].is_null());
    assert_eq!(
        (b["span_count"].as_u64(), b["logs"].as_array().map(Vec::len)),
        (Some(2), Some(1))
    );
}
