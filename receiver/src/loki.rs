//! Loki's push API, `POST /loki/api/v1/push`, so Promtail, Alloy's `loki.write` and
//! Loki logging libraries send to Triad unchanged: snappy-compressed protobuf
//! (`logproto.PushRequest`, `Content-Type: application/x-protobuf`) or JSON
//! (`{"streams": [{"stream": {…}, "values": [["<ns>", "<line>", {…}]]}]}`, optionally
//! gzip-compressed). Answers 204 as Loki does.
//!
//! A stream's labels map onto the log model: the service from `service_name`,
//! `service`, `app`, `application`, `app_kubernetes_io_name`, `container` or `job` (the
//! first present, as Loki derives `service_name`), the level from `level`,
//! `detected_level`, `severity` or `lvl`, the host from `host`, `hostname` or
//! `node_name`; `namespace`, `pod` and `container` also become the Kubernetes resource
//! attributes; every label is kept as an attribute under its own name. Structured
//! metadata becomes record attributes, except `trace_id`/`traceID` and
//! `span_id`/`spanID`, which become the record's trace and span.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use triad_model::auth::Principal;

use crate::http::HttpState;

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    /// Streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: a label set (`{a="b"}`) and its entries.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    /// Labels, in Prometheus' text form.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// Entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// The labels' hash (unused).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    /// When.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Structured metadata.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPairAdapter {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Name-value pairs, in order.
pub type Pairs = Vec<(String, String)>;

/// A stream as both encodings give it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    /// Labels, in order.
    pub labels: Pairs,
    /// Entries: time (ns), line, structured metadata.
    pub entries: Vec<(i64, String, Pairs)>,
}

/// Parses Prometheus' label-set text, `{a="b", c="d\"e"}`.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let s = text.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| format!("labels {text:?} are not of the form {{name=\"value\", …}}"))?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(format!("labels {text:?}: expected name=\"value\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(format!(
                "labels {text:?}: the value of {name:?} is not quoted"
            ));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c) => value.push(c),
                    None => return Err(format!("labels {text:?}: unterminated value")),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("labels {text:?}: unterminated value")),
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Decodes a protobuf push (already snappy-decompressed).
pub fn from_protobuf(bytes: &[u8]) -> Result<Vec<Stream>, String> {
    let req = PushRequest::decode(bytes).map_err(|e| format!("malformed PushRequest: {e}"))?;
    req.streams
        .into_iter()
        .map(|s| {
            Ok(Stream {
                labels: parse_labels(&s.labels)?,
                entries: s
                    .entries
                    .into_iter()
                    .map(|e| {
                        let ts = e.timestamp.map_or(0, |t| {
                            t.seconds
                                .saturating_mul(1_000_000_000)
                                .saturating_add(t.nanos as i64)
                        });
                        let md = e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect();
                        (ts, e.line, md)
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Decodes a JSON push.
pub fn from_json(bytes: &[u8]) -> Result<Vec<Stream>, String> {
    use serde_json::Value as J;
    let doc: J = serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))?;
    let streams = doc
        .get("streams")
        .and_then(J::as_array)
        .ok_or("the body has no \"streams\" array")?;
    let mut out = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter().enumerate() {
        let labels = match s.get("stream") {
            Some(J::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    J::String(v) => Ok((k.clone(), v.clone())),
                    other => Err(format!("stream {i}: label {k:?} is {other}, not a string")),
                })
                .collect::<Result<Vec<_>, String>>()?,
            None => Vec::new(),
            Some(other) => return Err(format!("stream {i}: \"stream\" is {other}, not an object")),
        };
        let values = s
            .get("values")
            .and_then(J::as_array)
            .ok_or_else(|| format!("stream {i} has no \"values\" array"))?;
        let mut entries = Vec::with_capacity(values.len());
        for (j, v) in values.iter().enumerate() {
            let at = || format!("stream {i}, value {j}");
            let arr = v
                .as_array()
                .filter(|a| a.len() == 2 || a.len() == 3)
                .ok_or_else(|| {
                    format!("{}: want [\"<unix ns>\", \"<line>\"(, {{metadata}})]", at())
                })?;
            let ts = match &arr[0] {
                J::String(t) => t
                    .parse::<i64>()
                    .map_err(|_| format!("{}: time {t:?} is not ns", at()))?,
                other => return Err(format!("{}: time {other} is not a string of ns", at())),
            };
            let line = arr[1]
                .as_str()
                .ok_or_else(|| format!("{}: the line is not a string", at()))?
                .to_string();
            let md = match arr.get(2) {
                None | Some(J::Null) => Vec::new(),
                Some(J::Object(m)) => m
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            J::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
                Some(other) => return Err(format!("{}: metadata {other} is not an object", at())),
            };
            entries.push((ts, line, md));
        }
        out.push(Stream { labels, entries });
    }
    Ok(out)
}

fn str_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

const SERVICE_LABELS: &[&str] = &[
    "service_name",
    "service",
    "app",
    "application",
    "app_kubernetes_io_name",
    "container",
    "job",
];
const LEVEL_LABELS: &[&str] = &["level", "detected_level", "severity", "lvl"];
const HOST_LABELS: &[&str] = &["host", "hostname", "node_name"];

fn first<'a>(labels: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| {
        labels
            .iter()
            .find(|(k, v)| k == n && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

/// An ID from hex text (16-byte trace IDs from 32 digits, or 16 padded).
fn id_bytes(text: &str, len: usize) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.len() > len * 2 || t.is_empty() {
        return None;
    }
    let padded = format!("{t:0>width$}", width = len * 2);
    hex::decode(padded)
        .ok()
        .filter(|b| b.iter().any(|x| *x != 0))
}

/// Converts pushed streams into one OTLP logs request: a resource per stream.
pub fn to_otlp(streams: Vec<Stream>) -> ExportLogsServiceRequest {
    let mut out = ExportLogsServiceRequest::default();
    for s in streams {
        let mut attributes = Vec::with_capacity(s.labels.len() + 4);
        if let Some(service) = first(&s.labels, SERVICE_LABELS) {
            attributes.push(str_kv("service.name", service));
        }
        if let Some(host) = first(&s.labels, HOST_LABELS) {
            attributes.push(str_kv("host.name", host));
        }
        for (label, key) in [
            ("namespace", "k8s.namespace.name"),
            ("pod", "k8s.pod.name"),
            ("container", "k8s.container.name"),
        ] {
            if let Some(v) = first(&s.labels, &[label]) {
                attributes.push(str_kv(key, v));
            }
        }
        let level = first(&s.labels, LEVEL_LABELS).unwrap_or("").to_string();
        attributes.extend(s.labels.iter().map(|(k, v)| str_kv(k, v)));
        let records = s
            .entries
            .into_iter()
            .map(|(ts, line, md)| {
                let mut r = LogRecord {
                    time_unix_nano: ts.max(0) as u64,
                    severity_text: level.clone(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(line)),
                    }),
                    ..Default::default()
                };
                for (k, v) in md {
                    match k.as_str() {
                        "trace_id" | "traceID" | "traceId" | "trace-id" => match id_bytes(&v, 16) {
                            Some(id) => r.trace_id = id,
                            None => r.attributes.push(str_kv(&k, &v)),
                        },
                        "span_id" | "spanID" | "spanId" | "span-id" => match id_bytes(&v, 8) {
                            Some(id) => r.span_id = id,
                            None => r.attributes.push(str_kv(&k, &v)),
                        },
                        _ => r.attributes.push(str_kv(&k, &v)),
                    }
                }
                r
            })
            .collect();
        out.resource_logs.push(ResourceLogs {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    out
}

fn refuse(state: &HttpState, status: StatusCode, outcome: &'static str, msg: String) -> Response {
    crate::zipkin::refuse_plain(&state.ingest, ("logs", "loki"), status, outcome, msg)
}

/// `POST /loki/api/v1/push`.
pub async fn push(
    State(state): State<HttpState>,
    axum::extract::Extension(caller): axum::extract::Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match crate::zipkin::read_body(body) {
        Ok(b) => b,
        Err((status, outcome, msg)) => return refuse(&state, status, outcome, msg),
    };
    state.ingest.record_bytes("logs", "loki", body.len());
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let limit = state.max_decompressed_bytes;
    let decoded = match ct.as_str() {
        "application/x-protobuf" | "application/protobuf" => {
            match snap::raw::decompress_len(&body) {
                Ok(n) if n > limit => Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("decompressed body of {n} bytes exceeds the limit of {limit}"),
                )),
                Ok(_) => snap::raw::Decoder::new()
                    .decompress_vec(&body)
                    .map_err(|e| (StatusCode::BAD_REQUEST, "invalid", format!("snappy: {e}")))
                    .and_then(|raw| {
                        from_protobuf(&raw).map_err(|e| (StatusCode::BAD_REQUEST, "invalid", e))
                    }),
                Err(e) => Err((StatusCode::BAD_REQUEST, "invalid", format!("snappy: {e}"))),
            }
        }
        "application/json" => match crate::http::decompress(&headers, body, limit) {
            Ok(raw) => from_json(&raw).map_err(|e| (StatusCode::BAD_REQUEST, "invalid", e)),
            Err(r) => Err((r.http, r.outcome, r.message)),
        },
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {other:?} is not supported: send snappy protobuf \
                 (application/x-protobuf) or JSON (application/json)"
            ),
        )),
    };
    let streams = match decoded {
        Ok(s) => s,
        Err((status, outcome, msg)) => return refuse(&state, status, outcome, msg),
    };
    let req = to_otlp(streams);
    match state.ingest.logs(req, &caller.tenant, "loki").await {
        Ok(a) if a.rejected > 0 => (
            StatusCode::BAD_REQUEST,
            format!("{} entries rejected: {}", a.rejected, a.message),
        )
            .into_response(),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => crate::zipkin::plain_refusal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn labels_parse_as_prometheus_writes_them() {
        assert_eq!(
            parse_labels(r#"{job="varlogs", filename="/var/log/a \"b\".log",level="warn"}"#)
                .unwrap(),
            [
                ("job".to_string(), "varlogs".to_string()),
                ("filename".to_string(), "/var/log/a \"b\".log".to_string()),
                ("level".to_string(), "warn".to_string())
            ]
        );
        assert_eq!(parse_labels("{}").unwrap(), []);
        for bad in ["job=\"x\"", "{job=x}", "{job=\"x}", "{=\"x\"}"] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_pushes_map_onto_the_log_model() {
        let body = br#"{"streams":[{"stream":{"service_name":"cart","level":"error","namespace":"shop","pod":"cart-1","env":"prod"},
            "values":[["1700000000000000000","payment failed",{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"42"}],
                      ["1700000000000000001","retrying"]]}]}"#;
        let req = to_otlp(from_json(body).unwrap());
        let recs = triad_model::otlp::logs_from_otlp(req, "t", NOW);
        assert_eq!(recs.rejected, 0);
        let r = &recs.items[0];
        assert_eq!(
            (r.service.as_str(), r.body.as_str()),
            ("cart", "payment failed")
        );
        assert_eq!(r.level(), "error");
        assert_eq!(
            r.trace_id.map(|t| t.to_hex()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
        for k in [
            "user",
            "env",
            "k8s.namespace.name",
            "k8s.pod.name",
            "namespace",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert_eq!(recs.items[1].timestamp_ns, NOW + 1);
    }

    #[test]
    fn protobuf_pushes_decode() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{app="api", host="node-1"}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    line: "GET /x 200".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "traceID".into(),
                        value: "a3ce929d0e0e4736".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let streams = from_protobuf(&req.encode_to_vec()).unwrap();
        let recs = triad_model::otlp::logs_from_otlp(to_otlp(streams), "t", NOW);
        let r = &recs.items[0];
        assert_eq!((r.service.as_str(), r.host.as_str()), ("api", "node-1"));
        assert_eq!(r.timestamp_ns, NOW + 5);
        assert_eq!(
            r.trace_id.map(|t| t.to_hex()).as_deref(),
            Some("0000000000000000a3ce929d0e0e4736"),
            "64-bit IDs are padded, as Jaeger and Zipkin do"
        );
    }

    /// Bodies in the wire forms Promtail and Alloy send (snappy-compressed protobuf with
    /// back-references) and Loki's JSON, written by `scripts/loki-push-fixtures.py`.
    #[test]
    fn promtail_alloy_and_json_fixtures_decode() {
        let records = |streams: Vec<Stream>| {
            triad_model::otlp::logs_from_otlp(to_otlp(streams), "t", T0 + 60_000_000_000).items
        };
        let snappy = |b: &[u8]| snap::raw::Decoder::new().decompress_vec(b).unwrap();
        const T0: i64 = 1_767_225_600_000_000_000;

        let promtail = records(
            from_protobuf(&snappy(include_bytes!(
                "../tests/fixtures/loki/promtail.pb.snappy"
            )))
            .unwrap(),
        );
        assert_eq!(promtail.len(), 42);
        let file = &promtail[0];
        assert_eq!(
            (file.service.as_str(), file.host.as_str()),
            ("varlogs", "node-1")
        );
        assert_eq!(file.timestamp_ns, T0);
        assert!(file.body.starts_with("level=info msg=\"request served\""));
        assert!(
            file.attributes
                .iter()
                .any(|kv| kv.key == "filename" && kv.value.to_text() == "/var/log/app.log")
        );
        assert_eq!(promtail[39].timestamp_ns, T0 + 39_000_000);
        let pod = &promtail[40];
        assert_eq!(
            pod.service, "api",
            "container before job, as Loki derives service_name"
        );
        let attr = |r: &triad_model::LogRecord, k: &str| {
            r.attributes
                .iter()
                .find(|kv| kv.key == k)
                .map(|kv| kv.value.to_text())
        };
        assert_eq!(
            attr(pod, "k8s.pod.name").as_deref(),
            Some("api-7d9f8-x2x4q")
        );
        assert_eq!(attr(pod, "k8s.namespace.name").as_deref(), Some("prod"));

        let alloy = records(
            from_protobuf(&snappy(include_bytes!(
                "../tests/fixtures/loki/alloy.pb.snappy"
            )))
            .unwrap(),
        );
        let r = &alloy[0];
        assert_eq!(
            (r.service.as_str(), r.level().as_str(), r.body.as_str()),
            ("checkout", "error", "payment declined")
        );
        assert_eq!(
            r.trace_id.map(|t| t.to_hex()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            r.span_id.map(|s| s.to_hex()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(attr(r, "user").as_deref(), Some("42"));

        let json = records(from_json(include_bytes!("../tests/fixtures/loki/push.json")).unwrap());
        assert_eq!(json.len(), 2);
        assert_eq!(json[0].service, "web");
        assert_eq!(json[1].timestamp_ns, T0 + 9);
        assert_eq!(
            json[1].trace_id.map(|t| t.to_hex()).as_deref(),
            Some("0000000000000000a3ce929d0e0e4736")
        );
    }

    #[test]
    fn malformed_pushes_say_what_is_wrong() {
        for (body, why) in [
            (&b"{"[..], "malformed JSON"),
            (br#"{"nope":1}"#, "no \"streams\""),
            (
                br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
                "not a string",
            ),
            (
                br#"{"streams":[{"stream":{},"values":[["x","l"]]}]}"#,
                "is not ns",
            ),
            (br#"{"streams":[{"stream":{},"values":[["1"]]}]}"#, "want"),
            (
                br#"{"streams":[{"values":[[1,"l"]]}]}"#,
                "not a string of ns",
            ),
        ] {
            let e = from_json(body).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(from_protobuf(b"\xff\xff").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = from_protobuf(&bytes).map(to_otlp);
            let _ = from_json(&bytes).map(to_otlp);
        }
    }
}
