//! Deterministic generators of realistic log records and traces.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// xorshift64*: fast, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub const SERVICES: &[&str] = &[
    "gateway",
    "checkout",
    "cart",
    "profile",
    "feed",
    "topic",
    "payments",
    "inventory",
];
const LEVELS: &[(&str, i32)] = &[
    ("INFO", 9),
    ("INFO", 9),
    ("INFO", 9),
    ("DEBUG", 5),
    ("WARN", 13),
    ("ERROR", 17),
];
const PATHS: &[&str] = &[
    "/api/v1/cart",
    "/api/v1/users",
    "/api/v2/feed",
    "/checkout/confirm",
    "/healthz",
    "/api/v1/topics",
];
const ERRORS: &[&str] = &[
    "ERR_CONN_REFUSED",
    "ETIMEDOUT",
    "E4012_CARD_DECLINED",
    "DEADLINE_EXCEEDED",
    "ECONNRESET",
];

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.to_string())),
    })
}

fn i(v: i64) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::IntValue(v)),
    })
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: v,
        ..Default::default()
    }
}

fn resource(service: &str, host: u64) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("host.name", s(&format!("node-{host:02}"))),
        ],
        ..Default::default()
    })
}

/// One generated log record and its ~250-byte JSON-line rendering (the "raw" bytes).
pub struct GenLog {
    pub otlp: LogRecord,
    pub service: &'static str,
    pub json_line: String,
}

pub fn log_record(rng: &mut Rng, ts_ns: u64) -> GenLog {
    let service = SERVICES[rng.below(SERVICES.len() as u64) as usize];
    let (level, sev) = LEVELS[rng.below(LEVELS.len() as u64) as usize];
    let trace: [u8; 16] = {
        let (a, b) = (rng.next(), rng.next());
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&a.to_be_bytes());
        t[8..].copy_from_slice(&b.to_be_bytes());
        t
    };
    let span = rng.next().max(1).to_be_bytes();
    let path = rng.pick(PATHS);
    let user = rng.below(100_000);
    let ms = rng.below(900) + 1;
    let message = match sev {
        17 => format!(
            "request {path}/{} failed after {ms}ms: {} from 10.{}.{}.{}:8080 user_id={user}",
            rng.below(10_000),
            rng.pick(ERRORS),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        13 => format!(
            "slow response on {path} took {ms}ms retrying attempt={} user_id={user}",
            rng.below(5)
        ),
        _ => format!(
            "GET {path}/{} completed in {ms}ms status=200 user_id={user}",
            rng.below(10_000)
        ),
    };
    let status = if sev == 17 { 500 } else { 200 };
    let otlp = LogRecord {
        time_unix_nano: ts_ns,
        observed_time_unix_nano: ts_ns,
        severity_number: sev,
        severity_text: level.to_string(),
        body: s(&message),
        attributes: vec![
            kv("http.method", s("GET")),
            kv("http.status_code", i(status)),
            kv("user_id", i(user as i64)),
        ],
        trace_id: trace.to_vec(),
        span_id: span.to_vec(),
        ..Default::default()
    };
    let json_line = serde_json::json!({
        "timestamp": ts_ns, "level": level, "service": service,
        "trace_id": hex(&trace), "span_id": hex(&span), "message": message,
        "attributes": {"http.method": "GET", "http.status_code": status, "user_id": user}
    })
    .to_string();
    GenLog {
        otlp,
        service,
        json_line,
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Groups generated records into export requests, one resource per service.
pub fn logs_request(records: Vec<GenLog>) -> ExportLogsServiceRequest {
    let mut by_service: Vec<(&'static str, Vec<LogRecord>)> = Vec::new();
    for r in records {
        match by_service.iter_mut().find(|(s, _)| *s == r.service) {
            Some((_, v)) => v.push(r.otlp),
            None => by_service.push((r.service, vec![r.otlp])),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: by_service
            .into_iter()
            .enumerate()
            .map(|(h, (svc, recs))| ResourceLogs {
                resource: resource(svc, h as u64),
                scope_logs: vec![ScopeLogs {
                    log_records: recs,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// A request with `traces` traces of five spans each (gateway → two services → two more).
pub fn traces_request(
    rng: &mut Rng,
    traces: usize,
    start_ns: u64,
) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut ids = Vec::with_capacity(traces);
    for _ in 0..traces {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&rng.next().to_be_bytes());
        trace[8..].copy_from_slice(&rng.next().to_be_bytes());
        ids.push(trace);
        let root = rng.next().max(1);
        let t0 = start_ns + rng.below(1_000_000_000);
        let shape: [(usize, Option<usize>); 5] = [
            (0, None),
            (1, Some(0)),
            (2, Some(0)),
            (6, Some(1)),
            (7, Some(2)),
        ];
        let mut span_ids = [0u64; 5];
        for (k, (svc, parent)) in shape.iter().enumerate() {
            span_ids[k] = if k == 0 { root } else { rng.next().max(1) };
            let dur = 1_000_000 + rng.below(200_000_000);
            let error = rng.below(50) == 0;
            let path = rng.pick(PATHS);
            per_service[*svc].push(Span {
                trace_id: trace.to_vec(),
                span_id: span_ids[k].to_be_bytes().to_vec(),
                parent_span_id: parent
                    .map(|p| span_ids[p].to_be_bytes().to_vec())
                    .unwrap_or_default(),
                name: format!("{} {path}", if k == 0 { "GET" } else { "POST" }),
                kind: 2,
                start_time_unix_nano: t0 + k as u64 * 1000,
                end_time_unix_nano: t0 + k as u64 * 1000 + dur,
                attributes: vec![
                    kv("http.method", s("GET")),
                    kv("http.route", s(path)),
                    kv("http.status_code", i(if error { 500 } else { 200 })),
                    kv(
                        "net.peer.ip",
                        s(&format!("10.0.{}.{}", rng.below(256), rng.below(256))),
                    ),
                    kv("user.id", i(rng.below(100_000) as i64)),
                ],
                status: error.then(|| Status {
                    code: 2,
                    message: "upstream failed".into(),
                }),
                ..Default::default()
            });
        }
    }
    let req = ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, spans)| ResourceSpans {
                resource: resource(SERVICES[k], k as u64),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    (req, ids)
}
