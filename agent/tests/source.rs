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
    let waker = source.waker();
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
    waker.wake();
    thread.join().unwrap();
}

fn config(dir: &std::path::Path) -> SourceConfig {
    SourceConfig {
        tailer: TailerConfig {
            include: vec![format!("{}/*.log", dir.display())],
            ..Default::default()
        },
        checkpoint_path: dir.join("state/checkpoints.json"),
        // Long: the changes must be found through events, not the fallback scan.
        scan_interval: Duration::from_secs(600),
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
    let waker = src.waker();
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
    waker.wake();
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

/// The sum of a metric's samples in the registry's text exposition.
fn metric_sum(registry: &prometheus_client::registry::Registry, name: &str) -> f64 {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A source running on its own thread over `cfg`, with registered metrics.
struct Running {
    sink: Arc<RecordingSink>,
    registry: prometheus_client::registry::Registry,
    stop: Arc<AtomicBool>,
    waker: triad_agent::watch::Waker,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(cfg: SourceConfig) -> Running {
        let sink = Arc::new(RecordingSink {
            fail_first: 0,
            acks: AckBoard::default(),
            calls: AtomicUsize::new(0),
            delivered: Mutex::new(Vec::new()),
        });
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = AgentMetrics::register(&mut registry);
        let src = FileSource::new(cfg, sink.acks.clone(), metrics).unwrap();
        let waker = src.waker();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, sink) = (stop.clone(), sink.clone());
            std::thread::spawn(move || src.run(sink, block_on, || stop.load(Ordering::SeqCst)))
        };
        Running {
            sink,
            registry,
            stop,
            waker,
            thread: Some(thread),
        }
    }

    fn wait_for(&self, what: &str, done: impl Fn(&[LogRecord]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&self.sink.delivered.lock().unwrap()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn has(&self, body: &str) -> bool {
        self.sink
            .delivered
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.body == body)
    }

    fn wakeups(&self) -> f64 {
        metric_sum(&self.registry, "triad_agent_source_wakeups_total")
    }

    fn scans(&self) -> f64 {
        metric_sum(&self.registry, "triad_agent_directory_scans_total")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Regression: an idle agent over a directory glob spun a core. Listing the directory
/// and opening its files raised inotify events (IN_OPEN, IN_CLOSE_NOWRITE) that woke the
/// source, whose scan raised them again: ~1,500 scans a second with nothing written.
/// Counted, not timed: over seconds of quiet the source may wake a handful of times
/// (an acknowledgement, the checkpoint write) and list the directory not at all.
#[test]
fn regression_idle_source_spun_on_its_own_directory_events() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for i in 0..50 {
        append(
            &logs.join(format!("app-{i}.log")),
            &format!("start {i}\nready {i}\n"),
        );
    }
    let mut cfg = config(&logs);
    cfg.checkpoint_path = dir.path().join("state/checkpoints.json");
    cfg.scan_interval = Duration::from_secs(10);
    let src = Running::start(cfg);
    src.wait_for("the files' 100 lines", |d| d.len() == 100);

    // Quiet: nothing is written for 3 s.
    std::thread::sleep(Duration::from_millis(300));
    let (w0, s0) = (src.wakeups(), src.scans());
    std::thread::sleep(Duration::from_secs(3));
    let (w1, s1) = (src.wakeups(), src.scans());
    assert!(w1 - w0 <= 5.0, "{} wake-ups in 3 s of quiet", w1 - w0);
    assert_eq!(s1 - s0, 0.0, "directory scans in 3 s of quiet");

    // A write to a known file is read from its event, without listing the directory.
    append(&logs.join("app-7.log"), "written later\n");
    src.wait_for("the appended line", |d| {
        d.iter().any(|r| r.body == "written later")
    });
    assert_eq!(src.scans() - s1, 0.0, "a write needs no directory scan");

    // A new file's creation is an event too: a scan finds it (the fallback scan is 10 s
    // away, the wait below 20 s: that it comes within a second shows the event path).
    let t = Instant::now();
    append(&logs.join("new.log"), "from a new file\n");
    src.wait_for("the new file's line", |d| {
        d.iter().any(|r| r.body == "from a new file")
    });
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "found by the event, not the fallback scan"
    );
    assert!(src.scans() - s1 >= 1.0);

    // Truncated and rewritten in place: read again from its start.
    std::fs::write(logs.join("app-3.log"), "after truncation\n").unwrap();
    src.wait_for("the rewritten file", |d| {
        d.iter().any(|r| r.body == "after truncation")
    });
    assert!(src.has("start 3") && src.has("ready 49"));
}

/// Container logs: `/var/log/containers/*.log` are symlinks into the runtime's own
/// directories, where the writes happen; those directories are watched too, so a write
/// is read at once without waiting for the fallback scan (600 s here).
#[test]
fn writes_behind_symlinks_are_read_from_their_targets_events() {
    let dir = tempfile::tempdir().unwrap();
    let (links, pods) = (
        dir.path().join("containers"),
        dir.path().join("pods/ns_web_1/web"),
    );
    std::fs::create_dir_all(&links).unwrap();
    std::fs::create_dir_all(&pods).unwrap();
    let target = pods.join("0.log");
    append(&target, "{\"msg\":\"first\"}\n");
    std::os::unix::fs::symlink(&target, links.join("web_ns_web-1.log")).unwrap();
    let mut cfg = config(&links);
    cfg.checkpoint_path = dir.path().join("state/checkpoints.json");
    let src = Running::start(cfg);
    src.wait_for("the first line", |d| d.len() == 1);
    let s0 = src.scans();
    append(&target, "{\"msg\":\"second\"}\n");
    src.wait_for("the line written behind the link", |d| d.len() == 2);
    assert!(src.has("second"));
    assert_eq!(src.scans() - s0, 0.0, "read from the write's event alone");
}
