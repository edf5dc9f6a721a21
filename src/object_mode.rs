//! Object-storage mode's glue: the storage, its read cache and the metastore, and the
//! query side's view over published splits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::config::ValidConfig;
use triad_model::store::{LogRead, MergedLogs, MergedMetrics, MergedTraces, MetricRead, TraceRead};

/// Object-storage mode (`storage.url` other than `file://`): where sealed splits and
/// metric blocks go, the cache reads from there go through, the list of splits, and the
/// published metric blocks.
pub struct ObjectMode {
    pub storage: triad_storage::Storage,
    pub cache: Option<Arc<triad_storage::cache::BlockCache>>,
    pub metastore: triad_metastore::Metastore,
    /// Published metric blocks, listed before serving and every `storage.refresh_secs`.
    pub blocks: Arc<triad_collector::blocks::PublishedBlocks>,
}

/// Opens the storage, its read cache and the metastore when `storage.url` asks for
/// object storage, and lists the published metric blocks; `None` in the embedded mode.
pub async fn object_mode(
    cfg: &ValidConfig,
    registry: &mut Registry,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Option<ObjectMode>> {
    if !cfg.storage.is_remote() {
        return Ok(None);
    }
    let metrics = triad_storage::StorageMetrics::register(registry);
    let storage = triad_storage::Storage::open(&cfg.storage, &cfg.data_dir, metrics.clone())
        .context("storage")?;
    let cache = match cfg.storage.cache_bytes {
        0 => None,
        bytes => Some(
            triad_storage::cache::BlockCache::open(
                &cfg.data_dir.join("cache"),
                bytes,
                cfg.storage.cache_memory_bytes,
                cfg.storage.cache_block_bytes,
                metrics,
            )
            .context("storage cache")?,
        ),
    };
    let metastore = triad_metastore::Metastore::open(&cfg.metastore, &cfg.data_dir)
        .await
        .context("metastore")?;
    let kind = match metastore {
        triad_metastore::Metastore::File(_) => "file",
        triad_metastore::Metastore::Postgres(_) => "postgres",
    };
    tracing::info!(
        storage = storage.location(),
        metastore = kind,
        "sealed splits go to object storage"
    );
    let blocks = Arc::new(triad_collector::blocks::PublishedBlocks::new(
        storage.clone(),
        cache.clone(),
        metastore.clone(),
    ));
    let opened = blocks
        .refresh()
        .await
        .map_err(|e| anyhow::anyhow!("listing published metric blocks: {e}"))?;
    tracing::info!(blocks = opened, "published metric blocks opened");
    blocks.spawn_refresh(Duration::from_secs(cfg.storage.refresh_secs), cancel, tasks);
    Ok(Some(ObjectMode {
        storage,
        cache,
        metastore,
        blocks,
    }))
}

/// Search over published splits (and `local`'s unpublished ones), listed before it
/// serves and then every `storage.refresh_secs`.
pub async fn published(
    cfg: &ValidConfig,
    om: &ObjectMode,
    local: Option<triad_splits::published::Local>,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Arc<triad_splits::published::Published>> {
    let p = Arc::new(triad_splits::published::Published::new(
        om.storage.clone(),
        om.cache.clone(),
        om.metastore.clone(),
        &cfg.collector,
        local,
    )?);
    let opened = p.refresh().await.context("listing published splits")?;
    tracing::info!(splits = opened, "published splits opened");
    p.spawn_refresh(Duration::from_secs(cfg.storage.refresh_secs), cancel, tasks);
    Ok(p)
}

/// What a query server apart from the collector reads in object-storage mode.
pub struct QueryStores {
    pub logs: Arc<dyn LogRead>,
    pub traces: Arc<dyn TraceRead>,
    pub metrics: Arc<dyn MetricRead>,
    /// The collectors asked.
    pub collectors: Arc<triad_collector::fanout::Collectors>,
}

/// A query server's stores in object-storage mode: the published splits and blocks, and
/// every live collector (their leases in the metastore, or `query.collector_url`) for
/// what they have not published yet — their internal search API for logs and traces,
/// remote read for metrics (or `query.remote_read_url` when set).
pub async fn query_server_stores(
    cfg: &ValidConfig,
    om: &ObjectMode,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<QueryStores> {
    if matches!(om.metastore, triad_metastore::Metastore::File(_)) {
        anyhow::bail!(
            "metastore.url: a query server apart from the collector reads the metastore \
             the collector writes; set a postgres:// URL in both"
        );
    }
    let timeout = Duration::from_secs(cfg.query.query_timeout_secs);
    let p = published(cfg, om, None, cancel, tasks).await?;
    // A collector holds published splits for local_grace_secs at most: older ones need
    // not be named in the questions.
    let window = Duration::from_secs(2 * cfg.storage.local_grace_secs);
    let view = p.clone();
    let collectors = Arc::new(
        triad_collector::fanout::Collectors::new(
            cfg.query.collector_url.iter().cloned().collect(),
            om.metastore.clone(),
            timeout,
            Arc::new(move || triad_collector::internal::Listed {
                exclude: view.recently_published(window),
                published_through: view.published_through(),
            }),
        )
        .map_err(|e| anyhow::anyhow!("collectors: {e}"))?,
    );
    let n = collectors
        .refresh()
        .await
        .map_err(|e| anyhow::anyhow!("query.collector_url: {e}"))?;
    tracing::info!(collectors = n, "collectors to ask for unpublished data");
    {
        let (c, cancel) = (collectors.clone(), cancel.child_token());
        let every = Duration::from_secs(cfg.storage.refresh_secs);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! { _ = cancel.cancelled() => return Ok(()), _ = tick.tick() => {} }
                if let Err(e) = c.refresh().await {
                    tracing::warn!(error = %e, "listing live collectors failed; asking the last ones");
                }
            }
        });
    }
    let recent_metrics: Arc<dyn MetricRead> = match &cfg.query.remote_read_url {
        Some(url) => Arc::new(
            triad_collector::remote_read::RemoteReader::new(url, timeout)
                .map_err(|e| anyhow::anyhow!("query.remote_read_url: {e}"))?,
        ),
        None => collectors.clone(),
    };
    Ok(QueryStores {
        logs: Arc::new(MergedLogs {
            published: p.logs.clone(),
            recent: collectors.clone(),
            recent_name: "collectors".into(),
        }),
        traces: Arc::new(MergedTraces {
            published: p.traces.clone(),
            recent: collectors.clone(),
            recent_name: "collectors".into(),
        }),
        metrics: Arc::new(MergedMetrics {
            published: om.blocks.clone(),
            recent: recent_metrics,
            recent_name: "collectors".into(),
        }),
        collectors,
    })
}

/// How often the alerting leadership is checked (taken when free, verified when held).
const LEADERSHIP_EVERY: Duration = Duration::from_secs(2);

/// Runs for the alerting leadership (a PostgreSQL advisory lock, see
/// `Metastore::lead`): the flag is set while this process holds it, so that of several
/// `triad up` sharing a metastore exactly one evaluates rules and notifies; when the
/// leader dies, its lock goes with its connection and another takes over.
pub fn alert_leadership(
    metastore: triad_metastore::Metastore,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::Ordering;
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (leading, cancel) = (flag.clone(), cancel.child_token());
    tasks.spawn(async move {
        let mut held: Option<triad_metastore::Leadership> = None;
        loop {
            match &held {
                None => match metastore.lead("triad-alerting").await {
                    Ok(Some(l)) => {
                        tracing::info!("this process evaluates alert rules and notifies now");
                        held = Some(l);
                        leading.store(true, Ordering::Release);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ask for the alerting leadership; retrying")
                    }
                },
                Some(l) => {
                    if !l.holds().await {
                        tracing::warn!("lost the alerting leadership (its metastore connection); rules wait");
                        leading.store(false, Ordering::Release);
                        held = None;
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    leading.store(false, Ordering::Release);
                    return Ok(());
                }
                _ = tokio::time::sleep(LEADERSHIP_EVERY) => {}
            }
        }
    });
    flag
}
