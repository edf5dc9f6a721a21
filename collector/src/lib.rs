//! The Triad collector: ingest in front of the stores.
//!
//! - [`ingest`]: what the OTLP receivers (`triad_receiver`) hand their requests to:
//!   validate, convert and append to the log and trace stores (`triad_splits`);
//! - metrics in: [`scrape`] (Prometheus' own configuration), [`remote_write`],
//!   [`otlp_metrics`] and [`span_metrics`] (RED series from spans) append to the
//!   metric store of `triad_tsdb`; [`remote_read`] serves it to split query servers.
//!
//! - [`publish`]: in object-storage mode, sealed splits and metric [`blocks`] go to
//!   object storage and the metastore; [`merge`] merges small splits and compacts
//!   blocks there, the [`janitor`] applies retention.
//!
//! The stores live in their own crates: `triad_wal` (the write-ahead log),
//! `triad_splits` (tantivy log and trace splits) and `triad_tsdb` (metrics).

pub mod blocks;
pub mod error;
pub mod exposition;
pub mod fanout;
pub mod ingest;
pub mod internal;
pub mod janitor;
pub mod membership;
pub mod merge;
pub mod metrics;
pub mod otlp_metrics;
pub mod publish;
pub mod remote_read;
pub mod remote_write;
pub mod scrape;
pub mod span_metrics;

pub use error::{Error, Result};

use std::path::Path;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::config::CollectorConfig;
use triad_receiver::Ingest;
use triad_receiver::metrics::ReceiverMetrics;

use crate::ingest::StoreDestination;
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::store::Store;
use triad_splits::trace_store::{SpanSignal, TraceStore};
use triad_tsdb::TsdbOptions;
use triad_tsdb::metric_store::MetricStore;

/// Runs `f` to completion from synchronous code (a store call of the query engine): on
/// a runtime worker it first hands the worker's other tasks away (`block_in_place`),
/// elsewhere (a blocking-pool thread) it simply waits.
pub(crate) fn wait<T>(
    handle: &tokio::runtime::Handle,
    f: impl std::future::Future<Output = T>,
) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| handle.block_on(f))
        }
        _ => handle.block_on(f),
    }
}

/// How often the metric store checks whether its head is due to become a block.
const METRICS_MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a stopped store is restarted (see `Collector::restart_loop`).
const RESTART_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Restarts `store` if its threads stopped on an error; logs when it cannot yet.
async fn restart_if_stopped<S: triad_splits::store::Signal>(
    name: &'static str,
    store: &Arc<triad_splits::store::Store<S>>,
) {
    if store.is_healthy() {
        return;
    }
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.restart()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(store = name, error = %e, "store still stopped; retrying"),
        Err(e) => tracing::error!(store = name, error = %e, "store restart panicked"),
    }
}

/// The collector: both stores and the ingest path, ready to serve.
pub struct Collector {
    /// The log store (also read by the query server in all-in-one mode).
    pub logs: Arc<LogStore>,
    /// The trace store (also read by the query server in all-in-one mode).
    pub traces: Arc<TraceStore>,
    /// The metric store (also read by the query server in all-in-one mode).
    pub metrics: Arc<MetricStore>,
    /// RED metrics derived from spans, flushed into `metrics`.
    span_metrics: Arc<crate::span_metrics::SpanMetrics>,
    ingest: Ingest,
    limits: Arc<triad_receiver::limits::Limits>,
    cfg: CollectorConfig,
    scrape_metrics: crate::metrics::ScrapeMetrics,
    remote_write_metrics: crate::metrics::RemoteWriteMetrics,
    remote_read_metrics: crate::metrics::RemoteReadMetrics,
    publish_metrics: crate::metrics::PublishMetrics,
    janitor_metrics: crate::metrics::JanitorMetrics,
    merge_metrics: crate::metrics::MergeMetrics,
    backlog: Arc<crate::publish::Backlog>,
}

/// Where a collector's receivers listen.
pub struct Listeners {
    /// OTLP/gRPC.
    pub grpc: triad_receiver::tls::Listener,
    /// OTLP/HTTP, remote write and read, the internal API.
    pub http: triad_receiver::tls::Listener,
    /// Zipkin v2, when on.
    pub zipkin: Option<triad_receiver::tls::Listener>,
}

impl Collector {
    /// Opens (and replays) the stores under `data_dir`. With `object_storage`, metric
    /// blocks are left as they are cut (they are published, and compacted in object
    /// storage) and local retention by size is off (the publisher frees the disk).
    /// Blocking: call before serving or from `spawn_blocking`.
    pub fn open(
        cfg: &CollectorConfig,
        data_dir: &Path,
        object_storage: bool,
        limits: Arc<triad_receiver::limits::Limits>,
        registry: &mut Registry,
    ) -> Result<Collector> {
        let store_metrics = StoreMetrics::register(registry);
        let logs = Store::open(
            LogSignal::new(),
            &data_dir.join("logs"),
            cfg.logs.clone(),
            store_metrics.clone(),
        )?;
        let traces = Store::open(
            SpanSignal::new(),
            &data_dir.join("traces"),
            cfg.traces.clone(),
            store_metrics,
        )?;
        let metrics = Arc::new(MetricStore::open(
            &data_dir.join("metrics"),
            TsdbOptions {
                block_range_ms: cfg.metrics.block_range_secs as i64 * 1000,
                retention_ms: cfg.metrics.retention_secs as i64 * 1000,
                retention_bytes: if object_storage {
                    0
                } else {
                    cfg.metrics.retention_bytes
                },
                compact: !object_storage,
            },
            registry,
        )?);
        {
            let limits = limits.clone();
            metrics.set_series_limit(Arc::new(move |tenant: &str| limits.of(tenant).max_series));
        }
        let retentions = triad_model::config::Retentions::of(cfg, limits.config());
        metrics.set_retention(retentions.metrics.tenants.clone());
        logs.set_retention(retentions.logs.clone());
        traces.set_retention(retentions.traces.clone());
        let span_metrics = Arc::new(crate::span_metrics::SpanMetrics::new());
        let logs = Arc::new(LogStore::new(logs));
        let traces = Arc::new(TraceStore::new(traces)?);
        let backlog = Arc::new(crate::publish::Backlog::default());
        let ingest = Ingest::new(
            Arc::new(StoreDestination {
                logs: logs.clone(),
                traces: traces.clone(),
                metrics: metrics.clone(),
                span_metrics: span_metrics.clone(),
                backlog: backlog.clone(),
                limits: limits.clone(),
            }),
            ReceiverMetrics::register_under(registry, "triad_collector"),
        )
        .with_limits(limits.clone());
        let scrape_metrics = crate::metrics::ScrapeMetrics::register(registry);
        Ok(Collector {
            logs,
            traces,
            metrics,
            span_metrics,
            scrape_metrics,
            remote_write_metrics: crate::metrics::RemoteWriteMetrics::register(registry),
            remote_read_metrics: crate::metrics::RemoteReadMetrics::register(registry),
            publish_metrics: crate::metrics::PublishMetrics::register(registry),
            janitor_metrics: crate::metrics::JanitorMetrics::register(registry),
            merge_metrics: crate::metrics::MergeMetrics::register(registry),
            backlog,
            ingest,
            limits,
            cfg: cfg.clone(),
        })
    }

    /// True while both stores accept writes.
    pub fn is_ready(&self) -> bool {
        self.logs.store().is_healthy() && self.traces.store().is_healthy()
    }

    /// Starts the OTLP receivers (and Zipkin's, when given a listener) and the retention
    /// loops; `extra` routes are served beside OTLP/HTTP. Every task stops when `cancel`
    /// fires; receivers finish in-flight requests first.
    pub fn spawn(
        self: &Arc<Self>,
        listeners: Listeners,
        registry: Arc<Registry>,
        gate: triad_receiver::auth::Gate,
        extra: triad_receiver::auth::Routes,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<std::result::Result<(), String>>,
    ) {
        let Listeners { grpc, http, zipkin } = listeners;
        let ingest = self.ingest.clone();
        let max = self.cfg.max_decompressed_bytes;
        let c = cancel.child_token();
        let grpc_gate = gate.clone();
        tasks.spawn(async move {
            triad_receiver::grpc::serve(ingest, grpc_gate, grpc, max, c)
                .await
                .map_err(|e| format!("otlp grpc: {e}"))
        });

        let me = self.clone();
        let state = triad_receiver::http::HttpState {
            ingest: self.ingest.clone(),
            max_decompressed_bytes: self.cfg.max_decompressed_bytes,
            registry,
            ready: Arc::new(move || me.is_ready()),
        };
        let remote_write = crate::remote_write::router(crate::remote_write::RemoteWriteState {
            store: self.metrics.clone(),
            limits: self.limits.clone(),
            metrics: self.remote_write_metrics.clone(),
            max_decompressed_bytes: self.cfg.max_decompressed_bytes,
        })
        .map_router(|r| {
            r.layer(axum::extract::DefaultBodyLimit::max(
                self.cfg.max_request_bytes,
            ))
        });
        let remote_read = crate::remote_read::router(crate::remote_read::RemoteReadState {
            store: self.metrics.clone(),
            metrics: self.remote_read_metrics.clone(),
            max_decompressed_bytes: self.cfg.max_decompressed_bytes,
        })
        .map_router(|r| {
            r.layer(axum::extract::DefaultBodyLimit::max(
                self.cfg.max_request_bytes,
            ))
        });
        let internal = crate::internal::router(crate::internal::InternalState {
            logs: self.logs.clone(),
            traces: self.traces.clone(),
            node_id: self.node_id(),
        });
        let app = triad_receiver::http::router(state, self.cfg.max_request_bytes)
            .merge(remote_write)
            .merge(remote_read)
            .merge(internal)
            .merge(extra)
            .into_router(gate.clone());
        triad_receiver::http::spawn_server("otlp http", http, app, cancel, tasks);
        if let Some(l) = zipkin {
            let app = triad_receiver::zipkin::router(
                self.ingest.clone(),
                self.cfg.max_decompressed_bytes,
                self.cfg.max_request_bytes,
            )
            .into_router(gate);
            triad_receiver::http::spawn_server("zipkin", l, app, cancel, tasks);
        }

        let me = self.clone();
        let c = cancel.child_token();
        tasks.spawn(async move {
            me.retention_loop(c).await;
            Ok(())
        });

        let me = self.clone();
        let c = cancel.child_token();
        tasks.spawn(async move {
            me.restart_loop(c).await;
            Ok(())
        });

        let me = self.clone();
        let c = cancel.child_token();
        let every = std::time::Duration::from_secs(self.cfg.metrics.span_metrics_interval_secs);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = c.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let m = me.clone();
                let res = tokio::task::spawn_blocking(move || {
                    m.span_metrics
                        .flush(&m.metrics, triad_model::now_ns() / 1_000_000)
                })
                .await;
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "writing span metrics failed"),
                    Err(e) => tracing::error!(error = %e, "span metrics task panicked"),
                }
            }
        });
    }

    /// This collector's node ID: `collector.node_id`, else the host name.
    pub fn node_id(&self) -> String {
        match self.cfg.node_id.as_str() {
            "" => triad_model::host_name(),
            id => id.to_string(),
        }
    }

    /// Object-storage mode: starts publishing sealed splits and metric blocks to
    /// `storage` and `metastore` (see [`publish`]; bundles wait under `data_dir/upload`),
    /// the [`janitor`] that applies retention there and the [`merge`]r of small splits
    /// and published `blocks` (working under `data_dir/merge`), and the collector's
    /// lease in the metastore ([`membership`]), with `advertise` as its address.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_publisher(
        self: &Arc<Self>,
        storage: triad_storage::Storage,
        metastore: triad_metastore::Metastore,
        blocks: Arc<crate::blocks::PublishedBlocks>,
        storage_cfg: &triad_model::config::StorageConfig,
        data_dir: &Path,
        advertise: String,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<std::result::Result<(), String>>,
    ) -> Arc<crate::membership::Membership> {
        let grace = std::time::Duration::from_secs(storage_cfg.local_grace_secs);
        let membership = Arc::new(crate::membership::Membership::new(
            metastore.clone(),
            self.node_id(),
            advertise,
            std::time::Duration::from_secs(storage_cfg.lease_secs),
        ));
        let (m, c) = (membership.clone(), cancel.child_token());
        tasks.spawn(async move {
            m.run(c).await;
            Ok(())
        });
        let janitor = crate::janitor::Janitor::new(
            storage.clone(),
            metastore.clone(),
            self.node_id(),
            self.logs.clone(),
            self.traces.clone(),
            self.metrics.clone(),
            triad_model::config::Retentions::of(&self.cfg, self.limits.config()),
            grace,
            self.janitor_metrics.clone(),
        );
        let c = cancel.child_token();
        tasks.spawn(async move {
            janitor.run(c).await;
            Ok(())
        });
        let merge_dir = data_dir.join("merge");
        // Half-written merges of a crash: redone from the published inputs.
        let _ = std::fs::remove_dir_all(&merge_dir);
        let merger = crate::merge::Merger::new(
            storage.clone(),
            metastore.clone(),
            blocks,
            self.node_id(),
            merge_dir,
            (self.cfg.logs.split_max_docs, self.cfg.traces.split_max_docs),
            grace,
            std::time::Duration::from_secs(storage_cfg.merge_interval_secs),
            self.merge_metrics.clone(),
        );
        let c = cancel.child_token();
        tasks.spawn(async move {
            merger.run(c).await;
            Ok(())
        });
        let publisher = crate::publish::Publisher::new(
            storage,
            metastore,
            self.node_id(),
            data_dir.join("upload"),
            self.logs.clone(),
            self.traces.clone(),
            self.metrics.clone(),
            grace,
            self.publish_metrics.clone(),
            self.backlog.clone(),
        )
        .with_membership(membership.clone());
        self.backlog.set_limit(storage_cfg.max_unpublished_bytes);
        let c = cancel.child_token();
        tasks.spawn(async move {
            publisher.run(c).await;
            Ok(())
        });
        membership
    }

    /// Starts the Prometheus scraper when a scrape configuration is given; with a
    /// `membership` (several collectors), it scrapes only this collector's share.
    pub fn spawn_scraper(
        &self,
        prom: Option<triad_model::promconfig::PromConfig>,
        membership: Option<Arc<crate::membership::Membership>>,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<std::result::Result<(), String>>,
    ) -> std::result::Result<(), crate::scrape::ScrapeSetupError> {
        let Some(prom) = prom else { return Ok(()) };
        let mut scraper =
            crate::scrape::Scraper::new(&prom, self.metrics.clone(), self.scrape_metrics.clone())?;
        if let Some(m) = membership {
            scraper = scraper.sharded(m);
        }
        tracing::info!(jobs = prom.scrape_configs.len(), "scraper started");
        tasks.spawn(scraper.run(cancel.child_token()));
        Ok(())
    }

    /// Restarts a store whose WAL or indexer stopped on an error (a full disk): every
    /// [`RESTART_EVERY`] while it is down, so the collector takes writes again once the
    /// disk does, without a restart of the process. Until then `/readyz` says 503 and
    /// senders retry.
    async fn restart_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(RESTART_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            restart_if_stopped("logs", self.logs.store()).await;
            restart_if_stopped("traces", self.traces.store()).await;
        }
    }

    async fn retention_loop(self: Arc<Self>, cancel: CancellationToken) {
        let every = self
            .logs
            .store()
            .retention_check_interval()
            .min(self.traces.store().retention_check_interval())
            .min(METRICS_MAINTENANCE_INTERVAL);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            let res = tokio::task::spawn_blocking(move || {
                let now = triad_model::now_ns();
                me.logs.store().apply_retention(now)?;
                if me.traces.store().apply_retention(now)? > 0 {
                    me.traces.rebuild_catalog()?;
                }
                me.metrics.maintain(now / 1_000_000)?;
                Ok::<(), Error>(())
            })
            .await;
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                Err(e) => tracing::error!(error = %e, "retention task panicked"),
            }
        }
    }

    /// Stops the stores: drains queues, commits, joins threads. Call after the
    /// receivers stopped.
    pub async fn shutdown(self: &Arc<Self>) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            me.logs.store().shutdown();
            me.traces.store().shutdown();
        })
        .await;
    }
}
