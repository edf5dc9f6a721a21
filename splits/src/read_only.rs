//! The query server's view of a data directory that a collector writes: both split
//! stores opened read-only, refreshed every [`REFRESH`] to see new commits and splits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::config::CollectorConfig;

use crate::Result;
use crate::log_index::{LogSignal, LogStore};
use crate::metrics::StoreMetrics;
use crate::store::Store;
use crate::trace_store::{SpanSignal, TraceStore};

/// How often the read-only stores look for new commits and splits.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The log and trace stores of a data directory, opened read-only.
pub struct Readers {
    /// Log search.
    pub logs: Arc<LogStore>,
    /// Trace search.
    pub traces: Arc<TraceStore>,
}

/// Opens the stores under `data_dir` read-only (a collector owns them).
pub fn open(data_dir: &Path, cfg: &CollectorConfig, registry: &mut Registry) -> Result<Readers> {
    let m = StoreMetrics::register(registry);
    let logs = Store::open_read_only(
        LogSignal::new(),
        &data_dir.join("logs"),
        cfg.logs.clone(),
        m.clone(),
    )?;
    let traces = Store::open_read_only(
        SpanSignal::new(),
        &data_dir.join("traces"),
        cfg.traces.clone(),
        m,
    )?;
    Ok(Readers {
        logs: Arc::new(LogStore::new(logs)),
        traces: Arc::new(TraceStore::new(traces)?),
    })
}

impl Readers {
    /// Refreshes both stores every [`REFRESH`] until `cancel` fires.
    pub fn spawn_refresh(
        &self,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<std::result::Result<(), String>>,
    ) {
        let (logs, traces, c) = (self.logs.clone(), self.traces.clone(), cancel.child_token());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tokio::select! { _ = c.cancelled() => return Ok(()), _ = tick.tick() => {} }
                let (l, t) = (logs.clone(), traces.clone());
                let r = tokio::task::spawn_blocking(move || {
                    l.store().refresh()?;
                    t.store().refresh()?;
                    t.rebuild_catalog()
                })
                .await;
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %e, "refreshing stores failed");
                }
            }
        });
    }
}
