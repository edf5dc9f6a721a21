//! Conversion from OTLP (`opentelemetry-proto`) into Triad's model, and back.
//!
//! Conversion validates each item on its own: a span with a bad ID or an absurd
//! timestamp is rejected and counted, and the rest of the request is kept. The counts
//! and the first messages become OTLP's partial-success response.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as OtlpKeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::{Event, KeyValue, Link, LogRecord, Span, SpanId, SpanKind, StatusCode, TraceId, Value};

/// Earliest timestamp accepted: 2000-01-01T00:00:00Z. Anything before is a unit error
/// (seconds or ms sent as ns) or garbage.
pub const MIN_VALID_NS: i64 = 946_684_800_000_000_000;
/// How far in the future a timestamp may lie (clock skew allowance): one day.
pub const MAX_FUTURE_SKEW_NS: i64 = 86_400_000_000_000;
/// Service name of data that names none, as the OpenTelemetry SDKs default it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Log attribute carrying the file a line was read from (OpenTelemetry semantic
/// conventions); it becomes [`LogRecord::source`].
pub const LOG_FILE_PATH: &str = "log.file.path";
/// Attribute nesting deeper than this is flattened to JSON text, so hostile input
/// cannot recurse without bound.
const MAX_VALUE_DEPTH: usize = 16;
/// At most this many rejection reasons are reported back to the sender.
const MAX_REPORTED_ERRORS: usize = 5;

/// Items that passed validation, and a count and description of those that did not.
#[derive(Debug)]
pub struct Converted<T> {
    /// Valid items.
    pub items: Vec<T>,
    /// How many items were rejected.
    pub rejected: u64,
    /// The first few rejection reasons, for the sender.
    pub errors: Vec<String>,
}

impl<T> Converted<T> {
    fn new() -> Self {
        Self {
            items: Vec::new(),
            rejected: 0,
            errors: Vec::new(),
        }
    }

    fn reject(&mut self, what: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(what);
        }
    }

    /// The rejection reasons joined for OTLP's `error_message`.
    pub fn error_message(&self) -> String {
        let mut msg = self.errors.join("; ");
        if self.rejected as usize > self.errors.len() {
            msg.push_str(&format!(
                " (and {} more)",
                self.rejected as usize - self.errors.len()
            ));
        }
        msg
    }
}

/// Converts an OTLP value into a [`Value`], taking its strings without copying.
pub fn value_from_otlp(v: AnyValue) -> Value {
    value_at_depth(v, 0)
}

fn value_at_depth(v: AnyValue, depth: usize) -> Value {
    use any_value::Value as V;
    match v.value {
        None => Value::Empty,
        Some(V::StringValue(s)) => Value::Str(s),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::Int(i),
        Some(V::DoubleValue(d)) => Value::Double(d),
        Some(V::BytesValue(b)) => Value::Bytes(b),
        Some(V::ArrayValue(a)) if depth < MAX_VALUE_DEPTH => Value::Array(
            a.values
                .into_iter()
                .map(|x| value_at_depth(x, depth + 1))
                .collect(),
        ),
        Some(V::KvlistValue(kv)) if depth < MAX_VALUE_DEPTH => Value::Map(
            kv.values
                .into_iter()
                .map(|x| kv_at_depth(x, depth + 1))
                .collect(),
        ),
        Some(V::ArrayValue(_)) | Some(V::KvlistValue(_)) => Value::Str("<nested too deep>".into()),
        // Dictionary-encoded strings only exist in the profiles signal, which Triad
        // does not receive; keep the index rather than lose the attribute.
        Some(V::StringValueStrindex(i)) => Value::Int(i64::from(i)),
    }
}

fn kv_at_depth(kv: OtlpKeyValue, depth: usize) -> KeyValue {
    let value = kv
        .value
        .map(|v| value_at_depth(v, depth))
        .unwrap_or(Value::Empty);
    KeyValue::new(kv.key, value)
}

/// Converts OTLP attributes, taking their strings without copying.
pub fn attributes_from_otlp(attrs: Vec<OtlpKeyValue>) -> Vec<KeyValue> {
    attrs.into_iter().map(|kv| kv_at_depth(kv, 0)).collect()
}

/// `service.name`, `host.name` and the remaining attributes of a resource.
struct ResourceInfo {
    service: String,
    host: String,
    rest: Vec<KeyValue>,
}

fn resource_info(resource: Option<Resource>) -> ResourceInfo {
    let mut info = ResourceInfo {
        service: String::new(),
        host: String::new(),
        rest: Vec::new(),
    };
    for kv in resource.map(|r| r.attributes).unwrap_or_default() {
        let value = kv_at_depth(kv, 0);
        match (value.key.as_str(), &value.value) {
            ("service.name", Value::Str(s)) => info.service = s.clone(),
            ("host.name", Value::Str(s)) => {
                info.host = s.clone();
                info.rest.push(value);
            }
            _ => info.rest.push(value),
        }
    }
    if info.service.is_empty() {
        // The OTel SDKs' own default when no service name is configured.
        info.service = UNKNOWN_SERVICE.into();
    }
    info
}

/// Checks that a timestamp lies between [`MIN_VALID_NS`] and now plus the skew allowance.
pub fn check_timestamp(what: &str, ns: u64, now_ns: i64) -> Result<i64, String> {
    let max = now_ns.saturating_add(MAX_FUTURE_SKEW_NS);
    match i64::try_from(ns) {
        Ok(v) if (MIN_VALID_NS..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{what} {ns} is outside the accepted range (after 2000-01-01 and at most one day ahead of the receiver's clock)"
        )),
    }
}

fn convert_span(
    s: opentelemetry_proto::tonic::trace::v1::Span,
    tenant: &str,
    res: &ResourceInfo,
    scope: (&str, &str),
    now_ns: i64,
) -> Result<Span, String> {
    let trace_id = TraceId::from_bytes(&s.trace_id).map_err(|e| e.to_string())?;
    let span_id = SpanId::from_bytes(&s.span_id).map_err(|e| e.to_string())?;
    let parent_span_id = if s.parent_span_id.is_empty() {
        None
    } else {
        Some(SpanId::from_bytes(&s.parent_span_id).map_err(|e| format!("parent_{e}"))?)
    };
    let start_ns = check_timestamp("start_time_unix_nano", s.start_time_unix_nano, now_ns)?;
    let end_ns = check_timestamp("end_time_unix_nano", s.end_time_unix_nano, now_ns)?;
    if end_ns < start_ns {
        return Err(format!(
            "end_time_unix_nano {end_ns} is before start_time_unix_nano {start_ns}"
        ));
    }
    let mut links = Vec::with_capacity(s.links.len());
    for l in s.links {
        // A link with a malformed ID is dropped, not the whole span.
        if let (Ok(t), Ok(sp)) = (
            TraceId::from_bytes(&l.trace_id),
            SpanId::from_bytes(&l.span_id),
        ) {
            links.push(Link {
                trace_id: t,
                span_id: sp,
                attributes: attributes_from_otlp(l.attributes),
            });
        }
    }
    let (status_code, status_message) =
        s.status.map(|st| (st.code, st.message)).unwrap_or_default();
    Ok(Span {
        tenant: tenant.to_string(),
        trace_id,
        span_id,
        parent_span_id,
        trace_state: s.trace_state,
        name: s.name,
        kind: SpanKind::from_otlp(s.kind),
        start_ns,
        end_ns,
        status_code: StatusCode::from_otlp(status_code),
        status_message,
        service: res.service.clone(),
        attributes: attributes_from_otlp(s.attributes),
        events: s
            .events
            .into_iter()
            .map(|e| Event {
                time_ns: i64::try_from(e.time_unix_nano).unwrap_or(start_ns),
                name: e.name,
                attributes: attributes_from_otlp(e.attributes),
            })
            .collect(),
        links,
        resource: res.rest.clone(),
        scope_name: scope.0.to_string(),
        scope_version: scope.1.to_string(),
    })
}

/// Converts an OTLP trace export request, validating each span. Takes the request by
/// value so that strings move into the model instead of being copied.
pub fn spans_from_otlp(
    req: ExportTraceServiceRequest,
    tenant: &str,
    now_ns: i64,
) -> Converted<Span> {
    let mut out = Converted::new();
    for rs in req.resource_spans {
        let res = resource_info(rs.resource);
        for ss in rs.scope_spans {
            let (scope_name, scope_version) =
                ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for s in ss.spans {
                // The name is kept only while it may still be reported.
                let name = if out.errors.len() < MAX_REPORTED_ERRORS {
                    s.name.clone()
                } else {
                    String::new()
                };
                match convert_span(s, tenant, &res, (&scope_name, &scope_version), now_ns) {
                    Ok(span) => out.items.push(span),
                    Err(e) => out.reject(format!("span {name:?}: {e}")),
                }
            }
        }
    }
    out
}

fn body_text(body: Option<AnyValue>) -> String {
    match body.map(value_from_otlp) {
        None | Some(Value::Empty) => String::new(),
        Some(Value::Str(s)) => s,
        Some(other) => other.to_text(),
    }
}

fn convert_log(
    l: opentelemetry_proto::tonic::logs::v1::LogRecord,
    tenant: &str,
    res: &ResourceInfo,
    now_ns: i64,
) -> Result<LogRecord, String> {
    let observed_ns = match l.observed_time_unix_nano {
        0 => now_ns,
        t => check_timestamp("observed_time_unix_nano", t, now_ns)?,
    };
    // OTLP: a zero time means "unknown"; fall back to the observed time.
    let timestamp_ns = match l.time_unix_nano {
        0 => observed_ns,
        t => check_timestamp("time_unix_nano", t, now_ns)?,
    };
    let trace_id = if l.trace_id.is_empty() {
        None
    } else {
        Some(TraceId::from_bytes(&l.trace_id).map_err(|e| e.to_string())?)
    };
    let span_id = if l.span_id.is_empty() {
        None
    } else {
        Some(SpanId::from_bytes(&l.span_id).map_err(|e| e.to_string())?)
    };
    let mut own = attributes_from_otlp(l.attributes);
    // A line tailed from a file by an agent names its file.
    let source = match own.iter().position(|kv| kv.key == LOG_FILE_PATH) {
        Some(i) => match own.remove(i).value {
            Value::Str(path) => path,
            other => other.to_text(),
        },
        None => "otlp".to_string(),
    };
    // Record attributes win over resource attributes with the same key.
    let mut attributes: Vec<KeyValue> = res
        .rest
        .iter()
        .filter(|r| !own.iter().any(|o| o.key == r.key))
        .cloned()
        .collect();
    attributes.extend(own);
    if !l.event_name.is_empty() {
        attributes.push(KeyValue::new("event.name", Value::Str(l.event_name)));
    }
    Ok(LogRecord {
        tenant: tenant.to_string(),
        timestamp_ns,
        observed_ns,
        severity_text: l.severity_text,
        severity_number: l.severity_number,
        body: body_text(l.body),
        service: res.service.clone(),
        host: res.host.clone(),
        trace_id,
        span_id,
        source,
        attributes,
    })
}

/// Converts an OTLP logs export request, validating each record. Takes the request by
/// value so that strings move into the model instead of being copied.
pub fn logs_from_otlp(
    req: ExportLogsServiceRequest,
    tenant: &str,
    now_ns: i64,
) -> Converted<LogRecord> {
    let mut out = Converted::new();
    for rl in req.resource_logs {
        let res = resource_info(rl.resource);
        for sl in rl.scope_logs {
            for l in sl.log_records {
                match convert_log(l, tenant, &res, now_ns) {
                    Ok(rec) => out.items.push(rec),
                    Err(e) => out.reject(format!("log record: {e}")),
                }
            }
        }
    }
    out
}

/// Converts a [`Value`] into OTLP's `AnyValue`, moving its strings.
pub fn value_to_otlp(v: Value) -> AnyValue {
    use any_value::Value as V;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    let value = match v {
        Value::Str(s) => Some(V::StringValue(s)),
        Value::Bool(b) => Some(V::BoolValue(b)),
        Value::Int(i) => Some(V::IntValue(i)),
        Value::Double(d) => Some(V::DoubleValue(d)),
        Value::Bytes(b) => Some(V::BytesValue(b)),
        Value::Array(a) => Some(V::ArrayValue(ArrayValue {
            values: a.into_iter().map(value_to_otlp).collect(),
        })),
        Value::Map(m) => Some(V::KvlistValue(KeyValueList {
            values: attributes_to_otlp(m),
        })),
        Value::Empty => None,
    };
    AnyValue { value }
}

/// Converts attributes into OTLP's, moving their strings.
pub fn attributes_to_otlp(attrs: Vec<KeyValue>) -> Vec<OtlpKeyValue> {
    attrs
        .into_iter()
        .map(|kv| OtlpKeyValue {
            key: kv.key,
            value: Some(value_to_otlp(kv.value)),
            ..Default::default()
        })
        .collect()
}

fn str_kv(key: &str, value: String) -> OtlpKeyValue {
    OtlpKeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// Converts spans back into OTLP, as a trace is served to OTLP clients (Tempo's API):
/// one resource per (service, resource attributes) and one scope per (name, version),
/// in order of first appearance, spans in their order.
pub fn spans_to_otlp(spans: Vec<Span>) -> opentelemetry_proto::tonic::trace::v1::TracesData {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, TracesData, span,
    };
    let mut resources: Vec<ResourceSpans> = Vec::new();
    let mut keys: Vec<(String, Vec<KeyValue>)> = Vec::new();
    for s in spans {
        let key = (s.service.clone(), s.resource.clone());
        let ri = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                let mut attributes = vec![str_kv("service.name", s.service.clone())];
                attributes.extend(attributes_to_otlp(s.resource.clone()));
                resources.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                keys.push(key);
                keys.len() - 1
            }
        };
        let scopes = &mut resources[ri].scope_spans;
        let si = match scopes.iter().position(|ss| {
            ss.scope
                .as_ref()
                .is_some_and(|sc| sc.name == s.scope_name && sc.version == s.scope_version)
        }) {
            Some(i) => i,
            None => {
                scopes.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: s.scope_name.clone(),
                        version: s.scope_version.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                scopes.len() - 1
            }
        };
        scopes[si].spans.push(OtlpSpan {
            trace_id: s.trace_id.0.to_vec(),
            span_id: s.span_id.0.to_vec(),
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
            name: s.name,
            kind: s.kind.to_otlp(),
            start_time_unix_nano: s.start_ns.max(0) as u64,
            end_time_unix_nano: s.end_ns.max(0) as u64,
            attributes: attributes_to_otlp(s.attributes),
            events: s
                .events
                .into_iter()
                .map(|e| span::Event {
                    time_unix_nano: e.time_ns.max(0) as u64,
                    name: e.name,
                    attributes: attributes_to_otlp(e.attributes),
                    ..Default::default()
                })
                .collect(),
            links: s
                .links
                .into_iter()
                .map(|l| span::Link {
                    trace_id: l.trace_id.0.to_vec(),
                    span_id: l.span_id.0.to_vec(),
                    attributes: attributes_to_otlp(l.attributes),
                    ..Default::default()
                })
                .collect(),
            status: Some(Status {
                message: s.status_message,
                code: s.status_code.to_otlp(),
            }),
            ..Default::default()
        });
    }
    TracesData {
        resource_spans: resources,
    }
}

/// `service.name` and `host.name` of a resource [`logs_to_otlp`] built.
fn resource_key(attrs: &[OtlpKeyValue]) -> (&str, &str) {
    let get = |k: &str| {
        attrs
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or("")
    };
    (get("service.name"), get("host.name"))
}

/// Converts log records into one OTLP export request, one resource per (service,
/// host) in order of first appearance, records in their order. The file a record was
/// read from travels as the `log.file.path` attribute, which [`logs_from_otlp`] turns
/// back into [`LogRecord::source`]; the tenant travels with the request, not here.
pub fn logs_to_otlp(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
    let mut resources: Vec<ResourceLogs> = Vec::new();
    let mut index: std::collections::HashMap<(String, String), usize> =
        std::collections::HashMap::new();
    let mut last: Option<usize> = None;
    for r in records {
        // Records of one resource usually come in runs: compare with the last first.
        let same_as_last = last.and_then(|i| {
            let attrs = &resources[i].resource.as_ref()?.attributes;
            (resource_key(attrs) == (r.service.as_str(), r.host.as_str())).then_some(i)
        });
        let key = (r.service, r.host);
        let i = match same_as_last.or_else(|| index.get(&key).copied()) {
            Some(i) => i,
            None => {
                let mut attributes = Vec::with_capacity(2);
                if !key.0.is_empty() {
                    attributes.push(str_kv("service.name", key.0.clone()));
                }
                if !key.1.is_empty() {
                    attributes.push(str_kv("host.name", key.1.clone()));
                }
                resources.push(ResourceLogs {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs::default()],
                    ..Default::default()
                });
                index.insert(key, resources.len() - 1);
                resources.len() - 1
            }
        };
        let mut attributes = attributes_to_otlp(r.attributes);
        if !r.source.is_empty() && r.source != "otlp" {
            attributes.push(str_kv(LOG_FILE_PATH, r.source));
        }
        let log = OtlpLog {
            time_unix_nano: u64::try_from(r.timestamp_ns).unwrap_or(0),
            observed_time_unix_nano: u64::try_from(r.observed_ns).unwrap_or(0),
            severity_number: r.severity_number,
            severity_text: r.severity_text,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(r.body)),
            }),
            attributes,
            trace_id: r.trace_id.map(|t| t.0.to_vec()).unwrap_or_default(),
            span_id: r.span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
            ..Default::default()
        };
        if let Some(scope) = resources[i].scope_logs.first_mut() {
            scope.log_records.push(log);
        }
        last = Some(i);
    }
    ExportLogsServiceRequest {
        resource_logs: resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OtlpSpan, Status,
    };

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn kv(k: &str, v: &str) -> OtlpKeyValue {
        OtlpKeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn span(trace: Vec<u8>, start: u64, end: u64) -> OtlpSpan {
        OtlpSpan {
            trace_id: trace,
            span_id: vec![1; 8],
            name: "GET /x".into(),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        }
    }

    fn trace_req(spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "checkout"), kv("host.name", "h1")],
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

    #[test]
    fn converts_valid_span_and_rejects_bad_ones() {
        let ok = span(vec![7; 16], NOW as u64, NOW as u64 + 5);
        let short_id = span(vec![7; 15], NOW as u64, NOW as u64 + 5);
        let absurd = span(vec![7; 16], 5, 10);
        let backwards = span(vec![7; 16], NOW as u64 + 5, NOW as u64);
        let out = spans_from_otlp(trace_req(vec![ok, short_id, absurd, backwards]), "t1", NOW);
        assert_eq!(out.items.len(), 1);
        assert_eq!(out.rejected, 3);
        let s = &out.items[0];
        assert_eq!(s.service, "checkout");
        assert_eq!(s.tenant, "t1");
        assert_eq!(s.kind, SpanKind::Server);
        assert!(s.is_error());
        assert_eq!(s.duration_ns(), 5);
        assert!(s.resource.iter().any(|kv| kv.key == "host.name"));
        let msg = out.error_message();
        assert!(msg.contains("trace_id must be 16 bytes, got 15"), "{msg}");
        assert!(msg.contains("outside the accepted range"), "{msg}");
        assert!(msg.contains("before start"), "{msg}");
    }

    #[test]
    fn spans_go_back_to_otlp_and_return_the_same() {
        let mut parent = span(vec![7; 16], NOW as u64, NOW as u64 + 50);
        parent.attributes = vec![kv("http.route", "/x")];
        parent.events = vec![opentelemetry_proto::tonic::trace::v1::span::Event {
            time_unix_nano: NOW as u64 + 1,
            name: "exception".into(),
            attributes: vec![kv("exception.message", "boom")],
            ..Default::default()
        }];
        let mut child = span(vec![7; 16], NOW as u64 + 2, NOW as u64 + 9);
        child.span_id = vec![2; 8];
        child.parent_span_id = vec![1; 8];
        child.kind = 3;
        child.status = None;
        let spans = spans_from_otlp(trace_req(vec![parent, child]), "t1", NOW).items;
        let back = spans_to_otlp(spans.clone());
        assert_eq!(back.resource_spans.len(), 1, "one resource");
        assert_eq!(back.resource_spans[0].scope_spans[0].spans.len(), 2);
        let again = spans_from_otlp(
            ExportTraceServiceRequest {
                resource_spans: back.resource_spans,
            },
            "t1",
            NOW,
        );
        assert_eq!(again.items, spans);
    }

    #[test]
    fn log_time_falls_back_to_observed_and_attributes_merge() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "api"), kv("env", "prod"), kv("k", "res")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpLog {
                        observed_time_unix_nano: NOW as u64,
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("hi".into())),
                        }),
                        attributes: vec![kv("k", "own")],
                        trace_id: vec![3; 16],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = logs_from_otlp(req, "t", NOW);
        assert_eq!(out.rejected, 0);
        let r = &out.items[0];
        assert_eq!(r.timestamp_ns, NOW);
        assert_eq!(r.level(), "error");
        assert_eq!(r.service, "api");
        let k: Vec<_> = r.attributes.iter().filter(|a| a.key == "k").collect();
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].value, Value::Str("own".into()));
        assert!(r.attributes.iter().any(|a| a.key == "env"));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut v = AnyValue {
            value: Some(any_value::Value::StringValue("leaf".into())),
        };
        for _ in 0..100 {
            v = AnyValue {
                value: Some(any_value::Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue { values: vec![v] },
                )),
            };
        }
        let mut depth = 0;
        let mut cur = value_from_otlp(v);
        while let Value::Array(mut a) = cur {
            depth += 1;
            cur = a.remove(0);
        }
        assert_eq!(depth, MAX_VALUE_DEPTH);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
    use proptest::prelude::*;
    use prost::Message;

    const NOW: i64 = 1_700_000_000_000_000_000;

    proptest! {
        /// Whatever bytes arrive, decoding either fails cleanly or conversion succeeds
        /// without panicking, and every accepted item satisfies the model's invariants.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            if let Ok(req) = ExportTraceServiceRequest::decode(&bytes[..]) {
                let out = spans_from_otlp(req, "t", NOW);
                for s in &out.items {
                    prop_assert!(s.end_ns >= s.start_ns && s.start_ns >= MIN_VALID_NS);
                }
            }
            if let Ok(req) = ExportLogsServiceRequest::decode(&bytes[..]) {
                let out = logs_from_otlp(req, "t", NOW);
                for r in &out.items {
                    prop_assert!(r.timestamp_ns >= MIN_VALID_NS && r.timestamp_ns <= NOW + MAX_FUTURE_SKEW_NS);
                }
            }
        }

        /// Every span is either accepted with valid fields or rejected with a reason;
        /// nothing is silently dropped.
        #[test]
        fn each_span_is_accepted_or_rejected(
            trace in proptest::collection::vec(any::<u8>(), 0..20),
            span in proptest::collection::vec(any::<u8>(), 0..10),
            start in any::<u64>(),
            len in any::<u64>(),
        ) {
            let s = OtlpSpan { trace_id: trace, span_id: span, start_time_unix_nano: start,
                end_time_unix_nano: start.wrapping_add(len), ..Default::default() };
            let req = ExportTraceServiceRequest { resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![s], ..Default::default() }], ..Default::default() }] };
            let out = spans_from_otlp(req, "t", NOW);
            prop_assert_eq!(out.items.len() as u64 + out.rejected, 1);
            prop_assert_eq!(out.errors.len() as u64, out.rejected);
            for s in &out.items {
                prop_assert!(s.trace_id.0.iter().any(|b| *b != 0) && s.end_ns >= s.start_ns);
            }
        }

        #[test]
        fn hex_ids_round_trip(bytes in any::<[u8; 16]>(), text in "\\PC{0,40}") {
            if bytes.iter().any(|b| *b != 0) {
                let t = crate::TraceId(bytes);
                prop_assert_eq!(crate::TraceId::from_hex(&t.to_hex()), Ok(t));
            }
            let _ = crate::TraceId::from_hex(&text);
            let _ = crate::SpanId::from_hex(&text);
        }

        #[test]
        fn file_logs_round_trip_through_otlp(
            recs in proptest::collection::vec((
                "[a-c]{1,3}", "[h-i]{1,2}", "\\PC{0,30}", "(/var/log/[a-z]{1,5}\\.log)?",
                0i64..1_000_000_000, any::<bool>(), any::<i64>(), "[a-z]{1,8}",
            ), 0..20),
        ) {
            let records: Vec<LogRecord> = recs.into_iter().map(|(svc, host, body, src, dt, with_ids, n, key)| LogRecord {
                tenant: "t".into(),
                timestamp_ns: NOW - dt,
                observed_ns: NOW,
                severity_text: "warn".into(),
                severity_number: 13,
                body,
                service: svc,
                host,
                trace_id: with_ids.then_some(crate::TraceId([3; 16])),
                span_id: with_ids.then_some(crate::SpanId([4; 8])),
                source: if src.is_empty() { "otlp".into() } else { src },
                attributes: vec![KeyValue::new(key, Value::Int(n)),
                    KeyValue::new("nested", Value::Map(vec![KeyValue::new("a", Value::Array(vec![Value::Bool(true), Value::Empty]))]))],
            }).collect();
            let back = logs_from_otlp(logs_to_otlp(records.clone()), "t", NOW);
            prop_assert_eq!(back.rejected, 0);
            // Grouped by (service, host): compare as multisets per group, in order.
            let mut got = back.items;
            for r in &mut got {
                r.attributes.retain(|kv| kv.key != "host.name");
            }
            let key = |r: &LogRecord| (r.service.clone(), r.host.clone());
            let mut want = records;
            want.sort_by_key(key);
            got.sort_by_key(key);
            prop_assert_eq!(got, want);
        }
    }
}
