//! A TSDB whose disk stops taking writes never acknowledges a sample that a crash would
//! lose: the append whose WAL write fails is refused, and so is its retry while the
//! disk is full (the head has the samples, the WAL record holding them is not synced);
//! a cut that cannot log leaves the head as it was. Once the disk takes writes again,
//! the retry is acknowledged and everything survives a crash. A file size limit
//! (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored: writes past it fail with `EFBIG`) stands in
//! for the full disk; it is process-wide, hence this file's single test.

use triad_model::metric::{Labels, Matcher};
use triad_tsdb::{AppendBatch, Tsdb, TsdbMetrics, TsdbOptions};

fn set_file_size_limit(bytes: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain libc calls with valid arguments; the test is alone in its process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

const SERIES: usize = 50;

fn batch(t: i64) -> AppendBatch {
    AppendBatch {
        samples: (0..SERIES)
            .map(|i| {
                let labels = Labels::new(vec![
                    ("__name__".into(), "disk_full_test".into()),
                    ("i".into(), format!("{i:03}")),
                ]);
                (labels, t, i as f64)
            })
            .collect(),
        ..AppendBatch::default()
    }
}

fn samples(db: &Tsdb) -> usize {
    db.select(
        &[Matcher::equal("__name__", "disk_full_test")],
        i64::MIN,
        i64::MAX,
    )
    .unwrap()
    .iter()
    .map(|s| s.samples.len())
    .sum()
}

fn open(dir: &std::path::Path) -> Tsdb {
    let opts = TsdbOptions {
        block_range_ms: 3_600_000,
        compact: false,
        ..TsdbOptions::default()
    };
    Tsdb::open(dir, opts, TsdbMetrics::unregistered()).unwrap()
}

#[test]
fn a_full_disk_never_acknowledges_what_a_crash_would_lose() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.append(&batch(1_000), true).unwrap();
    // The disk "fills": no file may grow past 64 KiB.
    set_file_size_limit(64 << 10);
    let mut refused = None;
    for i in 2..10_000 {
        if db.append(&batch(i * 1_000), true).is_err() {
            refused = Some(i * 1_000);
            break;
        }
    }
    let t = refused.expect("an append past the limit is refused");
    // The sender retries: the head has these samples, but not durably — refused again.
    assert!(
        db.append(&batch(t), true).is_err(),
        "retry acknowledged while not durable"
    );
    // A cut that cannot log leaves the head as it was: every sample still readable.
    let before = samples(&db);
    assert!(db.flush().is_err());
    assert_eq!(samples(&db), before, "a failed cut lost the head's samples");

    // Space again: the retry is acknowledged, a cut works, and a crash loses nothing.
    set_file_size_limit(libc::RLIM_INFINITY);
    db.append(&batch(t), true).unwrap();
    db.append(&batch(t + 1_000), true).unwrap();
    let acknowledged = samples(&db);
    assert_eq!(acknowledged, (t / 1_000 + 1) as usize * SERIES);
    // `kill -9`: nothing is flushed or closed.
    std::mem::forget(db);
    assert_eq!(samples(&open(dir.path())), acknowledged);
}
