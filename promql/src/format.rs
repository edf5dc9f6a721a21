//! Prometheus' JSON shapes for query results.
//!
//! Results are serialized straight into the response: a JSON tree of a range query's
//! result (an array, a number and a string per sample) cost more than evaluating it.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};
use serde_json::Value as Json;
use triad_model::metric::Labels;

use super::eval::QueryValue;
use super::format_value;

/// A timestamp (ms) as Prometheus writes it: seconds, with a fraction only when needed.
pub fn time_json(t_ms: i64) -> Json {
    serde_json::to_value(Time(t_ms)).unwrap_or(Json::Null)
}

/// A label set as a JSON object.
pub fn labels_json(labels: &Labels) -> Json {
    serde_json::to_value(LabelsJson(labels)).unwrap_or(Json::Null)
}

/// A timestamp in ms, serialized as seconds.
struct Time(i64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

/// A label set as a JSON object.
pub struct LabelsJson<'a>(pub &'a Labels);

impl Serialize for LabelsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, v) in self.0.iter() {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

/// A sample value as Prometheus writes it (a string: `"1.5"`, `"NaN"`, `"+Inf"`).
struct ValueText(f64);

impl Serialize for ValueText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            // Shortest round-trip digits without an exponent, as Go's 'f', -1; no
            // String in between.
            s.collect_str(&v)
        } else {
            s.serialize_str(&format_value(v))
        }
    }
}

/// `[time, "value"]`.
struct Sample(i64, f64);

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Time(self.0))?;
        t.serialize_element(&ValueText(self.1))?;
        t.end()
    }
}

/// The `data` object of a query response: `{resultType, result}`.
pub struct ResultJson<'a>(pub &'a QueryValue);

impl Serialize for ResultJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match self.0 {
            QueryValue::Scalar(t, v) => {
                m.serialize_entry("resultType", "scalar")?;
                m.serialize_entry("result", &Sample(*t, *v))?;
            }
            QueryValue::String(t, v) => {
                m.serialize_entry("resultType", "string")?;
                m.serialize_entry("result", &(Time(*t), v))?;
            }
            QueryValue::Vector(samples) => {
                m.serialize_entry("resultType", "vector")?;
                m.serialize_entry("result", &VectorJson(samples))?;
            }
            QueryValue::Matrix(series) => {
                m.serialize_entry("resultType", "matrix")?;
                m.serialize_entry("result", &MatrixJson(series))?;
            }
        }
        m.end()
    }
}

struct VectorJson<'a>(&'a [(Labels, i64, f64)]);

impl Serialize for VectorJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (labels, t, v) in self.0 {
            seq.serialize_element(&VectorSample(labels, *t, *v))?;
        }
        seq.end()
    }
}

struct VectorSample<'a>(&'a Labels, i64, f64);

impl Serialize for VectorSample<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &LabelsJson(self.0))?;
        m.serialize_entry("value", &Sample(self.1, self.2))?;
        m.end()
    }
}

struct MatrixJson<'a>(&'a [triad_model::metric::SeriesSamples]);

impl Serialize for MatrixJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for series in self.0 {
            seq.serialize_element(&MatrixSeries(series))?;
        }
        seq.end()
    }
}

struct MatrixSeries<'a>(&'a triad_model::metric::SeriesSamples);

impl Serialize for MatrixSeries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &LabelsJson(&self.0.labels))?;
        m.serialize_entry("values", &Samples(&self.0.samples))?;
        m.end()
    }
}

struct Samples<'a>(&'a [(i64, f64)]);

impl Serialize for Samples<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (t, v) in self.0 {
            seq.serialize_element(&Sample(*t, *v))?;
        }
        seq.end()
    }
}

/// The `data` object of a query response as a JSON tree (for callers that embed it).
pub fn result_json(v: &QueryValue) -> Json {
    serde_json::to_value(ResultJson(v)).unwrap_or(Json::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use triad_model::metric::SeriesSamples;

    #[test]
    fn results_have_prometheus_shapes() {
        let l = Labels::new(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), "a\"b".into()),
        ]);
        let m = QueryValue::Matrix(vec![SeriesSamples {
            labels: l.clone(),
            samples: vec![
                (1000, 1.5),
                (1500, f64::NAN),
                (2000, f64::INFINITY),
                (3000, -0.0),
                (4000, 1e21),
                (5000, 1e-7),
            ],
        }]);
        assert_eq!(
            result_json(&m),
            json!({"resultType": "matrix", "result": [{
                "metric": {"__name__": "up", "job": "a\"b"},
                "values": [[1, "1.5"], [1.5, "NaN"], [2, "+Inf"], [3, "-0"],
                           [4, "1000000000000000000000"], [5, "0.0000001"]],
            }]})
        );
        assert_eq!(
            result_json(&QueryValue::Vector(vec![(l, 1000, 2.0)])),
            json!({"resultType": "vector", "result": [{
                "metric": {"__name__": "up", "job": "a\"b"}, "value": [1, "2"]}]})
        );
        assert_eq!(
            result_json(&QueryValue::Scalar(1234, -1.0)),
            json!({"resultType": "scalar", "result": [1.234, "-1"]})
        );
        assert_eq!(
            result_json(&QueryValue::String(0, "x".into())),
            json!({"resultType": "string", "result": [0, "x"]})
        );
    }
}
