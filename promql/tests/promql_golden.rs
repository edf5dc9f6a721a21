//! Golden PromQL tests: the series of `tests/promql/cases.test` are loaded into Triad's
//! real TSDB, every `eval` runs through Triad's engine, and the answers must equal those
//! Prometheus 2.42 gave (`tests/promql/expected.json`, made by
//! `scripts/promql-golden.py`). Values agree to 1e-9 relative; NaN equals NaN.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use triad_model::metric::Labels;
use triad_promql::format::result_json;
use triad_promql::{Engine, EvalError, Limits};
use triad_tsdb::metric_store::MetricStore;
use triad_tsdb::{AppendBatch, TsdbOptions};

fn dur_ms(s: &str) -> i64 {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).expect("unit"));
    let n: i64 = num.parse().expect("number");
    n * match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => panic!("unit {other}"),
    }
}

fn parse_value(tok: &str) -> f64 {
    match tok {
        "Inf" | "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        t => t.parse().unwrap_or_else(|_| panic!("value {t}")),
    }
}

/// Expands `load` notation: numbers, `_`, `_xN`, `a+bxN`, `a-bxN`.
fn expand(tokens: &[&str]) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for tok in tokens {
        if *tok == "_" {
            out.push(None);
        } else if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(None, n.parse().expect("count")));
        } else if let Some((head, count)) = tok.rsplit_once('x') {
            let count: usize = count.parse().expect("count");
            // The operator is the last + or - not at the start and not after an 'e'.
            let bytes = head.as_bytes();
            let pos = (1..bytes.len())
                .rev()
                .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && bytes[i - 1] != b'e')
                .expect("operator");
            let start = parse_value(&head[..pos]);
            let mut step = parse_value(&head[pos + 1..]);
            if bytes[pos] == b'-' {
                step = -step;
            }
            out.extend((0..=count).map(|i| Some(start + i as f64 * step)));
        } else {
            out.push(Some(parse_value(tok)));
        }
    }
    out
}

fn parse_labels(name: &str, text: &str) -> Labels {
    let mut pairs = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".to_string(), name.to_string()));
    }
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut rest = inner;
    while let Some(eq) = rest.find('=') {
        let n = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let open = after.find('"').expect("quote");
        let mut end = open + 1;
        let b = after.as_bytes();
        while b[end] != b'"' {
            end += if b[end] == b'\\' { 2 } else { 1 };
        }
        pairs.push((n, after[open + 1..end].to_string()));
        rest = &after[end + 1..];
    }
    Labels::new(pairs)
}

fn load_cases(store: &MetricStore) {
    let text = include_str!("promql/cases.test");
    let mut interval = None;
    let mut batch = AppendBatch::default();
    for line in text.lines() {
        let s = line.trim();
        if s.starts_with("load ") {
            interval = Some(dur_ms(s.split_whitespace().nth(1).expect("interval")));
            continue;
        }
        if s.is_empty() || s.starts_with('#') || s.starts_with("eval ") {
            if !line.starts_with("  ") {
                interval = None;
            }
            continue;
        }
        let Some(step) = interval else { continue };
        let (series, values) = match s.find('}') {
            Some(close) => (&s[..=close], s[close + 1..].trim()),
            None => s.split_once(' ').expect("series and values"),
        };
        let (name, labels) = match series.find('{') {
            Some(open) => (&series[..open], &series[open..]),
            None => (series, "{}"),
        };
        let labels = parse_labels(name, labels);
        let tokens: Vec<&str> = values.split_whitespace().collect();
        for (i, v) in expand(&tokens).into_iter().enumerate() {
            if let Some(v) = v {
                batch.samples.push((labels.clone(), i as i64 * step, v));
            }
        }
    }
    store.append("default", &batch, false).expect("append");
}

fn values_equal(a: &Json, b: &Json) -> bool {
    let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
        return a == b;
    };
    let parse = |s: &str| match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().unwrap_or(f64::NAN),
    };
    let (x, y) = (parse(a), parse(b));
    if x.is_nan() || y.is_nan() {
        return x.is_nan() && y.is_nan();
    }
    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x - y).abs() < 1e-12
}

fn sample_eq(a: &Json, b: &Json) -> bool {
    a[0] == b[0] && values_equal(&a[1], &b[1])
}

/// Compares results; `ordered` when the order is part of the answer.
fn results_equal(want: &Json, got: &Json, ordered: bool) -> bool {
    if want["resultType"] != got["resultType"] {
        return false;
    }
    let kind = want["resultType"].as_str().unwrap_or("");
    let (w, g) = (&want["result"], &got["result"]);
    match kind {
        "scalar" | "string" => sample_eq(w, g),
        "vector" | "matrix" => {
            let (Some(w), Some(g)) = (w.as_array(), g.as_array()) else {
                return false;
            };
            if w.len() != g.len() {
                return false;
            }
            let key = |x: &Json| x["metric"].to_string();
            let same = |a: &Json, b: &Json| {
                if key(a) != key(b) {
                    return false;
                }
                if kind == "vector" {
                    return sample_eq(&a["value"], &b["value"]);
                }
                let (Some(av), Some(bv)) = (a["values"].as_array(), b["values"].as_array()) else {
                    return false;
                };
                av.len() == bv.len() && av.iter().zip(bv).all(|(x, y)| sample_eq(x, y))
            };
            let gm: BTreeMap<String, &Json> = g.iter().map(|x| (key(x), x)).collect();
            let same_set = w
                .iter()
                .all(|a| gm.get(&key(a)).is_some_and(|b| same(a, b)));
            // Ordered: the values come in the same order. Among equal values (NaNs
            // included) the order is the sort algorithm's, not part of the answer.
            same_set
                && (!ordered
                    || w.iter()
                        .zip(g)
                        .all(|(a, b)| values_equal(&a["value"][1], &b["value"][1])))
        }
        _ => false,
    }
}

fn error_type(e: &EvalError) -> &'static str {
    match e {
        EvalError::BadData(_) => "bad_data",
        EvalError::Execution(_) | EvalError::TooManySamples(_) => "execution",
        EvalError::Timeout(_) => "timeout",
        EvalError::Storage(_) => "internal",
    }
}

#[test]
fn promql_matches_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry = prometheus_client::registry::Registry::default();
    let store = MetricStore::open(dir.path(), TsdbOptions::default(), &mut registry).expect("open");
    load_cases(&store);
    let expected: Json =
        serde_json::from_str(include_str!("promql/expected.json")).expect("expected.json");
    let engine = Engine::new(&store, "default", Limits::default());
    let cases = expected["cases"].as_array().expect("cases");
    assert!(cases.len() > 100, "the golden file lost its cases");
    let mut failures = Vec::new();
    for case in cases {
        let query = case["query"].as_str().expect("query");
        let got = match case["kind"].as_str() {
            Some("instant") => engine
                .instant(query, case["time_ms"].as_i64().expect("time"))
                .map(|v| result_json(&v)),
            _ => engine
                .range(
                    query,
                    case["start_ms"].as_i64().expect("start"),
                    case["end_ms"].as_i64().expect("end"),
                    case["step_ms"].as_i64().expect("step"),
                )
                .map(|m| result_json(&triad_promql::QueryValue::Matrix(m))),
        };
        let want = &case["response"];
        // Order is part of the answer where Prometheus keeps the evaluation's order:
        // sort and sort_desc, and topk/bottomk of an instant query (largest first per
        // group for topk, smallest first for bottomk).
        let ordered = query.starts_with("sort")
            || (case["kind"] == "instant"
                && (query.starts_with("topk") || query.starts_with("bottomk")));
        let ok = match (&got, want["status"].as_str()) {
            (Ok(g), Some("success")) => results_equal(&want["data"], g, ordered),
            (Err(e), Some("error")) => want["errorType"] == error_type(e),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{} {query}\n  prometheus: {}\n  triad:      {}",
                case["kind"].as_str().unwrap_or(""),
                want,
                match &got {
                    Ok(g) => g.to_string(),
                    Err(e) => format!("error {}: {e}", error_type(e)),
                }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Prometheus:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
