//! Object-storage mode for metrics: TSDB blocks as objects, and the metric store query
//! servers read them through.
//!
//! A block the collector cuts from its head (a directory: `chunks`, `index`,
//! `meta.json`) is published as one bundle (`storage::bundle`) under
//! `metrics/<node>/<tenant>/<block>.block`, with its [`BlockMeta`] and tenant in the
//! footer; its metastore row carries the tenant, the time range (ns) and the sample
//! count. The [`publish`](crate::publish) loop uploads blocks as they are cut, the
//! [`merge`](crate::merge) loop compacts published blocks, the
//! [`janitor`](crate::janitor) applies metric retention to them.
//!
//! [`PublishedBlocks`] is the read side: the published blocks the metastore lists,
//! opened with the footer and the index (kept in memory, as for a local block) and read
//! by ranged reads of their `chunks` through the block cache. It answers
//! [`MetricRead`] over them; [`triad_model::store::MergedMetrics`] adds what a
//! collector holds locally (its head and the blocks not yet published or within their
//! grace period). The same sample in both counts once: series are merged by timestamp.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_metastore::{ListQuery, Metastore, Signal as Kind, SplitRow};
use triad_model::metric::{
    Labels, Matcher, MetricMetadata, SeriesExemplars, SeriesSamples, merge_series,
};
use triad_model::store::{MetricRead, StoreError, StoreResult, label_names_of, label_values_of};
use triad_storage::Storage;
use triad_storage::bundle::Bundle;
use triad_storage::cache::{BlockCache, ObjectReader};
use triad_tsdb::block::{Block, BlockMeta, ChunkFile};

/// What a block bundle's footer says about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockBundleMeta {
    /// The block's name (its directory's).
    pub name: String,
    /// The tenant whose series it holds.
    pub tenant: String,
    /// Its `meta.json`.
    pub block: BlockMeta,
}

/// The metastore ID of `node`'s block `name` of `tenant`.
pub fn block_id(node: &str, tenant: &str, name: &str) -> String {
    format!("{node}/{tenant}/{name}")
}

/// The object key of `node`'s block `name` of `tenant`.
pub fn block_key(node: &str, tenant: &str, name: &str) -> String {
    format!("{}/{node}/{tenant}/{name}.block", Kind::Metrics.as_str())
}

/// Writes the local block `block` of `tenant` as a bundle at `out`; returns its length.
/// Blocking.
pub fn write_block_bundle(block: &Block, tenant: &str, out: &Path) -> Result<u64, String> {
    let dir = block
        .dir()
        .ok_or_else(|| format!("block {} is not on local disk", block.name()))?;
    let meta = serde_json::to_value(BlockBundleMeta {
        name: block.name().to_string(),
        tenant: tenant.to_string(),
        block: block.meta.clone(),
    })
    .map_err(|e| e.to_string())?;
    triad_storage::bundle::write_dir(dir, out, meta, |name| {
        !matches!(name, "chunks" | "index" | "meta.json")
    })
    .map_err(|e| e.to_string())
}

/// The metastore row (staged) of a block of `tenant` written by `node`, bundled in
/// `bytes` bytes.
pub fn block_row(node: &str, tenant: &str, block: &Block, bytes: u64) -> SplitRow {
    SplitRow {
        split_id: block_id(node, tenant, block.name()),
        signal: Kind::Metrics,
        node_id: node.to_string(),
        state: triad_metastore::SplitState::Staged,
        object_key: block_key(node, tenant, block.name()),
        bytes,
        docs: block.meta.num_samples,
        min_ts: block.meta.min_t.saturating_mul(1_000_000),
        // The whole last millisecond.
        max_ts: block
            .meta
            .max_t
            .saturating_mul(1_000_000)
            .saturating_add(999_999),
        tenants: vec![tenant.to_string()],
        created_ms: 0,
        updated_ms: 0,
    }
}

/// A block's `chunks` read from its bundle in object storage, synchronously (the TSDB's
/// reads run on blocking threads) on the runtime of `handle`.
struct BundleChunks {
    bundle: Bundle,
    handle: tokio::runtime::Handle,
}

impl ChunkFile for BundleChunks {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let range = offset..offset + len as u64;
        crate::wait(&self.handle, self.bundle.read("chunks", range))
            .map(|b| b.to_vec())
            .map_err(std::io::Error::other)
    }
}

/// Opens the published block `row` from object storage: its footer and index (one or
/// two ranged reads), its chunks read on demand through `cache`. Returns the block and
/// its tenant.
pub async fn open_block(
    storage: &Storage,
    cache: Option<Arc<BlockCache>>,
    row: &SplitRow,
) -> Result<(Arc<Block>, String), String> {
    let reader = ObjectReader::new(storage.clone(), cache, &row.object_key, row.bytes);
    let bundle = Bundle::open(reader).await.map_err(|e| e.to_string())?;
    let meta: BlockBundleMeta = serde_json::from_value(bundle.meta().clone())
        .map_err(|e| format!("{}: not a metric block: {e}", row.object_key))?;
    let index_len = bundle
        .file("index")
        .map(|r| r.end - r.start)
        .ok_or_else(|| format!("{}: no index in the bundle", row.object_key))?;
    let index = bundle
        .read("index", 0..index_len)
        .await
        .map_err(|e| e.to_string())?;
    let chunks = BundleChunks {
        bundle,
        handle: tokio::runtime::Handle::current(),
    };
    let block = tokio::task::spawn_blocking(move || {
        Block::from_parts(&meta.name, meta.block, &index, Box::new(chunks))
            .map(|b| (Arc::new(b), meta.tenant))
    })
    .await
    .map_err(|e| format!("open block task: {e}"))?
    .map_err(|e| e.to_string())?;
    Ok(block)
}

/// An open published block.
#[derive(Clone)]
pub struct Opened {
    /// The block.
    pub block: Arc<Block>,
    /// Its tenant.
    pub tenant: String,
    /// Its metastore row.
    pub row: SplitRow,
}

/// The published metric blocks, as a [`MetricRead`]; see the module docs.
pub struct PublishedBlocks {
    storage: Storage,
    cache: Option<Arc<BlockCache>>,
    metastore: Metastore,
    /// Open blocks by metastore ID.
    opened: RwLock<HashMap<String, Opened>>,
}

impl PublishedBlocks {
    /// A view over nothing yet; call [`PublishedBlocks::refresh`] before serving.
    pub fn new(
        storage: Storage,
        cache: Option<Arc<BlockCache>>,
        metastore: Metastore,
    ) -> PublishedBlocks {
        PublishedBlocks {
            storage,
            cache,
            metastore,
            opened: RwLock::new(HashMap::new()),
        }
    }

    /// Lists the published blocks, opens the new ones and forgets those no longer
    /// listed (compacted or expired); returns how many were opened. A block that cannot
    /// be opened is logged and tried again at the next refresh.
    pub async fn refresh(&self) -> Result<usize, String> {
        let rows = self
            .metastore
            .list(&ListQuery::published(Kind::Metrics, i64::MIN, i64::MAX))
            .await
            .map_err(|e| format!("metastore: {e}"))?;
        let known: std::collections::HashSet<String> = self
            .opened
            .read()
            .map_err(|_| "published blocks lock poisoned".to_string())?
            .keys()
            .cloned()
            .collect();
        let mut new = Vec::new();
        for row in rows.iter().filter(|r| !known.contains(&r.split_id)) {
            match open_block(&self.storage, self.cache.clone(), row).await {
                Ok((block, tenant)) => new.push(Opened {
                    block,
                    tenant,
                    row: row.clone(),
                }),
                Err(e) => {
                    tracing::error!(block = %row.split_id, key = %row.object_key, error = %e, "cannot open a published block; retrying at the next refresh");
                }
            }
        }
        let opened = new.len();
        let listed: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.split_id.as_str()).collect();
        let mut map = self
            .opened
            .write()
            .map_err(|_| "published blocks lock poisoned".to_string())?;
        map.retain(|id, _| listed.contains(id.as_str()));
        for o in new {
            map.insert(o.row.split_id.clone(), o);
        }
        Ok(opened)
    }

    /// Refreshes every `every` until `cancel` fires; a failed refresh keeps the last
    /// listing and is logged.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        every: std::time::Duration,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<std::result::Result<(), String>>,
    ) {
        let (me, c) = (self.clone(), cancel.child_token());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! { _ = c.cancelled() => return Ok(()), _ = tick.tick() => {} }
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "listing published blocks failed; serving the last listing");
                }
            }
        });
    }

    /// Every open block.
    pub fn all(&self) -> Vec<Opened> {
        self.opened
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The blocks of `tenant` with data in `[start_ms, end_ms]`.
    fn blocks_in(&self, tenant: &str, start_ms: i64, end_ms: i64) -> StoreResult<Vec<Arc<Block>>> {
        Ok(self
            .opened
            .read()
            .map_err(|_| StoreError::Internal("published blocks lock poisoned".into()))?
            .values()
            .filter(|o| o.tenant == tenant && o.block.overlaps(start_ms, end_ms))
            .map(|o| o.block.clone())
            .collect())
    }
}

fn internal(e: triad_tsdb::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl MetricRead for PublishedBlocks {
    fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesSamples>> {
        let mut parts = Vec::new();
        for b in self.blocks_in(tenant, start_ms, end_ms)? {
            for s in b.select(matchers, start_ms, end_ms).map_err(internal)? {
                parts.push((s.labels, s.samples));
            }
        }
        Ok(merge_series(parts))
    }

    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<Labels>> {
        let everything = [Vec::new()];
        let sets: &[Vec<Matcher>] = if matcher_sets.is_empty() {
            &everything
        } else {
            matcher_sets
        };
        let mut out = std::collections::BTreeSet::new();
        for b in self.blocks_in(tenant, start_ms, end_ms)? {
            for ms in sets {
                for id in b.select_ids(ms) {
                    if b.has_data(id, start_ms, end_ms)
                        && let Some(l) = b.labels(id)
                    {
                        out.insert(l.clone());
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(label_names_of(&self.series(
            tenant,
            matcher_sets,
            start_ms,
            end_ms,
        )?))
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(label_values_of(
            &self.series(tenant, matcher_sets, start_ms, end_ms)?,
            name,
        ))
    }

    /// Blocks hold no metadata (as in Prometheus): the collector's head has it.
    fn metadata(
        &self,
        _tenant: &str,
        _metric: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, Vec<MetricMetadata>>> {
        Ok(Default::default())
    }

    /// Blocks hold no exemplars (as in Prometheus): the collector's head has them.
    fn exemplars(
        &self,
        _tenant: &str,
        _matcher_sets: &[Vec<Matcher>],
        _start_ms: i64,
        _end_ms: i64,
    ) -> StoreResult<Vec<SeriesExemplars>> {
        Ok(Vec::new())
    }
}

/// The collector's metric store in object-storage mode, as its query server and rule
/// evaluation see it: reads over its local store (head and local blocks) and the
/// published blocks ([`MergedMetrics`](triad_model::store::MergedMetrics)), or over
/// another view (every collector's); writes (recording rules, `ALERTS`) into its local
/// store.
pub struct CollectorMetrics {
    read: Arc<dyn MetricRead>,
    store: Arc<triad_tsdb::metric_store::MetricStore>,
}

impl CollectorMetrics {
    /// The collector's `store` with the `published` blocks.
    pub fn new(
        store: Arc<triad_tsdb::metric_store::MetricStore>,
        published: Arc<PublishedBlocks>,
    ) -> CollectorMetrics {
        CollectorMetrics {
            read: Arc::new(triad_model::store::MergedMetrics {
                published,
                recent: store.clone(),
                recent_name: "local metric store".into(),
            }),
            store,
        }
    }

    /// Reads through `read` (which must cover `store`), writes into `store`.
    pub fn over(
        read: Arc<dyn MetricRead>,
        store: Arc<triad_tsdb::metric_store::MetricStore>,
    ) -> CollectorMetrics {
        CollectorMetrics { read, store }
    }
}

impl triad_model::store::MetricWrite for CollectorMetrics {
    fn append_samples(&self, tenant: &str, samples: Vec<(Labels, i64, f64)>) -> StoreResult<usize> {
        self.store.append_samples(tenant, samples)
    }
}

impl MetricRead for CollectorMetrics {
    fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesSamples>> {
        self.read.select(tenant, matchers, start_ms, end_ms)
    }

    fn select_partial(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<(Vec<SeriesSamples>, Vec<String>)> {
        self.read.select_partial(tenant, matchers, start_ms, end_ms)
    }

    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<Labels>> {
        self.read.series(tenant, matcher_sets, start_ms, end_ms)
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        self.read
            .label_names(tenant, matcher_sets, start_ms, end_ms)
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        self.read
            .label_values(tenant, name, matcher_sets, start_ms, end_ms)
    }

    fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, Vec<MetricMetadata>>> {
        self.read.metadata(tenant, metric)
    }

    fn exemplars(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesExemplars>> {
        self.read.exemplars(tenant, matcher_sets, start_ms, end_ms)
    }
}
