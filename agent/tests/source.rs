//! The file source end to end within the agent: fixtures in the container formats, and
//! a sink that refuses deliveries, to show that lines are retried, not lost, and that
//! checkpoints only move after an acknowledgement.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use triad_agent::forward::AckBoard;
use triad_agent::metrics::AgentMetrics;
use triad_agent::source::{Batch, DeliverFuture, FileSource, Sink, SourceConfig};
use triad_agent::tailer::TailerConfig;
use triad_model::LogRecord;

/// Records what it is given and acknowledges it; refuses the first `fail_first`
/// deliveries.
struct RecordingSink {
    fail_first: usize,
    calls: AtomicUsize,
    delivered: Mutex<Vec<LogRecord>>,
    acks: AckBoard,
}

impl Sink for RecordingSink {
    fn deliver(&self, batch: Batch) -> DeliverFuture<'_> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
                return Err(("collector unavailable".into(), batch));
            }
            self.delivered.lock().unwrap().extend(batch.records);
            self.acks.acknowledge(batch.positions);
            Ok(())
        })
    }
}

fn source(sink: &RecordingSink, dir: &std::path::Path) -> FileSource {
    FileSource::new(config(dir), sink.acks.clone(), AgentMetrics::unregistered()).unwrap()
}

/// The sink's futures are ready at once; poll them to completion.
fn block_on<T>(mut f: Pin<Box<dyn Future<Output = T> + Send + '_>>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn run_until(
    source: FileSource,
    sink: Arc<RecordingSink>,
    mut done: impl FnMut(&RecordingSink) -> bool,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stop, sink) = (stop.clone(), sink.clone());
        std::thread::spawn(move || source.run(sink, block_on, || stop.load(Ordering::SeqCst)))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&sink) {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
}

fn config(dir: &std::path::Path) -> SourceConfig {
    SourceConfig {
        tailer: TailerConfig {
            include: vec![format!("{}/*.log", dir.display())],
            ..Default::default()
        },
        checkpoint_path: dir.join("state/checkpoints.json"),
        poll_interval: Duration::from_millis(5),
        tenant: "default".into(),
        host: "node-1".into(),
        labels: vec![("env".into(), "test".into())],
    }
}

fn bodies(sink: &RecordingSink) -> Vec<String> {
    let mut v: Vec<String> = sink
        .delivered
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn docker_and_cri_fixtures_are_reassembled_and_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("docker.log"), dir.path().join("docker.log")).unwrap();
    std::fs::copy(fixtures.join("cri.log"), dir.path().join("cri.log")).unwrap();
    let sink = Arc::new(RecordingSink {
        fail_first: 0,
        acks: AckBoard::default(),
        calls: AtomicUsize::new(0),
        delivered: Mutex::new(Vec::new()),
    });
    run_until(source(&sink, dir.path()), sink.clone(), |s| {
        s.delivered.lock().unwrap().len() == 6
    });
    assert_eq!(
        bodies(&sink),
        [
            "a line longer than 16 KiB is split by Docker: part one, part two, end",
            "first piece, second piece, last piece",
            "payment declined",
            "plain CRI line",
            "plain stdout text",
            "request served",
        ]
    );
    let all = sink.delivered.lock().unwrap();
    let served = all.iter().find(|r| r.body == "request served").unwrap();
    assert_eq!(
        served.trace_id.unwrap().to_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        served.timestamp_ns, 1_795_323_600_000_000_001,
        "the runtime's time"
    );
    let declined = all.iter().find(|r| r.body == "payment declined").unwrap();
    assert_eq!(
        (declined.level().as_str(), declined.service.as_str()),
        ("error", "payments")
    );
    assert!(
        all.iter()
            .all(|r| r.host == "node-1" && r.attributes.iter().any(|a| a.key == "env"))
    );
}

#[test]
fn refused_deliveries_are_retried_and_checkpoints_wait_for_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.log"), "one\ntwo\nthree\n").unwrap();
    let sink = Arc::new(RecordingSink {
        fail_first: 3,
        acks: AckBoard::default(),
        calls: AtomicUsize::new(0),
        delivered: Mutex::new(Vec::new()),
    });
    let checkpoint = dir.path().join("state/checkpoints.json");
    let seen_before_ack = Arc::new(AtomicBool::new(false));
    {
        let seen = seen_before_ack.clone();
        let cp = checkpoint.clone();
        run_until(source(&sink, dir.path()), sink.clone(), move |s| {
            if s.delivered.lock().unwrap().is_empty() && cp.exists() {
                seen.store(true, Ordering::SeqCst);
            }
            s.delivered.lock().unwrap().len() == 3
        });
    }
    assert!(
        !seen_before_ack.load(Ordering::SeqCst),
        "no checkpoint before the first acknowledgement"
    );
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        4,
        "three refusals, then the same batch again"
    );
    assert_eq!(bodies(&sink), ["one", "three", "two"], "each line once");
    assert!(checkpoint.exists());

    // A restart resumes after the acknowledged lines: only the new one comes.
    std::fs::write(dir.path().join("app.log"), "one\ntwo\nthree\nfour\n").unwrap();
    let again = Arc::new(RecordingSink {
        fail_first: 0,
        acks: AckBoard::default(),
        calls: AtomicUsize::new(0),
        delivered: Mutex::new(Vec::new()),
    });
    run_until(source(&again, dir.path()), again.clone(), |s| {
        !s.delivered.lock().unwrap().is_empty()
    });
    assert_eq!(bodies(&again), ["four"]);
}

#[test]
fn hostile_files_cost_no_data_and_do_not_stop_the_source() {
    let dir = tempfile::tempdir().unwrap();
    // Binary garbage with NULs and invalid UTF-8, between good lines.
    let mut garbage: Vec<u8> = b"good before\n".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..4096 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    garbage.extend_from_slice(b"\n{\"msg\":\"json with a NUL \\u0000 inside\"}\n\0\0\0\n\xff\xfe broken utf8\n{\"msg\": broken json\ngood after\n");
    std::fs::write(dir.path().join("bin.log"), &garbage).unwrap();
    // A file that becomes a directory while tailed.
    let flip = dir.path().join("flip.log");
    std::fs::write(&flip, "before the flip\n").unwrap();
    let sink = Arc::new(RecordingSink {
        fail_first: 0,
        acks: AckBoard::default(),
        calls: AtomicUsize::new(0),
        delivered: Mutex::new(Vec::new()),
    });
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = AgentMetrics::register(&mut registry);
    let src = FileSource::new(config(dir.path()), sink.acks.clone(), metrics.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stop, sink) = (stop.clone(), sink.clone());
        std::thread::spawn(move || src.run(sink, block_on, || stop.load(Ordering::SeqCst)))
    };
    let has =
        |s: &RecordingSink, body: &str| s.delivered.lock().unwrap().iter().any(|r| r.body == body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(has(&sink, "good after") && has(&sink, "before the flip")) {
        assert!(Instant::now() < deadline, "timed out: {:?}", bodies(&sink));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(&flip).unwrap();
    std::fs::create_dir(&flip).unwrap();
    std::fs::write(dir.path().join("later.log"), "after the flip\n").unwrap();
    while !has(&sink, "after the flip") {
        assert!(Instant::now() < deadline, "timed out: {:?}", bodies(&sink));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    thread.join().expect("the source never panics");

    let all = sink.delivered.lock().unwrap().clone();
    assert!(has(&sink, "good before"));
    assert!(
        has(&sink, "json with a NUL \u{0} inside"),
        "JSON with an escaped NUL is parsed"
    );
    assert!(
        all.iter()
            .any(|r| r.body.contains("\u{fffd}\u{fffd} broken utf8")),
        "invalid UTF-8 replaced, kept"
    );
    assert!(
        all.iter().any(|r| r.body == "{\"msg\": broken json"),
        "broken JSON kept whole"
    );
    assert!(all.iter().any(|r| r.body == "\0\0\0"), "NUL bytes kept");
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    assert!(
        metrics.lines_read.get() >= 8,
        "lines counted: {}",
        metrics.lines_read.get()
    );
    assert!(
        out.contains("triad_agent_parse_errors_total{reason=\"format\"} 1"),
        "the broken JSON line is counted once:\n{out}"
    );
}
