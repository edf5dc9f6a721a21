//! Log store behaviour through its public API.

mod common;

use common::*;
use triad_model::config::StoreConfig;
use triad_model::store::{LogQuery, LogRead};

fn query(q: &str, start: i64, end: i64) -> LogQuery {
    LogQuery {
        tenant: "default".into(),
        query: q.into(),
        start_ns: start,
        end_ns: end,
        limit: 100,
        histogram_buckets: 10,
        oldest_first: false,
    }
}

#[test]
fn finds_words_identifiers_paths_ips_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_logs(dir.path(), fast_cfg());
    let now = triad_model::now_ns();
    let t = tid(9);
    let records = vec![
        log(
            now - 3_000,
            "GET /api/v1/users failed ERR_CONN_REFUSED from 10.0.0.1:8080",
            "checkout",
            "ERROR",
            Some(t),
        ),
        log(
            now - 2_000,
            "payment accepted for order 77",
            "payments",
            "info",
            None,
        ),
        log(
            now - 1_000,
            "retrying request to 10.0.0.2",
            "checkout",
            "warning",
            None,
        ),
    ];
    runtime().block_on(store.append(records)).unwrap();
    let all = |q: &str| store.search(&query(q, now - HOUR_NS, now + 1)).unwrap();
    wait_for("commit", || all("").total == 3);

    assert_eq!(
        all("ERR_CONN_REFUSED").total,
        1,
        "identifier with underscores"
    );
    assert_eq!(all("err_conn_refused").total, 1, "case-insensitive");
    assert_eq!(all("\"/api/v1/users\"").total, 1, "path as phrase");
    assert_eq!(all("\"10.0.0.1\"").total, 1, "IP as phrase");
    assert_eq!(all("service:checkout").total, 2);
    assert_eq!(all("level:error").total, 1);
    assert_eq!(all("level:warn").total, 1, "warning normalised to warn");
    assert_eq!(
        all(&format!("trace_id:{}", t.to_hex().to_uppercase())).total,
        1,
        "trace IDs match in any case"
    );
    assert_eq!(all("attributes.user_id:42").total, 3);
    assert_eq!(all("service:checkout retrying").total, 1, "terms are ANDed");
    assert_eq!(all("payment OR retrying").total, 2);

    let r = all("");
    assert!(
        r.hits
            .windows(2)
            .all(|w| w[0].timestamp_ns >= w[1].timestamp_ns),
        "newest first"
    );
    assert_eq!(r.hits[0].body, "retrying request to 10.0.0.2");
    assert_eq!(r.histogram.iter().sum::<u64>(), 3);

    let e = store
        .search(&query("service:(", now - HOUR_NS, now))
        .unwrap_err();
    assert!(e.to_string().contains("invalid query"), "{e}");
    store.store().shutdown();
}

#[test]
fn total_is_exact_beyond_the_limit_and_range_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_logs(dir.path(), fast_cfg());
    let now = triad_model::now_ns();
    let records: Vec<_> = (0..500)
        .map(|i| log(now - i * 1_000_000, "tick", "s", "info", None))
        .collect();
    runtime().block_on(store.append(records)).unwrap();
    wait_for("commit", || {
        store
            .search(&query("tick", now - HOUR_NS, now + 1))
            .unwrap()
            .total
            == 500
    });
    let mut q = query("tick", now - 100 * 1_000_000 + 1, now + 1);
    q.limit = 10;
    let r = store.search(&q).unwrap();
    assert_eq!(r.total, 100);
    assert_eq!(r.hits.len(), 10);
    assert_eq!(r.histogram.len(), 10);
    assert_eq!(r.histogram.iter().sum::<u64>(), 100);
    store.store().shutdown();
}

#[test]
fn tenants_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_logs(dir.path(), fast_cfg());
    let now = triad_model::now_ns();
    let mut other = log(now, "secret", "s", "info", None);
    other.tenant = "acme".into();
    runtime()
        .block_on(store.append(vec![other, log(now, "public", "s", "info", None)]))
        .unwrap();
    wait_for("commit", || {
        store
            .search(&query("", now - HOUR_NS, now + 1))
            .unwrap()
            .total
            == 1
    });
    assert_eq!(
        store
            .search(&query("secret", now - HOUR_NS, now + 1))
            .unwrap()
            .total,
        0
    );
    let mut q = query("", now - HOUR_NS, now + 1);
    q.tenant = "acme".into();
    assert_eq!(store.search(&q).unwrap().hits[0].body, "secret");
    store.store().shutdown();
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = triad_model::now_ns();
    {
        let store = open_logs(
            dir.path(),
            StoreConfig {
                commit_interval_ms: 600_000,
                ..fast_cfg()
            },
        );
        runtime()
            .block_on(store.append(vec![log(now, "before restart", "s", "info", None)]))
            .unwrap();
        // Acknowledged, not yet committed: shutdown commits what is queued.
        store.store().shutdown();
    }
    let store = open_logs(dir.path(), fast_cfg());
    assert_eq!(
        store
            .search(&query("restart", now - HOUR_NS, now + 1))
            .unwrap()
            .total,
        1
    );
    store.store().shutdown();
}

#[test]
fn tail_returns_new_lines_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_logs(dir.path(), fast_cfg());
    let now = triad_model::now_ns();
    runtime()
        .block_on(store.append(vec![log(now, "old line", "s", "info", None)]))
        .unwrap();
    wait_for("commit", || {
        store
            .search(&query("", now - HOUR_NS, now + 1))
            .unwrap()
            .total
            == 1
    });
    let start = store.tail("default", "", None, 10).unwrap();
    assert!(start.records.is_empty());
    let batch: Vec<_> = (0..5)
        .map(|i| log(now - i, &format!("new {i}"), "s", "info", None))
        .collect();
    runtime().block_on(store.append(batch)).unwrap();
    let mut got = Vec::new();
    let mut cursor = start.cursor;
    wait_for("tail", || {
        let b = store.tail("default", "new", Some(cursor), 2).unwrap();
        cursor = b.cursor;
        got.extend(b.records.into_iter().map(|r| r.body));
        got.len() == 5
    });
    assert_eq!(got, vec!["new 0", "new 1", "new 2", "new 3", "new 4"]);
    store.store().shutdown();
}

#[test]
fn a_split_goes_when_the_longest_retention_of_its_tenants_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        split_max_docs: 2,
        split_max_age_secs: 1,
        retention_secs: 3 * 3600,
        ..fast_cfg()
    };
    let store = open_logs(dir.path(), cfg);
    // "short" keeps an hour, the default three.
    store.store().set_retention(triad_model::config::Retention {
        default_secs: 3 * 3600,
        tenants: [("short".to_string(), 3600)].into(),
    });
    let now = triad_model::now_ns();
    let rt = runtime();
    let of = |tenant: &str, body: &str| triad_model::LogRecord {
        tenant: tenant.into(),
        ..log(now - 2 * HOUR_NS, body, "s", "info", None)
    };
    // split_max_docs = 2: each pair seals a split, two hours old.
    for pair in [
        [of("short", "short-only-1"), of("short", "short-only-2")],
        [of("short", "mixed-short"), of("default", "mixed-default")],
        [
            of("default", "default-only-1"),
            of("default", "default-only-2"),
        ],
    ] {
        let sealed = store
            .store()
            .splits()
            .iter()
            .filter(|s| s.meta().sealed)
            .count();
        rt.block_on(store.append(pair.to_vec())).unwrap();
        wait_for("split sealed", || {
            store
                .store()
                .splits()
                .iter()
                .filter(|s| s.meta().sealed)
                .count()
                == sealed + 1
        });
    }
    // Only the split of "short" alone is past its retention; the mixed one lives as
    // long as "default" does.
    assert_eq!(store.store().apply_retention(now).unwrap(), 1);
    let found = |tenant: &str, q: &str| {
        store
            .search(&LogQuery {
                tenant: tenant.into(),
                ..query(q, now - 3 * HOUR_NS, now + 1)
            })
            .unwrap()
            .total
    };
    assert_eq!(found("short", "short-only-1"), 0);
    assert_eq!(found("short", "mixed-short"), 1);
    assert_eq!(found("default", "mixed-default"), 1);
    assert_eq!(found("default", "default-only-1"), 1);
    // Three hours on, everything has gone.
    assert_eq!(store.store().apply_retention(now + 2 * HOUR_NS).unwrap(), 2);
    store.store().shutdown();
}

#[test]
fn retention_drops_expired_splits_and_queries_skip_out_of_range_splits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        split_max_docs: 1,
        split_max_age_secs: 1,
        retention_secs: 1800,
        ..fast_cfg()
    };
    let store = open_logs(dir.path(), cfg);
    let now = triad_model::now_ns();
    let rt = runtime();
    // split_max_docs = 1: every commit seals its split.
    rt.block_on(store.append(vec![log(now - 2 * HOUR_NS, "ancient", "s", "info", None)]))
        .unwrap();
    wait_for("first split sealed", || {
        store.store().splits().iter().any(|s| s.meta().sealed)
    });
    rt.block_on(store.append(vec![log(now, "fresh", "s", "info", None)]))
        .unwrap();
    wait_for("second split sealed", || {
        store
            .store()
            .splits()
            .iter()
            .filter(|s| s.meta().sealed)
            .count()
            == 2
    });

    assert_eq!(
        store.store().searchers(now - 60_000_000_000, now + 1).len(),
        1,
        "old split skipped"
    );
    assert_eq!(store.store().searchers(now - 3 * HOUR_NS, now + 1).len(), 2);
    assert_eq!(
        store
            .search(&query("ancient", now - 3 * HOUR_NS, now + 1))
            .unwrap()
            .total,
        1
    );

    let before: Vec<_> = store
        .store()
        .splits()
        .iter()
        .map(|s| s.local_dir().unwrap().to_path_buf())
        .collect();
    assert_eq!(store.store().apply_retention(now).unwrap(), 1);
    assert_eq!(
        store
            .search(&query("ancient", now - 3 * HOUR_NS, now + 1))
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        store
            .search(&query("fresh", now - 3 * HOUR_NS, now + 1))
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        before.iter().filter(|d| d.exists()).count(),
        before.len() - 1,
        "expired split deleted from disk"
    );
    store.store().shutdown();

    // Still gone after a restart.
    let store = open_logs(dir.path(), fast_cfg());
    assert_eq!(
        store
            .search(&query("ancient", now - 3 * HOUR_NS, now + 1))
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        store
            .search(&query("fresh", now - 3 * HOUR_NS, now + 1))
            .unwrap()
            .total,
        1
    );
    store.store().shutdown();
}

#[test]
fn retention_by_size_drops_oldest_sealed_splits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        split_max_docs: 1,
        retention_bytes: 1,
        ..fast_cfg()
    };
    let store = open_logs(dir.path(), cfg);
    let now = triad_model::now_ns();
    runtime()
        .block_on(store.append(vec![log(now, "a", "s", "info", None)]))
        .unwrap();
    wait_for("sealed", || {
        store.store().splits().iter().any(|s| s.meta().sealed)
    });
    assert_eq!(store.store().apply_retention(now).unwrap(), 1);
    assert!(
        store.store().splits().iter().all(|s| !s.meta().sealed),
        "only the active split remains"
    );
    store.store().shutdown();
}

#[test]
fn span_id_queries_and_round_trip_of_fast_field_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_logs(dir.path(), fast_cfg());
    let now = triad_model::now_ns();
    let mut with_span = log(now - 5, "inside the span", "api", "info", Some(tid(3)));
    with_span.span_id = Some(sid(0xab));
    with_span.observed_ns = now + 7;
    let other = log(now - 4, "other line", "api", "info", Some(tid(3)));
    runtime()
        .block_on(store.append(vec![with_span.clone(), other]))
        .unwrap();
    let q = |text: &str| store.search(&query(text, now - HOUR_NS, now + 1)).unwrap();
    wait_for("commit", || q("").total == 2);
    let hit = q(&format!("span_id:{}", sid(0xab).to_hex()));
    assert_eq!(hit.total, 1);
    assert_eq!(
        hit.hits[0], with_span,
        "the record comes back exactly, ts and span from fast fields"
    );
    assert_eq!(
        q(&format!(
            "trace_id:{} AND NOT span_id:{}",
            tid(3).to_hex(),
            sid(0xab).to_hex()
        ))
        .total,
        1
    );
    assert_eq!(
        q(&format!("trace_id:{} AND NOT inside", tid(3).to_hex())).total,
        1,
        "AND NOT as in Lucene"
    );
    let set = format!(
        "span_id: IN [{} {}]",
        sid(0xab).to_hex(),
        sid(0xcd).to_hex()
    );
    assert_eq!(q(&set).total, 1);
    assert!(
        store
            .search(&query("span_id:nothex", now - HOUR_NS, now + 1))
            .is_err()
    );
    store.store().shutdown();
}
