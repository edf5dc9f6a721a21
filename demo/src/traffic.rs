//! The traffic generator: requests enter the gateway at the configured rate; each becomes
//! a trace across services (spans exported over OTLP), a log line per service hop and a
//! metric observation per service, with the active faults applied.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultKind, active, schedule};
use crate::sinks::{LogFiles, Telemetry, export};
use crate::topology::{ENTRY_MIX, ROUTES, Route, route, service};
use crate::{DemoConfig, DemoError};
use triad_model::{SpanId, TraceId};

/// How often a batch of requests is generated.
const TICK: Duration = Duration::from_millis(100);
/// Span batches waiting for export; when full, a batch is dropped (and logged) rather
/// than letting the generator's memory grow while the collector is away.
const EXPORT_QUEUE: usize = 64;

fn attr(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// A log line to write once the trace's times are final.
struct Line {
    service: &'static str,
    ns: i64,
    json: serde_json::Value,
}

/// What one request produced.
#[derive(Default)]
struct Output {
    spans: BTreeMap<&'static str, Vec<Span>>,
    lines: Vec<Line>,
    /// (service, route, code, seconds, trace id, span id).
    observations: Vec<(&'static str, &'static str, u16, f64, String, String)>,
}

struct Sim<'a> {
    rng: &'a mut fastrand::Rng,
    faults: &'a [FaultKind],
    trace_id: [u8; 16],
    out: Output,
}

impl Sim<'_> {
    fn span_id(&mut self) -> [u8; 8] {
        self.rng.u64(1..).to_be_bytes()
    }

    /// Log-normal-ish work around `base_ms`, in ns.
    fn work(&mut self, base_ms: f64) -> i64 {
        let z: f64 = (0..4).map(|_| self.rng.f64()).sum::<f64>() - 2.0; // ~N(0, 0.58)
        (base_ms * (z * 0.6).exp() * 1e6) as i64
    }

    fn latency_factor(&self, svc: &str) -> f64 {
        self.faults
            .iter()
            .map(|f| match f {
                FaultKind::Latency { service, factor } if *service == svc => *factor,
                _ => 1.0,
            })
            .fold(1.0, f64::max)
    }

    fn fails(&mut self, svc: &str) -> bool {
        let ratio = self
            .faults
            .iter()
            .map(|f| match f {
                FaultKind::Errors { service, ratio } if *service == svc => *ratio,
                _ => 0.0,
            })
            .fold(0.002, f64::max); // a little background noise everywhere
        self.rng.f64() < ratio
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        svc: &'static str,
        name: &str,
        kind: span::SpanKind,
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        start: i64,
        end: i64,
        error: Option<&str>,
        attrs: Vec<KeyValue>,
    ) {
        self.out.spans.entry(svc).or_default().push(Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: start as u64,
            end_time_unix_nano: end as u64,
            attributes: attrs,
            status: error.map(|m| Status {
                message: m.into(),
                code: status::StatusCode::Error as i32,
            }),
            ..Default::default()
        });
    }

    /// Handles `r` starting at `start` (ns); returns (end, failed).
    fn handle(&mut self, r: &'static Route, parent: Option<[u8; 8]>, start: i64) -> (i64, bool) {
        let id = self.span_id();
        let own = (self.work(r.base_ms) as f64 * self.latency_factor(r.service)) as i64;
        let mut t = start + own / 2;
        let mut downstream_failed = None;
        for (svc, name) in r.calls {
            let Some(callee) = route(svc, name) else {
                continue;
            };
            let client = self.span_id();
            let (end, failed) = self.handle(callee, Some(client), t + 300_000);
            let client_end = end + 300_000;
            let code = if failed { 500 } else { 200 };
            self.push(
                r.service,
                &format!("{} {}", name.split(' ').next().unwrap_or("GET"), svc),
                span::SpanKind::Client,
                client,
                Some(id),
                t,
                client_end,
                failed.then_some("upstream error"),
                vec![
                    attr("peer.service", s(svc)),
                    attr(
                        "http.response.status_code",
                        any_value::Value::IntValue(code),
                    ),
                ],
            );
            t = client_end;
            if failed {
                downstream_failed = Some(*svc);
                break;
            }
        }
        if let Some(query) = r.db {
            let db = self.span_id();
            let d = self.work(1.5);
            self.push(
                r.service,
                query,
                span::SpanKind::Client,
                db,
                Some(id),
                t,
                t + d,
                None,
                vec![
                    attr("db.system", s("postgresql")),
                    attr("db.statement", s(query)),
                ],
            );
            t += d;
        }
        let end = t + own / 2;
        let own_failure = downstream_failed.is_none() && self.fails(r.service);
        let failed = own_failure || downstream_failed.is_some();
        let code: u16 = if own_failure {
            500
        } else if failed {
            502
        } else {
            200
        };
        let (method, path) = r.name.split_once(' ').unwrap_or(("GET", r.name));
        let message = match (own_failure, downstream_failed) {
            (true, _) if r.service == "account" => "transfer failed: ledger timeout",
            (true, _) => "internal error",
            (false, Some(_)) => "upstream call failed",
            _ => "",
        };
        let user = self.rng.i64(1000..1100);
        self.push(
            r.service,
            r.name,
            span::SpanKind::Server,
            id,
            parent,
            start,
            end,
            failed.then_some(message),
            vec![
                attr("http.request.method", s(method)),
                attr("http.route", s(path)),
                attr(
                    "http.response.status_code",
                    any_value::Value::IntValue(i64::from(code)),
                ),
                attr("user.id", any_value::Value::IntValue(user)),
            ],
        );
        let trace = TraceId(self.trace_id).to_hex();
        let span = SpanId(id).to_hex();
        let ms = (end - start) as f64 / 1e6;
        let (level, msg) = match (own_failure, downstream_failed) {
            (true, _) => (
                "error",
                format!("{} {} failed with {code}: {message}", method, path),
            ),
            (false, Some(d)) => (
                "warn",
                format!("{method} {path} answered {code}: {d} failed"),
            ),
            _ => ("info", format!("{method} {path} {code} in {ms:.1} ms")),
        };
        self.out.lines.push(Line {
            service: r.service,
            ns: end,
            json: serde_json::json!({
                "level": level, "msg": msg, "service": r.service, "trace_id": trace, "span_id": span,
                "http.route": path, "status": code, "duration_ms": (ms * 10.0).round() / 10.0,
            }),
        });
        self.out
            .observations
            .push((r.service, r.name, code, ms / 1e3, trace, span));
        (end, failed)
    }
}

/// One request through the system, ending at `now_ns`.
fn request(rng: &mut fastrand::Rng, faults: &[FaultKind], now_ns: i64) -> Output {
    let pick = rng.f64();
    let mut acc = 0.0;
    let entry = ENTRY_MIX
        .iter()
        .find(|(_, share)| {
            acc += share;
            pick < acc
        })
        .map_or(ENTRY_MIX[0].0, |(n, _)| *n);
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&rng.u64(..).to_be_bytes());
    trace_id[8..].copy_from_slice(&rng.u64(1..).to_be_bytes());
    let mut sim = Sim {
        rng,
        faults,
        trace_id,
        out: Output::default(),
    };
    let Some(r) = route("gateway", entry).or(ROUTES.first()) else {
        return Output::default();
    };
    let (end, _) = sim.handle(r, None, 0);
    // Times were simulated from 0: move the trace so that it ends now.
    let shift = now_ns - end;
    let mut out = sim.out;
    for spans in out.spans.values_mut() {
        for sp in spans {
            sp.start_time_unix_nano = (sp.start_time_unix_nano as i64 + shift) as u64;
            sp.end_time_unix_nano = (sp.end_time_unix_nano as i64 + shift) as u64;
        }
    }
    for l in &mut out.lines {
        l.ns += shift;
        l.json["ts"] = serde_json::Value::String(crate::sinks::rfc3339_nanos(l.ns));
    }
    out
}

fn resource_spans(svc: &'static str, spans: Vec<Span>) -> ResourceSpans {
    let host = service(svc).map_or("node-a", |s| s.host);
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                attr("service.name", s(svc)),
                attr("host.name", s(host)),
                attr("deployment.environment", s("demo")),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "triad-demo".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Generates traffic until `cancel` fires.
pub async fn run(
    cfg: DemoConfig,
    telemetry: Telemetry,
    cancel: CancellationToken,
) -> Result<(), DemoError> {
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let mut host_rng = fastrand::Rng::with_seed(cfg.seed ^ 0x5eed);
    let dir = cfg.log_dir.clone();
    let files = tokio::task::spawn_blocking(move || LogFiles::open(&dir))
        .await
        .map_err(|e| DemoError::Io {
            path: cfg.log_dir.display().to_string(),
            source: std::io::Error::other(e),
        })??;
    let files = std::sync::Arc::new(std::sync::Mutex::new(files));
    let (tx, rx) = mpsc::channel(EXPORT_QUEUE);
    let exporter = tokio::spawn(export(cfg.otlp_endpoint.clone(), rx, cancel.clone()));
    let faults = schedule(cfg.cycle);
    let started = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut carry = 0.0;
    let mut last_tick = Instant::now();
    let mut announced: Vec<FaultKind> = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let dt = now - last_tick;
        last_tick = now;
        let on = active(&faults, cfg.cycle, started.elapsed());
        if on != announced {
            tracing::info!(faults = ?on, "demo faults changed");
            announced = on.clone();
        }
        telemetry.run_hosts(dt, |host, _cpu| {
            let hot = on.iter().find_map(|f| match f {
                FaultKind::HotHost { host: h, busy } if *h == host => Some(*busy),
                _ => None,
            });
            hot.unwrap_or(0.2) + (host_rng.f64() - 0.5) * 0.04
        });
        carry += cfg.rate * dt.as_secs_f64();
        let n = carry.floor() as usize;
        carry -= n as f64;
        if n == 0 {
            continue;
        }
        let now_ns = triad_model::now_ns();
        let mut by_service: BTreeMap<&'static str, Vec<Span>> = BTreeMap::new();
        let mut lines = Vec::new();
        for i in 0..n {
            // Spread the batch's requests over the tick.
            let out = request(
                &mut rng,
                &on,
                now_ns - ((n - 1 - i) as i64) * (TICK.as_nanos() as i64 / n as i64),
            );
            for (svc, spans) in out.spans {
                by_service.entry(svc).or_default().extend(spans);
            }
            for (svc, route, code, secs, trace, span) in &out.observations {
                telemetry.observe(
                    svc,
                    route.split_once(' ').map_or(route, |(_, p)| p),
                    *code,
                    *secs,
                    trace,
                    span,
                );
            }
            lines.extend(out.lines);
        }
        let req = ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .map(|(svc, spans)| resource_spans(svc, spans))
                .collect(),
        };
        if tx.try_send(req).is_err() {
            tracing::warn!("demo span export is behind; a batch was dropped");
        }
        let files = files.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut f = files.lock().unwrap_or_else(|p| p.into_inner());
            lines.sort_by_key(|l| l.ns);
            for l in &lines {
                f.write(l.service, l.ns, &l.json.to_string())?;
            }
            f.flush()
        })
        .await;
        match written {
            Ok(r) => r?,
            Err(e) => tracing::error!(error = %e, "demo log writer failed"),
        }
    }
    drop(tx);
    let _ = exporter.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(seed: u64, faults: &[FaultKind]) -> Vec<(Vec<u8>, usize, usize)> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..50)
            .map(|_| {
                let o = request(&mut rng, faults, 1_700_000_000_000_000_000);
                let spans: usize = o.spans.values().map(Vec::len).sum();
                let errors = o
                    .lines
                    .iter()
                    .filter(|l| l.json["level"] == "error")
                    .count();
                (
                    o.spans.values().next().unwrap()[0].trace_id.clone(),
                    spans,
                    errors,
                )
            })
            .collect()
    }

    #[test]
    fn same_seed_same_requests() {
        assert_eq!(ids(7, &[]), ids(7, &[]));
        assert_ne!(ids(7, &[]), ids(8, &[]));
    }

    #[test]
    fn a_request_is_one_trace_across_services_ending_now() {
        let mut rng = fastrand::Rng::with_seed(1);
        let now = 1_700_000_000_000_000_000;
        for _ in 0..20 {
            let o = request(&mut rng, &[], now);
            let all: Vec<&Span> = o.spans.values().flatten().collect();
            let trace = &all[0].trace_id;
            assert!(all.iter().all(|s| &s.trace_id == trace));
            assert_eq!(
                all.iter().filter(|s| s.parent_span_id.is_empty()).count(),
                1,
                "one root"
            );
            assert!(all.iter().all(|s| s.end_time_unix_nano as i64 <= now
                && s.start_time_unix_nano <= s.end_time_unix_nano));
            assert!(o.spans.contains_key("gateway") && o.spans.len() >= 2);
            assert_eq!(
                o.lines.len(),
                all.iter()
                    .filter(|s| s.kind == span::SpanKind::Server as i32)
                    .count()
            );
        }
    }

    #[test]
    fn faults_show_in_latency_and_errors() {
        let mut rng = fastrand::Rng::with_seed(3);
        let faults = [
            FaultKind::Errors {
                service: "account",
                ratio: 0.5,
            },
            FaultKind::Latency {
                service: "profile",
                factor: 40.0,
            },
        ];
        let mut account = (0, 0);
        let mut profile_ms = Vec::new();
        for _ in 0..400 {
            let o = request(&mut rng, &faults, 1_700_000_000_000_000_000);
            for (svc, _, code, secs, _, _) in &o.observations {
                if *svc == "account" {
                    account.0 += 1;
                    account.1 += usize::from(*code >= 500);
                }
                if *svc == "profile" {
                    profile_ms.push(secs * 1e3);
                }
            }
        }
        let ratio = account.1 as f64 / account.0 as f64;
        assert!((0.35..0.65).contains(&ratio), "{ratio}");
        profile_ms.sort_by(f64::total_cmp);
        assert!(
            profile_ms[profile_ms.len() / 2] > 150.0,
            "p50 {}",
            profile_ms[profile_ms.len() / 2]
        );
    }
}
