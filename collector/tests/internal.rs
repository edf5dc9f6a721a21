//! The collector's internal read API, through its router: a query server's exclusions
//! and its listing horizon decide which local splits are searched, so a local copy of a
//! published split is counted by exactly one side.

#[path = "../../splits/tests/common.rs"]
mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use tower::ServiceExt;
use triad_collector::internal::{Excluding, InternalState, Listed, router};
use triad_model::config::StoreConfig;
use triad_model::store::{LogQuery, LogSearchResult};

async fn total(app: &axum::Router, listed: Listed) -> u64 {
    let body = Excluding {
        request: LogQuery {
            tenant: "default".into(),
            query: String::new(),
            start_ns: 0,
            end_ns: i64::MAX,
            limit: 1,
            histogram_buckets: 0,
            oldest_first: false,
        },
        listed,
    };
    let resp = app
        .clone()
        .oneshot(
            Request::post("/internal/v1/logs/search")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice::<LogSearchResult>(&bytes)
        .unwrap()
        .total
}

fn through(node: &str, ms: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([(node.to_string(), ms)])
}

#[test]
fn local_copies_published_by_the_query_servers_listing_are_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        split_max_docs: 10,
        ..fast_cfg()
    };
    let logs = arc(open_logs(&dir.path().join("logs"), cfg));
    let traces = arc(open_traces(&dir.path().join("traces"), fast_cfg()));
    let rt = runtime();
    // Ten records fill a split, which seals; five more go to the active one.
    let records = |from: i64, n: i64| {
        (from..from + n)
            .map(|i| log(1_000 + i, &format!("line {i}"), "svc", "INFO", None))
            .collect::<Vec<_>>()
    };
    rt.block_on(logs.append(records(0, 10))).unwrap();
    wait_for("the first split sealed", || {
        logs.store().sealed_splits().len() == 1
    });
    rt.block_on(logs.append(records(10, 5))).unwrap();
    wait_for("all 15 searchable", || {
        logs.store()
            .splits()
            .iter()
            .map(|s| s.meta().docs)
            .sum::<u64>()
            == 15
    });
    let sealed = logs.store().sealed_splits()[0].clone();
    triad_storage::bundle::mark_published(sealed.local_dir().unwrap(), 1_000).unwrap();
    let app = router(InternalState {
        logs: logs.clone(),
        traces,
        node_id: "n".into(),
    })
    .into_router(triad_receiver::auth::Gate::open());
    rt.block_on(async {
        let nothing = Listed::default();
        assert_eq!(total(&app, nothing).await, 15, "nothing listed: all local");
        let named = Listed {
            exclude: vec![format!("n/{}", sealed.id)],
            ..Listed::default()
        };
        assert_eq!(total(&app, named).await, 5, "a named split is skipped");
        for (horizon, want, why) in [
            (through("n", 999), 15, "listed before its publication"),
            (through("n", 1_000), 5, "listed from its publication on"),
            (through("other", 5_000), 15, "another node's horizon"),
        ] {
            let listed = Listed {
                exclude: Vec::new(),
                published_through: horizon,
            };
            assert_eq!(total(&app, listed).await, want, "{why}");
        }
    });
}
