//! The query side of object-storage mode: log and trace stores whose splits are the
//! published bundles the metastore lists, opened from object storage through the block
//! cache, plus — in a process that also runs the collector — the collector's splits not
//! published yet (see [`Store::view`]).
//!
//! [`Published::refresh`] lists the metastore (published rows of both signals, the
//! columns it needs, and the services catalog), opens the bundles it has not opened yet
//! (one ranged read of the footer each) and forgets those no longer listed (merged or
//! expired). A split listed
//! once stays searchable until a listing drops it; the collector keeps its local copy
//! longer than a refresh takes, so across the hand-off every record is found exactly
//! once: split IDs are the dedupe key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_metastore::{ListQuery, Metastore, Signal as Kind, SplitRow};
use triad_model::SpanKind;
use triad_model::config::CollectorConfig;
use triad_model::store::Operation;
use triad_storage::Storage;
use triad_storage::bundle::Bundle;
use triad_storage::cache::{BlockCache, ObjectReader};

use crate::bundle_dir::BundleDirectory;
use crate::log_index::{LogSignal, LogStore};
use crate::metrics::StoreMetrics;
use crate::split::Split;
use crate::store::{Signal, Store};
use crate::trace_store::{SpanSignal, TraceStore};
use crate::{Error, Result};

/// The collector stores a view adds its unpublished splits from, and its node ID.
pub struct Local {
    /// The collector's log store.
    pub logs: Arc<LogStore>,
    /// The collector's trace store.
    pub traces: Arc<TraceStore>,
    /// The collector's node ID (the prefix of its published split IDs).
    pub node_id: String,
}

/// An open published split.
struct Opened {
    split: Arc<Split>,
    /// When it was published, ms (the writer's clock).
    published_ms: i64,
}

/// Log and trace search over published splits (and a local collector's others).
pub struct Published {
    /// Log search.
    pub logs: Arc<LogStore>,
    /// Trace search.
    pub traces: Arc<TraceStore>,
    storage: Storage,
    cache: Option<Arc<BlockCache>>,
    metastore: Metastore,
    /// Open splits by ID, with when they were published (ms).
    opened: Mutex<HashMap<String, Opened>>,
    /// Per node, the latest publication (ms) up to which this view reads every split.
    through: Mutex<std::collections::BTreeMap<String, i64>>,
    /// The local collector's trace store, whose catalog joins the metastore's.
    local_traces: Option<Arc<TraceStore>>,
}

impl Published {
    /// Views over nothing yet; call [`Published::refresh`] before serving.
    pub fn new(
        storage: Storage,
        cache: Option<Arc<BlockCache>>,
        metastore: Metastore,
        cfg: &CollectorConfig,
        local: Option<Local>,
    ) -> Result<Published> {
        // Views write nothing: the store metrics are the collector's.
        let m = StoreMetrics::unregistered();
        let local_traces = local.as_ref().map(|l| l.traces.clone());
        let (log_local, trace_local) = match local {
            Some(l) => (
                Some((l.logs.store().clone(), l.node_id.clone())),
                Some((l.traces.store().clone(), l.node_id)),
            ),
            None => (None, None),
        };
        Ok(Published {
            logs: Arc::new(LogStore::new(Store::view(
                LogSignal::new(),
                cfg.logs.clone(),
                m.clone(),
                log_local,
            ))),
            traces: Arc::new(TraceStore::new(Store::view(
                SpanSignal::new(),
                cfg.traces.clone(),
                m,
                trace_local,
            ))?),
            storage,
            cache,
            metastore,
            opened: Mutex::new(HashMap::new()),
            through: Mutex::new(Default::default()),
            local_traces,
        })
    }

    /// Lists the published splits of both signals and updates the views; returns how
    /// many splits were opened.
    pub async fn refresh(&self) -> Result<usize> {
        let logs = self.list(Kind::Logs).await?;
        let traces = self.list(Kind::Traces).await?;
        let mut opened = 0;
        let mut failed = Vec::new();
        let log_splits = self
            .open_all(&LogSignal::new(), &logs, &mut opened, &mut failed)
            .await?;
        let trace_splits = self
            .open_all(&SpanSignal::new(), &traces, &mut opened, &mut failed)
            .await?;
        // Per node, the latest publication listed — but not past a split that could not
        // be opened: the node's copy of that one must still be asked for.
        let mut through = std::collections::BTreeMap::new();
        for row in logs.iter().chain(&traces) {
            let at = through.entry(row.node_id.clone()).or_insert(row.updated_ms);
            *at = (*at).max(row.updated_ms);
        }
        for row in &failed {
            if let Some(at) = through.get_mut(&row.node_id) {
                *at = (*at).min(row.updated_ms - 1);
            }
        }
        *self.through.lock().unwrap_or_else(|e| e.into_inner()) = through;
        {
            let mut cache = self.opened.lock().unwrap_or_else(|e| e.into_inner());
            let listed: std::collections::HashSet<&str> = logs
                .iter()
                .chain(&traces)
                .map(|r| r.split_id.as_str())
                .collect();
            cache.retain(|id, _| listed.contains(id.as_str()));
        }
        self.logs.store().set_splits(log_splits);
        self.traces.store().set_splits(trace_splits);
        // The services catalog from the metastore (no split is read for it), with the
        // local collector's for what it has not published yet.
        let catalog = self
            .metastore
            .operations()
            .await
            .map_err(|e| Error::Corrupt(format!("metastore: {e}")))?;
        let local = self
            .local_traces
            .as_ref()
            .map(|t| t.catalog_entries())
            .unwrap_or_default();
        self.traces.set_catalog(
            catalog
                .into_iter()
                .map(|o| {
                    let kind = SpanKind::parse(&o.span_kind).unwrap_or(SpanKind::Unspecified);
                    (o.tenant, o.service, Operation { name: o.name, kind })
                })
                .chain(local),
        );
        Ok(opened)
    }

    async fn list(&self, kind: Kind) -> Result<Vec<SplitRow>> {
        self.metastore
            .list(&ListQuery::published(kind, i64::MIN, i64::MAX))
            .await
            .map_err(|e| Error::Corrupt(format!("metastore: {e}")))
    }

    async fn open_all<S: Signal + Clone>(
        &self,
        signal: &S,
        rows: &[SplitRow],
        opened: &mut usize,
        failed: &mut Vec<SplitRow>,
    ) -> Result<Vec<Arc<Split>>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let known = self
                .opened
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&row.split_id)
                .map(|o| o.split.clone());
            let split = match known {
                Some(s) => s,
                None => {
                    // One unreadable split (an object store hiccup, a deleted object)
                    // must not take the others down: it is tried again next refresh.
                    let s = match self.open(signal.clone(), row).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::error!(split = %row.split_id, key = %row.object_key, error = %e, "cannot open a published split; retrying at the next refresh");
                            failed.push(row.clone());
                            continue;
                        }
                    };
                    *opened += 1;
                    self.opened
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            row.split_id.clone(),
                            Opened {
                                split: s.clone(),
                                published_ms: row.updated_ms,
                            },
                        );
                    s
                }
            };
            out.push(split);
        }
        Ok(out)
    }

    async fn open<S: Signal>(&self, signal: S, row: &SplitRow) -> Result<Arc<Split>> {
        open_published(&self.storage, self.cache.clone(), signal, row).await
    }

    /// IDs of the splits this view reads that were published within `window` of now:
    /// the ones a collector may still hold locally (it deletes its copies a grace
    /// period after publication), i.e. the ones to exclude when asking it.
    pub fn recently_published(&self, window: std::time::Duration) -> Vec<String> {
        let since = triad_model::now_ns() / 1_000_000 - window.as_millis() as i64;
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, o)| o.published_ms >= since)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Per node, the latest publication time (ms, the node's clock) up to which this
    /// view reads every split the node published (or the merged split that replaced
    /// it), as of the last listing.
    pub fn published_through(&self) -> std::collections::BTreeMap<String, i64> {
        self.through
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
                    tracing::warn!(error = %e, "listing published splits failed; serving the last listing");
                }
            }
        });
    }
}

/// Opens the published split `row` from object storage (its footer: one ranged read),
/// reading through `cache`.
pub async fn open_published<S: Signal>(
    storage: &Storage,
    cache: Option<Arc<BlockCache>>,
    signal: S,
    row: &SplitRow,
) -> Result<Arc<Split>> {
    let reader = ObjectReader::new(storage.clone(), cache, &row.object_key, row.bytes);
    let bundle = Bundle::open(reader).await?;
    let dir = BundleDirectory::new(bundle, tokio::runtime::Handle::current());
    let id = row.split_id.clone();
    let split =
        tokio::task::spawn_blocking(move || Split::open_bundle(&id, dir, &|i| signal.configure(i)))
            .await
            .map_err(|e| Error::Corrupt(format!("open split task: {e}")))??;
    Ok(Arc::new(split))
}
