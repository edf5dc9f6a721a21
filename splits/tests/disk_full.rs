//! A store whose disk stops taking writes: the write that fails is refused (never
//! acknowledged), the store says it is not healthy, and once the disk takes writes
//! again [`Store::restart`] brings it back in-process with every acknowledged record
//! and none of the refused one. A file size limit (`RLIMIT_FSIZE`, with `SIGXFSZ`
//! ignored, so writes past it fail with `EFBIG`) stands in for the full disk: it is
//! process-wide, hence this file's single test in its own binary.

mod common;

use common::*;
use triad_model::store::LogRead;

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

#[test]
fn a_store_stopped_by_a_full_disk_restarts_with_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_logs(dir.path(), fast_cfg());
    let rt = runtime();
    let now = triad_model::now_ns();
    let line = |i: usize, fill: usize| {
        log(
            now,
            &format!("line-{i} {}", "x".repeat(fill)),
            "s",
            "info",
            None,
        )
    };
    for i in 0..5 {
        rt.block_on(store.append(vec![line(i, 10)])).unwrap();
    }
    // The disk "fills": no file may grow past 64 KiB.
    set_file_size_limit(64 << 10);
    let mut refused = None;
    for i in 5..100 {
        if rt.block_on(store.append(vec![line(i, 8 << 10)])).is_err() {
            refused = Some(i);
            break;
        }
    }
    let refused = refused.expect("a write past the limit is refused");
    assert!(!store.store().is_healthy());
    assert!(
        rt.block_on(store.append(vec![line(1000, 10)])).is_err(),
        "stopped"
    );

    // Space again: restarted in-process, it takes writes and lost nothing acknowledged.
    set_file_size_limit(libc::RLIM_INFINITY);
    store.store().restart().unwrap();
    assert!(store.store().is_healthy());
    rt.block_on(store.append(vec![line(2000, 10)])).unwrap();
    let found = |word: &str| {
        store
            .search(&triad_model::store::LogQuery {
                tenant: "default".into(),
                query: word.into(),
                start_ns: now - HOUR_NS,
                end_ns: now + HOUR_NS,
                limit: 10,
                histogram_buckets: 0,
                oldest_first: false,
            })
            .unwrap()
            .total
    };
    wait_for("the new line searchable", || found("line-2000") == 1);
    for i in 0..refused {
        assert_eq!(found(&format!("line-{i}")), 1, "acknowledged line {i}");
    }
    assert_eq!(found(&format!("line-{refused}")), 0, "the refused line");
    store.store().shutdown();
}
