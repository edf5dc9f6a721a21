//! Trace store behaviour through its public API.

mod common;

use common::*;
use triad_model::store::{TraceQuery, TraceRead};

fn q(service: &str, start: i64, end: i64) -> TraceQuery {
    TraceQuery {
        tenant: "default".into(),
        service: service.into(),
        operation: None,
        tags: vec![],
        start_ns: start,
        end_ns: end,
        min_duration_ns: None,
        max_duration_ns: None,
        limit: 20,
        order: Default::default(),
    }
}

#[test]
fn trace_by_id_search_dependencies_and_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let now = triad_model::now_ns();
    let old = now - 5 * 86_400 * 1_000_000_000; // five days ago: outside any default lookback
    {
        let store = open_traces(dir.path(), fast_cfg());
        let spans = vec![
            span(
                tid(1),
                sid(1),
                None,
                "gateway",
                "GET /feed",
                now,
                50_000_000,
                false,
            ),
            span(
                tid(1),
                sid(2),
                Some(sid(1)),
                "feed",
                "load",
                now + 1_000,
                30_000_000,
                true,
            ),
            span(
                tid(1),
                sid(3),
                Some(sid(2)),
                "profile",
                "lookup",
                now + 2_000,
                5_000_000,
                false,
            ),
            span(
                tid(2),
                sid(1),
                None,
                "gateway",
                "GET /profile",
                now - 1_000_000,
                2_000_000,
                false,
            ),
            span(
                tid(3),
                sid(1),
                None,
                "gateway",
                "GET /old",
                old,
                1_000_000,
                false,
            ),
        ];
        runtime().block_on(store.append(spans)).unwrap();
        wait_for("commit", || {
            store.trace("default", tid(3)).unwrap().len() == 1
        });
        store.store().shutdown();
    }
    // Reopen: everything below must work from disk, the catalog included.
    let store = open_traces(dir.path(), fast_cfg());
    assert_eq!(
        store.services("default").unwrap(),
        vec!["feed", "gateway", "profile"]
    );
    let ops: Vec<_> = store
        .operations("default", "gateway")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(ops, vec!["GET /feed", "GET /old", "GET /profile"]);
    assert!(store.services("other-tenant").unwrap().is_empty());

    let t1 = store.trace("default", tid(1)).unwrap();
    assert_eq!(t1.len(), 3);
    assert_eq!(
        store.trace("default", tid(3)).unwrap().len(),
        1,
        "old trace found by ID with no time window"
    );
    assert!(store.trace("default", tid(99)).unwrap().is_empty());
    assert!(
        store.trace("other-tenant", tid(1)).unwrap().is_empty(),
        "tenant isolation"
    );

    let window = (now - 3_600_000_000_000, now + 3_600_000_000_000);
    let ids = store
        .find_trace_ids(&q("gateway", window.0, window.1))
        .unwrap();
    assert_eq!(
        ids,
        vec![tid(1), tid(2)],
        "most recent first; old trace outside the range"
    );

    let mut by_op = q("gateway", window.0, window.1);
    by_op.operation = Some("GET /profile".into());
    assert_eq!(store.find_trace_ids(&by_op).unwrap(), vec![tid(2)]);

    let mut by_tag = q("feed", window.0, window.1);
    by_tag.tags = vec![
        ("error".into(), "true".into()),
        ("http.status_code".into(), "500".into()),
    ];
    assert_eq!(store.find_trace_ids(&by_tag).unwrap(), vec![tid(1)]);
    by_tag.tags = vec![("http.status_code".into(), "200".into())];
    assert!(store.find_trace_ids(&by_tag).unwrap().is_empty());

    let mut by_dur = q("gateway", window.0, window.1);
    by_dur.min_duration_ns = Some(10_000_000);
    assert_eq!(store.find_trace_ids(&by_dur).unwrap(), vec![tid(1)]);
    by_dur.min_duration_ns = None;
    by_dur.max_duration_ns = Some(10_000_000);
    assert_eq!(store.find_trace_ids(&by_dur).unwrap(), vec![tid(2)]);

    let mut limited = q("gateway", window.0, window.1);
    limited.limit = 1;
    assert_eq!(store.find_trace_ids(&limited).unwrap(), vec![tid(1)]);

    // Any service: every trace of the window.
    assert_eq!(
        store.find_trace_ids(&q("", window.0, window.1)).unwrap(),
        vec![tid(1), tid(2)]
    );

    // Tag keys and values from the index's terms.
    let keys = store
        .tag_values("default", None, window.0, window.1, 100)
        .unwrap();
    for k in ["error", "http.status_code", "span.kind"] {
        assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
    }
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    assert_eq!(
        store
            .tag_values("default", Some("http.status_code"), window.0, window.1, 100)
            .unwrap(),
        ["200", "500"]
    );
    assert_eq!(
        store
            .tag_values("default", Some("http.status_code"), window.0, window.1, 1)
            .unwrap(),
        ["200"],
        "at most the limit"
    );
    assert!(
        store
            .tag_values("default", Some("http"), window.0, window.1, 100)
            .unwrap()
            .is_empty(),
        "a key's prefix is not the key"
    );

    let deps = store.dependencies("default", window.0, window.1).unwrap();
    let pairs: Vec<_> = deps
        .iter()
        .map(|d| (d.parent.as_str(), d.child.as_str(), d.call_count))
        .collect();
    assert_eq!(pairs, vec![("feed", "profile", 1), ("gateway", "feed", 1)]);
    store.store().shutdown();
}

#[test]
fn searches_keep_the_most_recent_or_the_slowest_across_services() {
    let dir = tempfile::tempdir().unwrap();
    let now = triad_model::now_ns();
    let store = open_traces(dir.path(), fast_cfg());
    let spans = vec![
        span(
            tid(1),
            sid(1),
            None,
            "a",
            "slow",
            now - 60_000_000_000,
            900_000_000,
            false,
        ),
        span(
            tid(2),
            sid(1),
            None,
            "b",
            "fast",
            now - 1_000_000_000,
            1_000_000,
            false,
        ),
        span(
            tid(3),
            sid(1),
            None,
            "c",
            "middle",
            now - 30_000_000_000,
            50_000_000,
            true,
        ),
    ];
    runtime().block_on(store.append(spans)).unwrap();
    wait_for("commit", || {
        store.trace("default", tid(3)).unwrap().len() == 1
    });
    let mut query = q("", now - 3_600_000_000_000, now);
    query.limit = 2;
    assert_eq!(
        store.find_trace_ids(&query).unwrap(),
        vec![tid(2), tid(3)],
        "recent"
    );
    query.order = triad_model::store::TraceOrder::Slowest;
    assert_eq!(
        store.find_trace_ids(&query).unwrap(),
        vec![tid(1), tid(3)],
        "slowest"
    );
    query.tags = vec![("error".into(), "true".into())];
    assert_eq!(
        store.find_trace_ids(&query).unwrap(),
        vec![tid(3)],
        "failed, any service"
    );
    store.store().shutdown();
}

#[test]
fn duplicate_spans_from_retries_are_returned_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_traces(dir.path(), fast_cfg());
    let now = triad_model::now_ns();
    let s = span(tid(5), sid(1), None, "a", "op", now, 10, false);
    let rt = runtime();
    rt.block_on(store.append(vec![s.clone()])).unwrap();
    rt.block_on(store.append(vec![s])).unwrap();
    wait_for("commit", || {
        !store.trace("default", tid(5)).unwrap().is_empty()
    });
    assert_eq!(store.trace("default", tid(5)).unwrap().len(), 1);
    store.store().shutdown();
}

#[test]
fn regression_merged_segments_stay_readable() {
    // triad-bench found trace commits failing after background merges: a merged
    // segment had no .fieldnorm file once no field kept norms, and reopening the
    // reader failed on every commit after it.
    let dir = tempfile::tempdir().unwrap();
    let store = open_traces(dir.path(), fast_cfg());
    let rt = runtime();
    let now = triad_model::now_ns();
    for batch in 0..40u8 {
        let spans: Vec<_> = (0..50u8)
            .map(|i| {
                span(
                    tid(batch.wrapping_mul(7).wrapping_add(1)),
                    sid(i + 1),
                    None,
                    "svc",
                    "op",
                    now,
                    1_000,
                    false,
                )
            })
            .collect();
        rt.block_on(store.append(spans)).unwrap();
        let want = tid(batch.wrapping_mul(7).wrapping_add(1));
        wait_for("commit", || {
            !store.trace("default", want).unwrap().is_empty()
        });
    }
    assert!(store.store().is_healthy());
    for batch in 0..40u8 {
        assert_eq!(
            store
                .trace("default", tid(batch.wrapping_mul(7).wrapping_add(1)))
                .unwrap()
                .len(),
            50
        );
    }
    store.store().shutdown();
    let reopened = open_traces(dir.path(), fast_cfg());
    assert_eq!(reopened.trace("default", tid(1)).unwrap().len(), 50);
    reopened.store().shutdown();
}
