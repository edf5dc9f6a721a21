//! LogQL golden cases through Loki's query API: the real router over a real log store
//! holding the lines of `fixtures/logql_golden.json`; each case's answer (`data.result`,
//! or the error) must equal the one recorded there. The expected results follow Loki's
//! documented semantics and were checked by hand when recorded; every query in the file
//! also parses with Grafana's LogQL grammar (`tests/e2e/test_loki_query.py`).
//!
//! `TRIAD_BLESS=1 cargo test -p triad-query --test loki` rewrites the expectations
//! (review the diff before committing it).

#[path = "../../splits/tests/common.rs"]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prometheus_client::registry::Registry;
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use triad_model::config::QueryConfig;
use triad_model::store::{LogQuery, LogRead};
use triad_model::{KeyValue, LogRecord, TraceId, Value};
use triad_query::{AppState, app};

use common::*;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/logql_golden.json"
);

fn records(golden: &Json) -> Vec<LogRecord> {
    let base: i64 = golden["base"].as_str().unwrap().parse().unwrap();
    golden["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let ts = (base + l["t"].as_i64().unwrap()) * 1_000_000_000;
            let service = l["service"].as_str().unwrap();
            LogRecord {
                tenant: "default".into(),
                timestamp_ns: ts,
                observed_ns: ts,
                severity_text: l["level"].as_str().unwrap().into(),
                severity_number: 0,
                body: l["body"].as_str().unwrap().into(),
                service: service.into(),
                host: l["host"].as_str().unwrap().into(),
                trace_id: l["trace_id"]
                    .as_str()
                    .map(|t| TraceId::from_hex(t).unwrap()),
                span_id: None,
                source: format!("/var/log/{service}.log"),
                attributes: l["attributes"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| KeyValue::new(k, Value::Str(v.as_str().unwrap().into())))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

async fn fixture(golden: &Json) -> Fixture {
    fixture_with(records(golden)).await
}

/// A router over a log store holding `recs`.
async fn fixture_with(recs: Vec<LogRecord>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let logs = arc(open_logs(&dir.path().join("logs"), fast_cfg()));
    let traces = arc(open_traces(&dir.path().join("traces"), fast_cfg()));
    let n = recs.len() as u64;
    logs.append(recs).await.unwrap();
    wait_for("lines searchable", || {
        logs.search(&LogQuery {
            tenant: "default".into(),
            query: String::new(),
            start_ns: 0,
            end_ns: i64::MAX,
            limit: 1,
            histogram_buckets: 0,
            oldest_first: false,
        })
        .is_ok_and(|r| r.total == n)
    });
    let state = AppState {
        logs,
        traces,
        metrics: None,
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
    Fixture { _dir: dir, state }
}

impl Fixture {
    async fn get(&self, uri: &str) -> (StatusCode, Json) {
        let metrics = triad_query::metrics::QueryMetrics::register(&mut Registry::default());
        let resp = app(self.state.clone(), metrics)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
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
}

fn uri(path: &str, params: &[(&str, &str)]) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{path}?{q}")
}

/// What a case answered, in the form recorded in the golden file.
async fn answer(f: &Fixture, case: &Json) -> Json {
    let s = |k: &str| case[k].as_str();
    let mut params = vec![("query", s("query").unwrap())];
    for k in ["start", "end", "step", "time", "limit", "direction"] {
        if let Some(v) = s(k) {
            params.push((k, v));
        }
    }
    let path = if s("kind") == Some("instant") {
        "/loki/api/v1/query"
    } else {
        "/loki/api/v1/query_range"
    };
    let (status, body) = f.get(&uri(path, &params)).await;
    if status != StatusCode::OK {
        return json!({"status": status.as_u16(), "error": body});
    }
    assert_eq!(body["status"], "success", "{body}");
    assert!(
        body["data"]["stats"]["summary"]["totalLinesProcessed"].is_u64(),
        "{body}"
    );
    json!({
        "resultType": body["data"]["resultType"],
        "result": body["data"]["result"],
    })
}

#[tokio::test]
async fn logql_golden_cases() {
    let mut golden: Json = serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    let f = fixture(&golden).await;
    let bless = std::env::var("TRIAD_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let n = golden["cases"].as_array().unwrap().len();
    for i in 0..n {
        let got = answer(&f, &golden["cases"][i]).await;
        let case = &mut golden["cases"][i];
        if bless {
            case["expect"] = got;
        } else if case["expect"] != got {
            failures.push(format!(
                "{}: {}\n  expected {}\n  got      {}",
                case["name"], case["query"], case["expect"], got
            ));
        }
    }
    if bless {
        std::fs::write(
            GOLDEN,
            serde_json::to_string_pretty(&golden).unwrap() + "\n",
        )
        .unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn labels_series_stats_and_volume() {
    let golden: Json = serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    let f = fixture(&golden).await;
    let range = [("start", "1700000000"), ("end", "1700000011")];
    let (s, b) = f.get(&uri("/loki/api/v1/labels", &range)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["data"],
        json!([
            "host",
            "level",
            "region",
            "service_name",
            "source",
            "trace_id"
        ])
    );
    let (_, b) = f
        .get(&uri("/loki/api/v1/label/service_name/values", &range))
        .await;
    assert_eq!(b["data"], json!(["api", "db", "web"]));
    let (_, b) = f
        .get(&uri("/loki/api/v1/label/region/values", &range))
        .await;
    assert_eq!(b["data"], json!(["eu", "us"]));
    let mut with_query = range.to_vec();
    with_query.push(("query", r#"{service_name="api"}"#));
    let (_, b) = f
        .get(&uri("/loki/api/v1/label/host/values", &with_query))
        .await;
    assert_eq!(b["data"], json!(["h1", "h2"]));
    // Out of the range: nothing.
    let (_, b) = f
        .get(&uri(
            "/loki/api/v1/label/service_name/values",
            &[("start", "1600000000"), ("end", "1600000001")],
        ))
        .await;
    assert_eq!(b["data"], json!([]));

    let mut series = range.to_vec();
    series.push(("match[]", r#"{service_name="db"}"#));
    let (_, b) = f.get(&uri("/loki/api/v1/series", &series)).await;
    let sets = b["data"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{b}");
    assert!(sets.iter().all(|s| s["service_name"] == "db"));

    let mut stats = range.to_vec();
    stats.push(("query", r#"{service_name="db"}"#));
    let (_, b) = f.get(&uri("/loki/api/v1/index/stats", &stats)).await;
    let db_bytes: usize = records(&golden)
        .iter()
        .filter(|r| r.service == "db")
        .map(|r| r.body.len())
        .sum();
    assert_eq!(
        b,
        json!({"streams": 2, "chunks": 2, "bytes": db_bytes, "entries": 3})
    );

    let mut volume = range.to_vec();
    volume.push(("query", r#"{service_name=~".+"}"#));
    volume.push(("targetLabels", "service_name"));
    let (s, b) = f.get(&uri("/loki/api/v1/index/volume", &volume)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["resultType"], "vector");
    let result = b["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3, "{b}");
    assert_eq!(
        result[0]["metric"],
        json!({"service_name": "api"}),
        "the largest first"
    );
    let db = result
        .iter()
        .find(|r| r["metric"]["service_name"] == "db")
        .unwrap();
    assert_eq!(db["value"][1], json!(db_bytes.to_string()));
    volume.push(("step", "5s"));
    let (s, b) = f
        .get(&uri("/loki/api/v1/index/volume_range", &volume))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["resultType"], "matrix");

    let mut fields = range.to_vec();
    fields.push(("query", r#"{service_name=~"api|db"}"#));
    let (_, b) = f.get(&uri("/loki/api/v1/detected_fields", &fields)).await;
    let field = |name: &str| {
        b["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["label"] == name)
            .cloned()
            .unwrap_or(Json::Null)
    };
    assert_eq!(
        field("status"),
        json!({"label": "status", "type": "int", "cardinality": 4, "parsers": ["json"]})
    );
    assert_eq!(field("took")["type"], "duration");
    assert_eq!(field("size")["type"], "bytes");
    assert_eq!(field("rows")["parsers"], json!(["logfmt"]));
    assert_eq!(field("region")["parsers"], Json::Null);
    let (_, b) = f.get(&uri("/loki/api/v1/detected_labels", &range)).await;
    assert!(
        b["detectedLabels"]
            .as_array()
            .unwrap()
            .contains(&json!({"label": "service_name", "cardinality": 3})),
        "{b}"
    );

    let (s, b) = f.get("/loki/api/v1/status/buildinfo").await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["version"].is_string());
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let golden: Json = serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    let f = fixture(&golden).await;
    for (path, params, want) in [
        (
            "/loki/api/v1/query_range",
            vec![("query", "{service_name=\"api\"")],
            "parse error",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", "{}")],
            "at least one",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", "{a=\"b\"}"), ("limit", "100000")],
            "max entries limit",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", "{a=\"b\"}"), ("start", "soon")],
            "invalid start",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", "{a=\"b\"}"), ("direction", "sideways")],
            "invalid direction",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", "rate({a=\"b\"}[1m])"), ("step", "0")],
            "invalid step",
        ),
        (
            "/loki/api/v1/query",
            vec![("query", "{a=\"b\"}")],
            "range query type",
        ),
        ("/loki/api/v1/query", vec![], "missing"),
        ("/loki/api/v1/series", vec![], "match[]"),
        (
            "/loki/api/v1/index/stats",
            vec![("query", "rate({a=\"b\"}[1m])")],
            "log selector",
        ),
    ] {
        let (s, b) = f.get(&uri(path, &params)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {params:?}: {b}");
        let text = b.as_str().unwrap_or_default();
        assert!(text.contains(want), "{path} {params:?}: {text}");
    }
    let (s, b) = f.get("/loki/api/v1/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["error"].is_string());
}

/// Lines are read in pages walking the range; runs of lines with one timestamp that
/// cross a page (and one larger than a page) are read whole and once.
#[tokio::test]
async fn pages_keep_every_line_once() {
    let base = 1_700_000_000_000_000_000i64;
    let mut recs = Vec::new();
    for i in 0..4_500i64 {
        // Runs of 7 lines per millisecond, and 1,500 lines in one nanosecond.
        let ts = if (2_000..3_500).contains(&i) {
            base + 400_000_000
        } else {
            base + (i / 7) * 1_000_000
        };
        recs.push(LogRecord {
            tenant: "default".into(),
            timestamp_ns: ts,
            observed_ns: ts,
            severity_text: "info".into(),
            severity_number: 0,
            body: format!("line {i}"),
            service: "bulk".into(),
            host: "h".into(),
            trace_id: None,
            span_id: None,
            source: "s".into(),
            attributes: Vec::new(),
        });
    }
    let g = fixture_with(recs).await;
    let (_, b) = g
        .get(&uri(
            "/loki/api/v1/query",
            &[
                (
                    "query",
                    r#"sum(count_over_time({service_name="bulk"}[1h]))"#,
                ),
                ("time", "1700000001"),
            ],
        ))
        .await;
    assert_eq!(b["data"]["result"][0]["value"][1], "4500", "{b}");
    for direction in ["forward", "backward"] {
        let (_, b) = g
            .get(&uri(
                "/loki/api/v1/query_range",
                &[
                    ("query", r#"{service_name="bulk"} != "never""#),
                    ("start", "1700000000"),
                    ("end", "1700000001"),
                    ("limit", "1000"),
                    ("direction", direction),
                ],
            ))
            .await;
        let values: Vec<(i64, String)> = b["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().clone())
            .map(|v| {
                (
                    v[0].as_str().unwrap().parse().unwrap(),
                    v[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(values.len(), 1000, "{direction}");
        let distinct: std::collections::BTreeSet<&String> = values.iter().map(|v| &v.1).collect();
        assert_eq!(distinct.len(), 1000, "{direction}: a line twice");
        let sorted = values.windows(2).all(|w| {
            if direction == "forward" {
                w[0].0 <= w[1].0
            } else {
                w[0].0 >= w[1].0
            }
        });
        assert!(sorted, "{direction}: out of order");
    }
}

/// The index reads only the lines that can match; a filter on part of a word longer
/// than the index keeps whole still finds it.
#[tokio::test]
async fn the_index_narrows_and_long_words_are_still_found() {
    let golden: Json = serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    let mut recs = records(&golden);
    let blob = format!("token={}END", "Ab0".repeat(100));
    let mut long = recs[0].clone();
    long.body = blob.clone();
    long.service = "blob".into();
    recs.push(long);
    let f = fixture_with(recs).await;
    let lines_read = |b: &Json| {
        b["data"]["stats"]["summary"]["totalLinesProcessed"]
            .as_u64()
            .unwrap()
    };
    let range = [("start", "1700000000"), ("end", "1700000011")];
    for (query, found, read) in [
        // The line with the word, and the one with a long word (which might contain it).
        (r#"{service_name=~".+"} |= "refused""#, 1, 2),
        (r#"{service_name=~".+"} |= "efuse""#, 1, 2),
        (r#"{service_name=~".+"} |= "connection refused""#, 1, 2),
        (r#"{service_name=~".+"} |~ "(?i)REFUSED""#, 1, 2),
        // The word is there, the spaces around it are not.
        (r#"{service_name=~".+"} |= " refused ""#, 0, 1),
        (r#"{service_name="api"} |= "cart" or "checkout""#, 4, 4),
        // A part of the 303-byte word.
        (r#"{service_name=~".+"} |= "0Ab0Ab0END""#, 1, 1),
        (r#"{service_name=~".+"} |= "token=Ab0""#, 1, 1),
        // Nothing the index can use: every line is read.
        (r#"{service_name=~".+"} |~ "ref.sed""#, 1, 11),
    ] {
        let mut params = range.to_vec();
        params.push(("query", query));
        let (s, b) = f.get(&uri("/loki/api/v1/query_range", &params)).await;
        assert_eq!(s, StatusCode::OK, "{query}: {b}");
        let n: usize = b["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["values"].as_array().unwrap().len())
            .sum();
        assert_eq!((n, lines_read(&b)), (found, read), "{query}");
    }
}
