//! The Triad collector: OTLP receivers in front of durable, tantivy-backed stores.
//!
//! - [`ingest`]: what the OTLP receivers (`triad_receiver`) hand their requests to:
//!   validate, convert and append;
//! - [`store`]: the write-ahead log, indexer thread and time-bounded [`split`]s shared by
//!   both signals;
//! - [`log_index`] and [`trace_store`]: the schemas and the read operations the query
//!   server uses through `triad_model::store`.

pub mod error;
pub mod exposition;
pub mod ingest;
pub mod log_index;
pub mod metric_store;
pub mod metrics;
pub mod query_text;
pub mod split;
pub mod store;
mod tokenizer;
pub mod trace_store;
pub mod tsdb;
pub mod wal;

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
use crate::log_index::{LogSignal, LogStore};
use crate::metrics::StoreMetrics;
use crate::store::Store;
use crate::trace_store::{SpanSignal, TraceStore};

/// The collector: both stores and the ingest path, ready to serve.
pub struct Collector {
    /// The log store (also read by the query server in all-in-one mode).
    pub logs: Arc<LogStore>,
    /// The trace store (also read by the query server in all-in-one mode).
    pub traces: Arc<TraceStore>,
    ingest: Ingest,
    cfg: CollectorConfig,
}

impl Collector {
    /// Opens (and replays) the stores under `data_dir`. Blocking: call before serving or
    /// from `spawn_blocking`.
    pub fn open(
        cfg: &CollectorConfig,
        data_dir: &Path,
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
        let logs = Arc::new(LogStore::new(logs));
        let traces = Arc::new(TraceStore::new(traces)?);
        let ingest = Ingest::new(
            Arc::new(StoreDestination {
                logs: logs.clone(),
                traces: traces.clone(),
            }),
            ReceiverMetrics::register(registry, "triad_collector"),
        );
        Ok(Collector {
            logs,
            traces,
            ingest,
            cfg: cfg.clone(),
        })
    }

    /// True while both stores accept writes.
    pub fn is_ready(&self) -> bool {
        self.logs.store().is_healthy() && self.traces.store().is_healthy()
    }

    /// Starts the OTLP receivers on the given listeners and the retention loops. Every
    /// task stops when `cancel` fires; receivers finish in-flight requests first.
    pub fn spawn(
        self: &Arc<Self>,
        grpc: tokio::net::TcpListener,
        http: tokio::net::TcpListener,
        registry: Arc<Registry>,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<std::result::Result<(), String>>,
    ) {
        let ingest = self.ingest.clone();
        let max = self.cfg.max_decompressed_bytes;
        let c = cancel.child_token();
        tasks.spawn(async move {
            triad_receiver::grpc::serve(ingest, grpc, max, c)
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
        let app = triad_receiver::http::router(state, self.cfg.max_request_bytes);
        triad_receiver::http::spawn_server("otlp http", http, app, cancel, tasks);

        let me = self.clone();
        let c = cancel.child_token();
        tasks.spawn(async move {
            me.retention_loop(c).await;
            Ok(())
        });
    }

    async fn retention_loop(self: Arc<Self>, cancel: CancellationToken) {
        let every = self
            .logs
            .store()
            .retention_check_interval()
            .min(self.traces.store().retention_check_interval());
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
