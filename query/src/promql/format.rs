//! Prometheus' JSON shapes for query results.

use serde_json::{Value as Json, json};
use triad_model::metric::Labels;

use super::eval::QueryValue;
use super::format_value;

/// A timestamp (ms) as Prometheus writes it: seconds, with a fraction only when needed.
pub fn time_json(t_ms: i64) -> Json {
    if t_ms % 1000 == 0 {
        Json::from(t_ms / 1000)
    } else {
        serde_json::Number::from_f64(t_ms as f64 / 1000.0)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

/// A label set as a JSON object.
pub fn labels_json(labels: &Labels) -> Json {
    Json::Object(
        labels
            .iter()
            .map(|(n, v)| (n.to_string(), Json::from(v)))
            .collect(),
    )
}

/// `[time, "value"]`.
pub fn sample_json(t_ms: i64, v: f64) -> Json {
    json!([time_json(t_ms), format_value(v)])
}

/// The `data` object of a query response: `{resultType, result}`.
pub fn result_json(v: &QueryValue) -> Json {
    match v {
        QueryValue::Scalar(t, v) => json!({"resultType": "scalar", "result": sample_json(*t, *v)}),
        QueryValue::String(t, s) => json!({"resultType": "string", "result": [time_json(*t), s]}),
        QueryValue::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|(l, t, v)| json!({
                "metric": labels_json(l),
                "value": sample_json(*t, *v),
            })).collect::<Vec<_>>(),
        }),
        QueryValue::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| json!({
                "metric": labels_json(&s.labels),
                "values": s.samples.iter().map(|(t, v)| sample_json(*t, *v)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    }
}
