//! The janitor on the real engines (SeaweedFS, PostgreSQL): retention marks expired
//! splits, their objects and rows go after the grace period, orphaned staged splits go,
//! and nothing else is touched.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use triad_collector::janitor::{Janitor, Report};
use triad_metastore::testing::Postgres;
use triad_metastore::{ListQuery, Metastore, Publish, Signal, SplitRow, SplitState};
use triad_model::config::StoreConfig;
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::store::Store;
use triad_splits::trace_store::{SpanSignal, TraceStore};
use triad_storage::testing::SeaweedFs;
use triad_storage::{Storage, StorageMetrics};

const HOUR_NS: i64 = 3_600_000_000_000;

fn row(id: &str, max_ts: i64) -> SplitRow {
    SplitRow {
        split_id: format!("node/{id}"),
        signal: Signal::Logs,
        node_id: "node".into(),
        state: SplitState::Staged,
        object_key: format!("logs/node/{id}.split"),
        bytes: 3,
        docs: 1,
        min_ts: max_ts - 1,
        max_ts,
        tenants: vec!["default".into()],
        created_ms: 0,
        updated_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletion_and_orphans() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let weed = SeaweedFs::start(&dir.path().join("s3"), "triad").unwrap();
    let pg = Postgres::start().unwrap();
    let storage = Storage::open(
        &weed.config("triad", "janitor"),
        dir.path(),
        StorageMetrics::unregistered(),
    )
    .unwrap();
    let meta = Metastore::open(&pg.config(), dir.path()).await.unwrap();
    let m = StoreMetrics::unregistered;
    let logs = Arc::new(LogStore::new(Store::from_splits(
        LogSignal::new(),
        StoreConfig::default(),
        m(),
        vec![],
    )));
    let traces = Arc::new(TraceStore::without_catalog(Store::from_splits(
        SpanSignal::new(),
        StoreConfig::default(),
        m(),
        vec![],
    )));
    let now = triad_model::now_ns();
    // old: past the 7-day retention; fresh: within it; orphan: staged, never published;
    // short: two days old, of a tenant that keeps a day; mixed: as old, of that tenant and
    // another that keeps seven (it stays).
    let of = |mut r: SplitRow, tenants: &[&str]| {
        r.tenants = tenants.iter().map(|t| t.to_string()).collect();
        r
    };
    for (r, publish) in [
        (row("old", now - 8 * 24 * HOUR_NS), true),
        (row("fresh", now - HOUR_NS), true),
        (row("orphan", now - HOUR_NS), false),
        (of(row("short", now - 48 * HOUR_NS), &["short"]), true),
        (
            of(row("mixed", now - 48 * HOUR_NS), &["short", "default"]),
            true,
        ),
    ] {
        meta.stage(&r).await.unwrap();
        storage
            .put_new(&r.object_key, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        if publish {
            meta.publish(&Publish {
                split_ids: vec![r.split_id.clone()],
                ..Publish::default()
            })
            .await
            .unwrap();
        }
    }
    let janitor = Janitor::new(
        storage.clone(),
        meta.clone(),
        "node".into(),
        logs,
        traces,
        Arc::new(
            triad_tsdb::metric_store::MetricStore::open(
                &dir.path().join("metrics"),
                triad_tsdb::TsdbOptions::default(),
                &mut prometheus_client::registry::Registry::default(),
            )
            .unwrap(),
        ),
        triad_model::config::Retentions {
            logs: triad_model::config::Retention {
                default_secs: 7 * 86_400,
                tenants: [("short".to_string(), 86_400)].into(),
            },
            traces: triad_model::config::Retention::uniform(7 * 86_400),
            metrics: triad_model::config::Retention::uniform(15 * 86_400),
        },
        Duration::from_secs(600),
        triad_collector::metrics::JanitorMetrics::unregistered(),
    );
    // Now: the old and short splits are marked, nothing is deleted yet (grace, orphan
    // age).
    let r = janitor.round(now).await.unwrap();
    assert_eq!(
        r,
        Report {
            marked: 2,
            deleted: 0,
            orphans: 0
        }
    );
    let published = meta
        .list(&ListQuery::published(Signal::Logs, i64::MIN, i64::MAX))
        .await
        .unwrap();
    let mut listed: Vec<&str> = published.iter().map(|r| r.split_id.as_str()).collect();
    listed.sort();
    assert_eq!(
        listed,
        ["node/fresh", "node/mixed"],
        "fresh and mixed stay listed"
    );
    assert_eq!(
        storage.size("logs/node/old.split").await.unwrap(),
        Some(3),
        "kept through the grace period"
    );
    // Two hours later: the marked split and the orphan lose object and row.
    let r = janitor.round(now + 2 * HOUR_NS).await.unwrap();
    assert_eq!(
        r,
        Report {
            marked: 0,
            deleted: 2,
            orphans: 1
        }
    );
    let mut keys: Vec<String> = storage
        .list("logs")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["logs/node/fresh.split", "logs/node/mixed.split"],
        "no orphaned or expired object left"
    );
    for state in [SplitState::Staged, SplitState::Marked] {
        assert!(
            meta.list(&ListQuery::in_state(Signal::Logs, state))
                .await
                .unwrap()
                .is_empty()
        );
    }
    // A second round finds nothing to do.
    assert_eq!(
        janitor.round(now + 2 * HOUR_NS).await.unwrap(),
        Report::default()
    );
}
