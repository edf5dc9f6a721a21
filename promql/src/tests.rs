use super::*;
use promql_parser::parser::Expr;
use triad_model::metric::stale_nan;
use triad_tsdb::metric_store::MetricStore;
use triad_tsdb::{AppendBatch, TsdbOptions};

fn store_with(samples: &[(&str, i64, f64)]) -> (tempfile::TempDir, MetricStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(
        dir.path(),
        TsdbOptions::default(),
        &mut prometheus_client::registry::Registry::default(),
    )
    .unwrap();
    let batch = AppendBatch {
        samples: samples
            .iter()
            .map(|(job, t, v)| {
                (
                    Labels::new(vec![
                        ("__name__".into(), "up".into()),
                        ("job".into(), job.to_string()),
                    ]),
                    *t,
                    *v,
                )
            })
            .collect(),
        ..Default::default()
    };
    store.append("default", &batch, false).unwrap();
    (dir, store)
}

#[test]
fn a_staleness_marker_ends_the_series_at_once() {
    let (_d, store) = store_with(&[
        ("a", 0, 1.0),
        ("a", 15_000, 1.0),
        ("a", 30_000, stale_nan()),
    ]);
    let e = Engine::new(&store, "default", Limits::default());
    let QueryValue::Vector(v) = e.instant("up", 29_000).unwrap() else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    let QueryValue::Vector(v) = e.instant("up", 31_000).unwrap() else {
        panic!()
    };
    assert!(
        v.is_empty(),
        "stale from the marker on, not after 5 minutes"
    );
    // Range functions ignore the marker itself.
    let QueryValue::Vector(v) = e.instant("count_over_time(up[1m])", 31_000).unwrap() else {
        panic!()
    };
    assert_eq!(v[0].2, 2.0);
}

#[test]
fn limits_give_prometheus_errors() {
    let samples: Vec<(&str, i64, f64)> = (0..1000).map(|i| ("a", i * 1000, i as f64)).collect();
    let (_d, store) = store_with(&samples);
    let limits = Limits {
        max_samples: 100,
        ..Limits::default()
    };
    let e = Engine::new(&store, "default", limits);
    let err = e.instant("sum_over_time(up[10m])", 999_000).unwrap_err();
    assert!(matches!(err, EvalError::TooManySamples(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    let e = Engine::new(
        &store,
        "default",
        Limits {
            timeout: std::time::Duration::ZERO,
            ..Limits::default()
        },
    );
    assert!(matches!(e.instant("up", 0), Err(EvalError::Timeout(_))));
    let e = Engine::new(&store, "default", Limits::default());
    assert!(matches!(e.instant("up{", 0), Err(EvalError::BadData(_))));
    assert!(matches!(
        e.range("up", 10, 0, 1),
        Err(EvalError::BadData(_))
    ));
    assert!(matches!(
        e.range("up", 0, 100_000_000, 1),
        Err(EvalError::BadData(_))
    ));
    assert!(matches!(
        e.range("up[5m]", 0, 10, 1),
        Err(EvalError::BadData(_))
    ));
}

#[test]
fn values_format_as_go_does() {
    assert_eq!(format_value(1.0), "1");
    assert_eq!(format_value(0.1), "0.1");
    assert_eq!(format_value(1e21), "1000000000000000000000");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(-0.0), "-0");
}

/// Regression: `holt_winters(` was renamed by a regex over the raw query text, so a
/// label value holding it changed the matcher; now the parser knows the name.
#[test]
fn regression_holt_winters_in_a_label_value_is_left_alone() {
    let expr = Engine::parse(r#"up{job="holt_winters("}"#).unwrap();
    let Expr::VectorSelector(vs) = expr else {
        panic!("{expr:?}");
    };
    let job = vs
        .matchers
        .matchers
        .iter()
        .find(|m| m.name == "job")
        .unwrap();
    assert_eq!(job.value, "holt_winters(");
    // The function itself still parses and evaluates under its 2.x name.
    let (_d, store) = store_with(&[("a", 0, 1.0), ("a", 15_000, 2.0), ("a", 30_000, 3.0)]);
    let engine = Engine::new(&store, "default", Limits::default());
    let v = engine
        .instant("holt_winters(up[1m], 0.5, 0.5)", 30_000)
        .unwrap();
    let QueryValue::Vector(series) = v else {
        panic!("{v:?}");
    };
    assert_eq!(series.len(), 1);
}

/// Regression: a number literal too large for a float was answered as +Inf (HTTP 200);
/// Prometheus refuses it as bad data. Strings and durations are not numbers.
#[test]
fn regression_overflowing_number_literal_is_bad_data() {
    let huge = "1".repeat(400);
    for q in [huge.as_str(), "1e400", "up + 2e999", "-1E+400"] {
        match Engine::parse(q) {
            Err(EvalError::BadData(m)) => assert!(m.contains("out of range"), "{q}: {m}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    let ok63 = "1".repeat(63);
    for q in [
        ok63.as_str(),
        "1e308",
        "Inf",
        r#"up{job="1e400"}"#,
        "rate(up[5m]) > 0x1F",
        "up offset 1h",
        "foo1e400",
        "# 1e400 is a comment\nup",
    ] {
        assert!(Engine::parse(q).is_ok(), "{q}");
    }
}
