//! Forwarding: the oldest buffered batch goes to a collector over OTLP/gRPC, is
//! retried with exponential backoff and jitter until a collector stores it, and only
//! then is acknowledged in the [`DiskBuffer`] and its file positions handed to the
//! [`AckBoard`] for checkpointing. One batch is in flight at a time, so collectors
//! receive batches in the order they were buffered. With several collectors
//! ([`crate::targets`]) batches go to them in turn, and a failing one is skipped with
//! backoff while the others take its share.
//!
//! The buffered body is already zstd-compressed protobuf; it is framed as a gRPC
//! message with the compressed flag and `grpc-encoding: zstd` and sent as is, so a
//! batch is compressed once, when it is buffered.
//!
//! Answers, as the OTLP specification classifies them: OK (with or without partial
//! success: rejected items are counted, never resent); UNAVAILABLE, DEADLINE_EXCEEDED,
//! ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS, connection errors and
//! RESOURCE_EXHAUSTED with a RetryInfo → retry; INVALID_ARGUMENT and RESOURCE_EXHAUSTED
//! without RetryInfo (the batch can never fit) → dropped, counted and logged as an
//! error. Anything else (UNAUTHENTICATED, UNIMPLEMENTED: a configuration problem) is
//! retried too, slowly, so that fixing the collector's configuration loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::transport::Channel;
use tower::ServiceExt;

use crate::buffer::{DiskBuffer, Entry, Kind};
use crate::checkpoint::Position;
use crate::metrics::AgentMetrics;
use crate::targets::Targets;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long one export may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Acknowledged file positions waiting to be checkpointed by the file source.
#[derive(Clone, Default)]
pub struct AckBoard {
    inner: Arc<Mutex<HashMap<(u64, u64), Position>>>,
    /// Batches acknowledged so far (those that carried positions).
    batches: Arc<std::sync::atomic::AtomicU64>,
}

impl AckBoard {
    /// Records positions whose lines the destination acknowledged. Acknowledgements
    /// arrive in order, so a later position replaces an earlier one.
    pub fn acknowledge(&self, positions: Vec<Position>) {
        if positions.is_empty() {
            return;
        }
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for p in positions {
            m.insert((p.fingerprint.dev, p.fingerprint.ino), p);
        }
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many batches with positions were acknowledged so far: the file source
    /// compares it with what it delivered to know whether acknowledgements are due.
    pub fn acknowledged_batches(&self) -> u64 {
        self.batches.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes every acknowledged position recorded so far.
    pub fn drain(&self) -> Vec<Position> {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.drain().map(|(_, p)| p).collect()
    }
}

/// How an export ended.
#[derive(Debug)]
enum Outcome {
    /// Stored; `rejected` items were refused one by one.
    Ok { rejected: i64, message: String },
    /// Refused for good (invalid, too large).
    Dropped(String),
    /// Try again, after at least the hinted delay.
    Retry(String, Option<Duration>),
}

/// Sends buffered batches to the collectors.
pub struct Forwarder {
    targets: Targets,
    buffer: Arc<DiskBuffer>,
    acks: AckBoard,
    metrics: AgentMetrics,
}

impl Forwarder {
    /// A forwarder to `endpoints` (`http://host:4317`, comma-separated for several).
    /// Connects lazily: collectors may be down at start.
    pub fn new(
        endpoints: &str,
        buffer: Arc<DiskBuffer>,
        acks: AckBoard,
        metrics: AgentMetrics,
    ) -> crate::Result<Forwarder> {
        Ok(Forwarder {
            targets: Targets::new(endpoints, REQUEST_TIMEOUT, FIRST_BACKOFF, MAX_BACKOFF)?,
            buffer,
            acks,
            metrics,
        })
    }

    /// Sends batches until `cancel` fires. A batch in flight when it fires stays in the
    /// buffer and is sent again at the next start.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            let buffer = self.buffer.clone();
            let front = tokio::task::spawn_blocking(move || buffer.front()).await;
            let entry = match front {
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = self.buffer.wait_for_data() => continue,
                        // Belt and braces against a missed wake-up.
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the agent buffer failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "agent buffer task failed");
                    return;
                }
            };
            let signal = signal_of(entry.kind);
            self.targets.resolve().await;
            let target = match self.targets.pick() {
                Ok(i) => i,
                // Every collector failed lately: wait for the first one due.
                Err(wait) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            let (channel, url) = {
                let t = self.targets.get(target);
                (t.channel.clone(), t.url.clone())
            };
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                o = send(channel, &url, &entry) => o,
            };
            match outcome {
                Outcome::Ok { rejected, message } => {
                    self.metrics.observe_send(signal, "ok", started.elapsed());
                    if rejected > 0 {
                        self.metrics.rejected_items(signal, rejected as u64);
                        tracing::warn!(signal, rejected, message = %message, "collector rejected some items of a batch");
                    }
                    self.targets.succeeded(target);
                }
                Outcome::Dropped(why) => {
                    self.metrics
                        .observe_send(signal, "dropped", started.elapsed());
                    tracing::error!(signal, id = entry.id, error = %why, "collector refused a batch for good; dropping it");
                    self.targets.succeeded(target);
                }
                Outcome::Retry(why, hint) => {
                    self.metrics
                        .observe_send(signal, "retry", started.elapsed());
                    let wait = self.targets.failed(target, hint, jittered);
                    tracing::warn!(signal, id = entry.id, error = %why, skip_ms = wait.as_millis() as u64,
                        endpoint = %url, collectors = self.targets.len(),
                        "sending a batch to a collector failed; it is skipped for a while and the batch retried");
                    // The batch goes to the next healthy collector, or waits for one.
                    continue;
                }
            }
            let buffer = self.buffer.clone();
            let acked = tokio::task::spawn_blocking(move || {
                let r = buffer.ack(entry.id, &entry.positions);
                (r, entry.positions)
            })
            .await;
            match acked {
                Ok((Ok(()), positions)) => self.acks.acknowledge(positions),
                Ok((Err(e), positions)) => {
                    tracing::error!(error = %e, "recording an acknowledgement failed");
                    self.acks.acknowledge(positions);
                }
                Err(e) => tracing::error!(error = %e, "agent buffer task failed"),
            }
            self.metrics.set_buffer(&self.buffer);
        }
    }
}

/// Sends one batch to the collector at `url` over `channel`.
async fn send(channel: Channel, url: &str, entry: &Entry) -> Outcome {
    {
        let path = match entry.kind {
            Kind::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Kind::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Kind::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        };
        let mut frame = Vec::with_capacity(5 + entry.body.len());
        frame.push(1); // compressed, per grpc-encoding
        frame.extend_from_slice(&(entry.body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&entry.body);
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("{url}{path}"))
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header("grpc-encoding", "zstd")
            .header("grpc-timeout", format!("{}S", REQUEST_TIMEOUT.as_secs()));
        if let Some(token) = triad_receiver::client::bearer() {
            req = req.header(http::header::AUTHORIZATION, token);
        }
        let req = req.body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )));
        let req = match req {
            Ok(r) => r,
            Err(e) => return Outcome::Dropped(format!("cannot build the request: {e}")),
        };
        let resp = match channel.oneshot(req).await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("{e}: {}", source_chain(&e)), None),
        };
        let (parts, body) = resp.into_parts();
        if parts.status != http::StatusCode::OK {
            return Outcome::Retry(
                format!("HTTP status {} (not a gRPC server?)", parts.status),
                None,
            );
        }
        let collected = match body.collect().await {
            Ok(c) => c,
            Err(e) => return Outcome::Retry(format!("reading the answer: {e}"), None),
        };
        let trailers = collected.trailers().cloned();
        let data = collected.to_bytes();
        let status = trailers
            .as_ref()
            .and_then(tonic::Status::from_header_map)
            .or_else(|| tonic::Status::from_header_map(&parts.headers));
        let Some(status) = status else {
            return Outcome::Retry("answer without grpc-status".into(), None);
        };
        classify(status, entry.kind, &data)
    }
}

fn classify(status: tonic::Status, kind: Kind, data: &[u8]) -> Outcome {
    use tonic::Code;
    let why = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Ok => {
            let (rejected, message) = partial_success(kind, data);
            Outcome::Ok { rejected, message }
        }
        Code::InvalidArgument => Outcome::Dropped(why),
        Code::ResourceExhausted => match triad_receiver::grpc::retry_delay_of(status.details()) {
            Some(delay) => Outcome::Retry(why, Some(delay)),
            None => Outcome::Dropped(why),
        },
        Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented => {
            // Misconfiguration: wait long, but keep the data.
            Outcome::Retry(why, Some(Duration::from_secs(10)))
        }
        _ => Outcome::Retry(why, None),
    }
}

/// The partial-success counts of an OK answer (one gRPC message, uncompressed).
fn partial_success(kind: Kind, data: &[u8]) -> (i64, String) {
    let Some(msg) = data.get(5..) else {
        return (0, String::new());
    };
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    match kind {
        Kind::Logs => ExportLogsServiceResponse::decode(msg)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
        Kind::Traces => ExportTraceServiceResponse::decode(msg)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Kind::Metrics => ExportMetricsServiceResponse::decode(msg)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
    }
    .unwrap_or_default()
}

fn signal_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Logs => "logs",
        Kind::Traces => "traces",
        Kind::Metrics => "metrics",
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// "Full jitter" halved: a wait between half and all of `base`, so agents restarted
/// together do not retry in lockstep.
fn jittered(base: Duration) -> Duration {
    let ms = base.as_millis() as u64;
    Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_otlp_spec_says() {
        let retry = |s: tonic::Status| matches!(classify(s, Kind::Logs, &[]), Outcome::Retry(..));
        assert!(retry(tonic::Status::unavailable("down")));
        assert!(retry(tonic::Status::deadline_exceeded("slow")));
        assert!(retry(tonic::Status::unimplemented("wrong port")));
        assert!(matches!(
            classify(tonic::Status::invalid_argument("bad"), Kind::Logs, &[]),
            Outcome::Dropped(_)
        ));
        // RESOURCE_EXHAUSTED: retry only with a RetryInfo, after its delay.
        assert!(matches!(
            classify(
                tonic::Status::resource_exhausted("too big"),
                Kind::Logs,
                &[]
            ),
            Outcome::Dropped(_)
        ));
        let details = triad_receiver::grpc::retry_info_details(8, "full", Duration::from_secs(3));
        let s = tonic::Status::with_details(tonic::Code::ResourceExhausted, "full", details.into());
        match classify(s, Kind::Traces, &[]) {
            Outcome::Retry(_, Some(d)) => assert_eq!(d, Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_base() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(800));
            assert!(d >= Duration::from_millis(400) && d <= Duration::from_millis(800));
        }
    }
}
