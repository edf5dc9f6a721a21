//! Metric blocks in object storage, on the real engines (SeaweedFS, PostgreSQL): blocks
//! cut by the TSDB are published, read back from object storage exactly as the local
//! store reads them, compacted there, and never counted twice while a collector still
//! holds its copy — nor lost once it has dropped it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use triad_collector::blocks::PublishedBlocks;
use triad_collector::merge::Merger;
use triad_collector::publish::{Backlog, Publisher};
use triad_metastore::testing::Postgres;
use triad_metastore::{ListQuery, Metastore, Signal, SplitState};
use triad_model::config::StoreConfig;
use triad_model::metric::{Labels, Matcher, SeriesSamples};
use triad_model::store::{MergedMetrics, MetricRead};
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::store::Store;
use triad_splits::trace_store::{SpanSignal, TraceStore};
use triad_storage::testing::SeaweedFs;
use triad_storage::{Storage, StorageMetrics};
use triad_tsdb::metric_store::MetricStore;
use triad_tsdb::{AppendBatch, TsdbOptions};

const TENANT: &str = "default";
const HOUR_MS: i64 = 3_600_000;

fn labels(pod: usize) -> Labels {
    Labels::new(vec![
        ("__name__".into(), "http_requests_total".into()),
        ("pod".into(), format!("pod-{pod}")),
        ("zone".into(), ["a", "b"][pod % 2].into()),
    ])
}

/// Hour `h` of samples: 20 series, one sample every 15 s.
fn hour(h: i64) -> AppendBatch {
    let mut samples = Vec::new();
    for pod in 0..20 {
        for i in 0..240 {
            let t = h * HOUR_MS + i * 15_000;
            samples.push((labels(pod), t, (t / 1000 + pod as i64) as f64));
        }
    }
    AppendBatch {
        samples,
        ..AppendBatch::default()
    }
}

/// A query's answer, comparable exactly: series labels and samples with their bits.
type Answer = Vec<(String, Vec<(i64, u64)>)>;

fn key(s: &[SeriesSamples]) -> Answer {
    s.iter()
        .map(|s| {
            (
                format!("{:?}", s.labels),
                s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
            )
        })
        .collect()
}

fn queries() -> Vec<(Vec<Matcher>, i64, i64)> {
    vec![
        (
            vec![Matcher::equal("__name__", "http_requests_total")],
            i64::MIN,
            i64::MAX,
        ),
        (vec![Matcher::equal("zone", "b")], HOUR_MS / 2, 2 * HOUR_MS),
        (vec![Matcher::equal("pod", "pod-3")], 0, 4 * HOUR_MS),
    ]
}

/// The merged answers equal `expected`; while the collector holds local blocks, what
/// the published blocks hold equals what they answer for their hours.
fn check(
    blocks: &PublishedBlocks,
    merged: &MergedMetrics,
    store: &MetricStore,
    expected: &[Answer],
    what: &str,
) {
    for ((m, a, b), want) in queries().into_iter().zip(expected) {
        let got = key(&merged.select(TENANT, &m, a, b).unwrap());
        assert_eq!(&got, want, "{what}: merged answer of {m:?}");
        if !store.tenant(TENANT).unwrap().local_blocks().is_empty() {
            let end = b.min(3 * HOUR_MS - 1);
            let published = key(&blocks.select(TENANT, &m, a, end).unwrap());
            let local = key(&store.select(TENANT, &m, a, end).unwrap());
            assert_eq!(published, local, "{what}: blocks read back of {m:?}");
        }
    }
    let pods = merged
        .label_values(TENANT, "pod", &[], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(pods.len(), 20, "{what}");
}

async fn published_blocks(meta: &Metastore, state: SplitState) -> usize {
    meta.list(&ListQuery::in_state(Signal::Metrics, state))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_published_read_back_compacted_and_never_doubled() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let weed = SeaweedFs::start(&dir.path().join("s3"), "triad").unwrap();
    let pg = Postgres::start().unwrap();
    let storage = Storage::open(
        &weed.config("triad", "blocks"),
        dir.path(),
        StorageMetrics::unregistered(),
    )
    .unwrap();
    let meta = Metastore::open(&pg.config(), dir.path()).await.unwrap();
    let store = Arc::new(
        MetricStore::open(
            &dir.path().join("metrics"),
            TsdbOptions {
                block_range_ms: HOUR_MS,
                retention_ms: 0,
                retention_bytes: 0,
                compact: false,
            },
            &mut prometheus_client::registry::Registry::default(),
        )
        .unwrap(),
    );
    // Three level-0 blocks of an hour each, and samples still in the head.
    for h in 0..3 {
        store.append(TENANT, &hour(h), true).unwrap();
        store.tenant(TENANT).unwrap().flush().unwrap();
    }
    store.append(TENANT, &hour(3), true).unwrap();
    let expected: Vec<_> = queries()
        .into_iter()
        .map(|(m, a, b)| key(&store.select(TENANT, &m, a, b).unwrap()))
        .collect();
    assert_eq!(store.tenant(TENANT).unwrap().local_blocks().len(), 3);

    // Publish with a grace period long enough to keep the local copies for now.
    let m = StoreMetrics::unregistered;
    let logs = Arc::new(LogStore::new(Store::from_splits(
        LogSignal::new(),
        StoreConfig::default(),
        m(),
        vec![],
    )));
    let traces = Arc::new(
        TraceStore::new(Store::from_splits(
            SpanSignal::new(),
            StoreConfig::default(),
            m(),
            vec![],
        ))
        .unwrap(),
    );
    let publisher = |grace: Duration| {
        Publisher::new(
            storage.clone(),
            meta.clone(),
            "node".into(),
            dir.path().join("upload"),
            logs.clone(),
            traces.clone(),
            store.clone(),
            grace,
            triad_collector::metrics::PublishMetrics::unregistered(),
            Arc::new(Backlog::default()),
        )
    };
    let cancel = CancellationToken::new();
    let run = tokio::spawn(publisher(Duration::from_secs(3600)).run(cancel.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while published_blocks(&meta, SplitState::Published).await < 3 {
        assert!(std::time::Instant::now() < deadline, "blocks not published");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cancel.cancel();
    run.await.unwrap();

    // Read back from object storage, alone and merged with the local store.
    let blocks = Arc::new(PublishedBlocks::new(storage.clone(), None, meta.clone()));
    assert_eq!(blocks.refresh().await.unwrap(), 3);
    let merged = MergedMetrics {
        published: blocks.clone(),
        recent: store.clone(),
        recent_name: "local".into(),
    };
    let merged = Arc::new(merged);
    let expected = Arc::new(expected);
    let check = |what: &'static str| {
        let (blocks, merged, store, expected) = (
            blocks.clone(),
            merged.clone(),
            store.clone(),
            expected.clone(),
        );
        tokio::task::spawn_blocking(move || check(&blocks, &merged, &store, &expected, what))
    };
    check("published, local copies kept").await.unwrap();

    // A restart that lost the record of one publication publishes nothing twice.
    let first = store.tenant(TENANT).unwrap().local_blocks()[0].clone();
    std::fs::remove_file(
        first
            .dir()
            .unwrap()
            .join(triad_storage::bundle::PUBLISHED_MARKER),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(publisher(Duration::from_secs(3600)).run(cancel.clone()));
    while !first
        .dir()
        .unwrap()
        .join(triad_storage::bundle::PUBLISHED_MARKER)
        .exists()
    {
        assert!(std::time::Instant::now() < deadline, "not republished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cancel.cancel();
    run.await.unwrap();
    assert_eq!(published_blocks(&meta, SplitState::Published).await, 3);

    // Compaction in object storage: the three become one of level 1, in one publication.
    let merger = Merger::new(
        storage.clone(),
        meta.clone(),
        blocks.clone(),
        "node".into(),
        dir.path().join("merge"),
        (1_000_000, 1_000_000),
        Duration::ZERO,
        Duration::from_secs(60),
        triad_collector::metrics::MergeMetrics::unregistered(),
    );
    assert_eq!(merger.round().await.unwrap(), 1);
    assert_eq!(published_blocks(&meta, SplitState::Published).await, 1);
    assert_eq!(published_blocks(&meta, SplitState::Marked).await, 3);
    blocks.refresh().await.unwrap();
    let all = blocks.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].block.meta.level, 1);
    assert_eq!(all[0].block.meta.num_samples, 3 * 20 * 240);
    check("compacted, local copies kept").await.unwrap();

    // With no grace left, the collector drops its local copies: nothing is lost.
    let cancel = CancellationToken::new();
    let run = tokio::spawn(publisher(Duration::ZERO).run(cancel.clone()));
    while !store.tenant(TENANT).unwrap().local_blocks().is_empty() {
        assert!(std::time::Instant::now() < deadline, "local copies kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cancel.cancel();
    run.await.unwrap();
    check("local copies dropped").await.unwrap();
}
