//! Object-storage mode's glue: the storage, its read cache and the metastore, and the
//! query side's view over published splits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::config::ValidConfig;

/// Object-storage mode (`storage.url` other than `file://`): where sealed splits go,
/// the cache reads from there go through, and the list of splits.
pub struct ObjectMode {
    pub storage: triad_storage::Storage,
    pub cache: Option<Arc<triad_storage::cache::BlockCache>>,
    pub metastore: triad_metastore::Metastore,
}

/// Opens the storage, its read cache and the metastore when `storage.url` asks for
/// object storage; `None` in the embedded mode.
pub async fn object_mode(
    cfg: &ValidConfig,
    registry: &mut Registry,
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
    Ok(Some(ObjectMode {
        storage,
        cache,
        metastore,
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
