//! Typed attribute values, mirroring OTLP's `AnyValue`.

use serde::{Deserialize, Serialize};

/// An attribute value. Kept typed (not JSON) so that Jaeger tags keep their types and
/// the binary storage encoding stays compact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// UTF-8 text.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An ordered list.
    Array(Vec<Value>),
    /// A nested map.
    Map(Vec<KeyValue>),
    /// No value (OTLP's empty `AnyValue`).
    Empty,
}

/// A key with its [`Value`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Attribute name, e.g. `http.status_code`.
    pub key: String,
    /// Attribute value.
    pub value: Value,
}

impl KeyValue {
    /// Convenience constructor.
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

impl Value {
    /// The value as JSON (bytes become lowercase hex text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Str(s) => J::String(s.clone()),
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Double(d) => serde_json::Number::from_f64(*d)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Bytes(b) => J::String(hex::encode(b)),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Map(m) => attributes_to_json(m),
            Value::Empty => J::Null,
        }
    }

    /// Builds a typed value from JSON; objects become maps, `null` becomes [`Value::Empty`].
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Empty,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value rendered as text the way Jaeger and log UIs show it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bytes(b) => hex::encode(b),
            Value::Empty => String::new(),
            Value::Array(_) | Value::Map(_) => self.to_json().to_string(),
        }
    }
}

/// Attributes as a JSON object. A later duplicate key overwrites an earlier one.
pub fn attributes_to_json(attrs: &[KeyValue]) -> serde_json::Value {
    let map = attrs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.to_json()))
        .collect::<serde_json::Map<_, _>>();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_types() {
        let j = serde_json::json!({"a": 1, "b": 1.5, "c": "x", "d": [true, null], "e": {"f": -2}});
        let v = Value::from_json(&j);
        assert_eq!(v.to_json(), j);
        assert_eq!(Value::Int(7).to_text(), "7");
        assert_eq!(Value::Double(f64::NAN).to_json(), serde_json::Value::Null);
    }
}
