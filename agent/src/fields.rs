//! Mapping of a JSON log line onto the log model: the field names DESIGN.md lists are
//! recognised with no configuration; everything else is kept as attributes.

use serde_json::Value as J;
use triad_model::{KeyValue, LogRecord, SpanId, TraceId, Value};

const TIME_KEYS: [&str; 5] = ["timestamp", "ts", "time", "@timestamp", "asctime"];
const LEVEL_KEYS: [&str; 4] = ["level", "severity", "lvl", "levelname"];
const MESSAGE_KEYS: [&str; 3] = ["message", "msg", "event"];
const TRACE_KEYS: [&str; 4] = ["trace_id", "traceId", "traceID", "otelTraceID"];
const SPAN_KEYS: [&str; 3] = ["span_id", "spanId", "otelSpanID"];
const SERVICE_KEYS: [&str; 3] = ["service", "service.name", "service_name"];

/// What the agent knows about a line besides its text.
#[derive(Debug, Clone, Default)]
pub struct LineContext {
    /// Tenant to file the record under.
    pub tenant: String,
    /// The file the line came from.
    pub source: String,
    /// Host name of the agent.
    pub host: String,
    /// Attributes added to every record of this file (static labels, Kubernetes metadata).
    pub attributes: Vec<KeyValue>,
}

/// Builds a record from one complete line of text. JSON objects are mapped field by
/// field; anything else (including invalid JSON) becomes the body whole: a line is never
/// dropped. `observed_ns` is when the agent read it, and the timestamp when the line has
/// none.
pub fn record_from_text(text: &str, ctx: &LineContext, observed_ns: i64) -> LogRecord {
    record_from_text_checked(text, ctx, observed_ns).0
}

/// [`record_from_text`], also telling whether the line looked like a JSON object
/// (it starts with `{`) but did not parse as one: a parse error worth counting.
pub fn record_from_text_checked(
    text: &str,
    ctx: &LineContext,
    observed_ns: i64,
) -> (LogRecord, bool) {
    let mut broken_json = false;
    let mut rec = LogRecord {
        tenant: ctx.tenant.clone(),
        timestamp_ns: observed_ns,
        observed_ns,
        severity_text: String::new(),
        severity_number: 0,
        body: String::new(),
        service: String::new(),
        host: ctx.host.clone(),
        trace_id: None,
        span_id: None,
        source: ctx.source.clone(),
        attributes: ctx.attributes.clone(),
    };
    let trimmed = text.trim_end_matches(['\r', '\n']);
    match parse_object(trimmed) {
        Some(obj) => apply_fields(&mut rec, obj, trimmed),
        None => {
            broken_json = trimmed.trim_start().starts_with('{');
            rec.body = trimmed.to_string();
        }
    }
    if rec.service.is_empty() {
        // As the OTel SDKs do with no service name; on Kubernetes, the container's name.
        rec.service = rec
            .attributes
            .iter()
            .find(|kv| kv.key == "k8s.container.name")
            .and_then(|kv| match &kv.value {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| triad_model::otlp::UNKNOWN_SERVICE.to_string());
    }
    (rec, broken_json)
}

/// A JSON value deserialized straight into the model's [`Value`]: no intermediate
/// `serde_json::Value`, objects keep their document order.
struct ModelValue(Value);

impl<'de> serde::Deserialize<'de> for ModelValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ModelValueVisitor).map(ModelValue)
    }
}

struct ModelValueVisitor;

impl<'de> serde::de::Visitor<'de> for ModelValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Double(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Empty)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Empty)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(ModelValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, ModelValue(v))) = map.next_entry::<String, ModelValue>()? {
            out.push(KeyValue::new(k, v));
        }
        Ok(Value::Map(out))
    }
}

/// The fields of a JSON object line, in document order.
type Entries = Vec<KeyValue>;

fn parse_object(text: &str) -> Option<Entries> {
    let t = text.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    match serde_json::from_str::<ModelValue>(t) {
        Ok(ModelValue(Value::Map(m))) => Some(m),
        _ => None,
    }
}

/// Removes and returns the field with the first of `keys` (in priority order) present.
fn take(obj: &mut Entries, keys: &[&str]) -> Option<Value> {
    keys.iter().find_map(|k| {
        let i = obj.iter().position(|kv| kv.key == *k)?;
        Some(obj.remove(i).value)
    })
}

/// A value as text: strings as they are, anything else as JSON.
fn text_of(v: Value) -> String {
    match v {
        Value::Str(s) => s,
        Value::Empty => "null".to_string(),
        other => other.to_text(),
    }
}

fn apply_fields(rec: &mut LogRecord, mut obj: Entries, raw: &str) {
    if let Some(ts) = take(&mut obj, &TIME_KEYS) {
        let plausible = |ns: i64| {
            (triad_model::otlp::MIN_VALID_NS
                ..=rec
                    .observed_ns
                    .saturating_add(triad_model::otlp::MAX_FUTURE_SKEW_NS))
                .contains(&ns)
        };
        match timestamp_of_value(&ts) {
            Some(ns) if plausible(ns) => rec.timestamp_ns = ns,
            // Unparseable or absurd (a collector would refuse it): keep it as an
            // attribute, so nothing the application wrote is lost.
            _ => rec.attributes.push(KeyValue::new("timestamp.unparsed", ts)),
        }
    }
    if let Some(level) = take(&mut obj, &LEVEL_KEYS) {
        let (text, number) = level_of_value(level);
        rec.severity_text = text;
        rec.severity_number = number;
    }
    match take(&mut obj, &MESSAGE_KEYS) {
        Some(v) => rec.body = text_of(v),
        // A JSON line without a message: its whole text stays searchable as the body.
        None => rec.body = raw.to_string(),
    }
    if let Some(v) = take(&mut obj, &TRACE_KEYS) {
        match &v {
            Value::Str(s) => match TraceId::from_hex(s) {
                Ok(t) => rec.trace_id = Some(t),
                Err(_) => rec.attributes.push(KeyValue::new("trace_id.invalid", v)),
            },
            _ => rec.attributes.push(KeyValue::new("trace_id.invalid", v)),
        }
    }
    if let Some(v) = take(&mut obj, &SPAN_KEYS) {
        match &v {
            Value::Str(s) => match SpanId::from_hex(s) {
                Ok(id) => rec.span_id = Some(id),
                Err(_) => rec.attributes.push(KeyValue::new("span_id.invalid", v)),
            },
            _ => rec.attributes.push(KeyValue::new("span_id.invalid", v)),
        }
    }
    if let Some(v) = take(&mut obj, &SERVICE_KEYS) {
        match v {
            Value::Str(s) => rec.service = s,
            other => rec.attributes.push(KeyValue::new("service", other)),
        }
    }
    rec.attributes.extend(obj);
}

fn timestamp_of_value(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => epoch_to_ns(*i as f64),
        Value::Double(d) => epoch_to_ns(*d),
        Value::Str(s) => timestamp_of_str(s),
        _ => None,
    }
}

fn level_of_value(v: Value) -> (String, i32) {
    match v {
        Value::Str(s) => {
            let n = severity_number(&s);
            (s, n)
        }
        Value::Int(n) => level_of_number(n),
        Value::Double(d) => level_of_number(d as i64),
        other => (text_of(other), 0),
    }
}

fn level_of_number(n: i64) -> (String, i32) {
    let (text, num) = match n {
        ..=10 => ("trace", 1),
        11..=20 => ("debug", 5),
        21..=30 => ("info", 9),
        31..=40 => ("warn", 13),
        41..=50 => ("error", 17),
        _ => ("fatal", 21),
    };
    (text.to_string(), num)
}

/// Parses the usual timestamp spellings: RFC 3339 (`Z` or offset), `YYYY-MM-DD
/// HH:MM:SS[.,fff]` (Python's asctime, taken as UTC), and Unix epochs as numbers or
/// numeric strings in seconds, milliseconds, microseconds or nanoseconds (told apart by
/// magnitude).
pub fn parse_timestamp(v: &J) -> Option<i64> {
    match v {
        J::Number(n) => epoch_to_ns(n.as_f64()?),
        J::String(s) => timestamp_of_str(s),
        _ => None,
    }
}

/// [`parse_timestamp`] of text.
pub fn timestamp_of_str(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(f) = s.parse::<f64>() {
        return epoch_to_ns(f);
    }
    parse_text_time(s)
}

fn epoch_to_ns(v: f64) -> Option<i64> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let scale: i64 = if v < 1e11 {
        1_000_000_000 // seconds (until year 5138)
    } else if v < 1e14 {
        1_000_000 // milliseconds
    } else if v < 1e17 {
        1_000 // microseconds
    } else {
        1 // nanoseconds
    };
    if v >= i64::MAX as f64 / scale as f64 {
        return None;
    }
    // Whole and fractional parts apart: `1700000000.25 * 1e9` in f64 is off by ~100 ns.
    let whole = v.trunc();
    let frac = ((v - whole) * scale as f64).round() as i64;
    Some(whole as i64 * scale + frac)
}

fn parse_text_time(s: &str) -> Option<i64> {
    let to_ns = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as i64)
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return to_ns(t);
    }
    // RFC 3339 with a numeric offset, which humantime does not take: shift to UTC.
    if s.len() > 6 && s.is_char_boundary(s.len() - 6) {
        let (head, tail) = s.split_at(s.len() - 6);
        let b = tail.as_bytes();
        if (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
            let hours: i64 = tail[1..3].parse().ok()?;
            let mins: i64 = tail[4..6].parse().ok()?;
            let sign = if b[0] == b'+' { 1 } else { -1 };
            let local = to_ns(humantime::parse_rfc3339_weak(head).ok()?)?;
            return Some(local - sign * (hours * 3600 + mins * 60) * 1_000_000_000);
        }
    }
    // Python logging's asctime uses a comma before the milliseconds.
    if s.contains(',') {
        return to_ns(humantime::parse_rfc3339_weak(&s.replacen(',', ".", 1)).ok()?);
    }
    None
}

/// The level as written and its OTLP severity number. Numbers are read as pino/bunyan
/// levels (10 trace … 60 fatal).
pub fn parse_level(v: &J) -> (String, i32) {
    match v {
        J::String(s) => (s.clone(), severity_number(s)),
        J::Number(n) => level_of_number(n.as_i64().unwrap_or(0)),
        other => (other.to_string(), 0),
    }
}

fn severity_number(level: &str) -> i32 {
    match triad_model::normalise_level(level).as_ref() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBSERVED: i64 = 1_700_000_000_000_000_000;

    fn ctx() -> LineContext {
        LineContext {
            tenant: "t".into(),
            source: "/var/log/app.log".into(),
            host: "h".into(),
            attributes: vec![],
        }
    }

    fn attr<'a>(r: &'a LogRecord, k: &str) -> Option<&'a Value> {
        r.attributes.iter().find(|a| a.key == k).map(|a| &a.value)
    }

    #[test]
    fn maps_the_usual_field_names() {
        let line = r#"{"ts":"2023-11-14T22:13:20.5Z","lvl":"WARNING","msg":"disk low","traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","service.name":"db","disk":"/dev/sda","pct":91}"#;
        let r = record_from_text(line, &ctx(), OBSERVED);
        assert_eq!(r.timestamp_ns, 1_700_000_000_500_000_000);
        assert_eq!(r.observed_ns, OBSERVED);
        assert_eq!(
            (r.severity_text.as_str(), r.severity_number),
            ("WARNING", 13)
        );
        assert_eq!(r.level(), "warn");
        assert_eq!(r.body, "disk low");
        assert_eq!(
            r.trace_id.unwrap().to_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(r.span_id.unwrap().to_hex(), "00f067aa0ba902b7");
        assert_eq!(r.service, "db");
        assert_eq!(attr(&r, "pct"), Some(&Value::Int(91)));
        assert_eq!(attr(&r, "disk"), Some(&Value::Str("/dev/sda".into())));
        assert_eq!(
            (r.source.as_str(), r.host.as_str(), r.tenant.as_str()),
            ("/var/log/app.log", "h", "t")
        );
    }

    #[test]
    fn non_json_and_broken_json_are_kept_whole() {
        for line in [
            "plain text line",
            "{\"unterminated\": ",
            "[1,2,3]",
            "",
            "{\"a\":1} trailing",
        ] {
            let r = record_from_text(line, &ctx(), OBSERVED);
            assert_eq!(r.body, line);
            assert_eq!(r.timestamp_ns, OBSERVED);
        }
        let r = record_from_text("line with CRLF\r\n", &ctx(), OBSERVED);
        assert_eq!(r.body, "line with CRLF");
    }

    #[test]
    fn json_without_message_keeps_its_text_and_bad_ids_are_not_lost() {
        let line = r#"{"user":"ann","trace_id":"not-hex","time":"yesterday"}"#;
        let r = record_from_text(line, &ctx(), OBSERVED);
        assert_eq!(r.body, line);
        assert_eq!(r.trace_id, None);
        assert_eq!(
            attr(&r, "trace_id.invalid"),
            Some(&Value::Str("not-hex".into()))
        );
        assert_eq!(
            attr(&r, "timestamp.unparsed"),
            Some(&Value::Str("yesterday".into()))
        );
        assert_eq!(r.timestamp_ns, OBSERVED);
    }

    #[test]
    fn timestamps_in_every_usual_spelling() {
        let want = 1_700_000_000_000_000_000i64;
        for v in [
            serde_json::json!(1_700_000_000),
            serde_json::json!(1_700_000_000_000i64),
            serde_json::json!(1_700_000_000_000_000i64),
            serde_json::json!(want),
            serde_json::json!("1700000000"),
            serde_json::json!("2023-11-14T22:13:20Z"),
            serde_json::json!("2023-11-14T23:13:20+01:00"),
            serde_json::json!("2023-11-14T17:13:20-05:00"),
            serde_json::json!("2023-11-14 22:13:20"),
            serde_json::json!("2023-11-14 22:13:20,000"),
        ] {
            assert_eq!(parse_timestamp(&v), Some(want), "{v}");
        }
        assert_eq!(
            parse_timestamp(&serde_json::json!(1_700_000_000.25)),
            Some(want + 250_000_000)
        );
        assert_eq!(parse_timestamp(&serde_json::json!(-5)), None);
        assert_eq!(parse_timestamp(&serde_json::json!(true)), None);
    }

    #[test]
    fn regression_offset_split_inside_a_multibyte_character() {
        // Found by the decoder's property test: split_at(len - 6) panicked here.
        assert_eq!(
            parse_timestamp(&serde_json::json!("2023-11-14T22:13:20\u{fffd}")),
            None
        );
        assert_eq!(parse_timestamp(&serde_json::json!("ééééé")), None);
    }

    #[test]
    fn levels_as_text_and_numbers() {
        assert_eq!(parse_level(&serde_json::json!("err")), ("err".into(), 17));
        assert_eq!(parse_level(&serde_json::json!(30)), ("info".into(), 9));
        assert_eq!(parse_level(&serde_json::json!(50)), ("error".into(), 17));
        assert_eq!(
            parse_level(&serde_json::json!("custom")),
            ("custom".into(), 0)
        );
    }
}
