//! `triad up`'s own agent: tails the configured files straight into the log store.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_agent::forward::AckBoard;
use triad_agent::metrics::AgentMetrics;
use triad_agent::source::{Batch, DeliverFuture, FileSource, Sink, SourceConfig, host_name};
use triad_model::config::ValidConfig;
use triad_splits::log_index::LogStore;

/// Delivers to the log store in this process: acknowledged once in its WAL.
struct StoreSink {
    logs: Arc<LogStore>,
    acks: AckBoard,
}

impl Sink for StoreSink {
    fn deliver(&self, batch: Batch) -> DeliverFuture<'_> {
        Box::pin(async move {
            // The store consumes the records; a copy is kept for a retry.
            match self.logs.append(batch.records.clone()).await {
                Ok(()) => {
                    self.acks.acknowledge(batch.positions);
                    Ok(())
                }
                Err(e) => Err((e.to_string(), batch)),
            }
        })
    }
}

/// The file source settings of a configuration.
pub fn source_config(cfg: &ValidConfig) -> SourceConfig {
    let a = &cfg.agent;
    SourceConfig {
        tailer: crate::config_file::tailer_config(a),
        checkpoint_path: cfg.data_dir.join("agent").join("checkpoints.json"),
        scan_interval: Duration::from_secs(a.scan_interval_secs),
        tenant: triad_model::DEFAULT_TENANT.to_string(),
        host: host_name(),
        labels: a
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

pub fn spawn(
    cfg: &ValidConfig,
    logs: Arc<LogStore>,
    metrics: AgentMetrics,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<()> {
    let acks = AckBoard::default();
    let source = FileSource::new(source_config(cfg), acks.clone(), metrics)
        .map_err(|e| anyhow::anyhow!("agent: {e}"))?;
    let sink: Arc<dyn Sink> = Arc::new(StoreSink { logs, acks });
    let handle = tokio::runtime::Handle::current();
    let stop = cancel.child_token();
    tracing::info!(include = ?cfg.agent.include, "tailing log files");
    let (waker, stopping) = (source.waker(), stop.clone());
    tasks.spawn(async move {
        // The source sleeps until its files change: wake it to stop.
        stopping.cancelled().await;
        waker.wake();
        Ok(())
    });
    tasks.spawn_blocking(move || {
        source.run(sink, |f| handle.block_on(f), || stop.is_cancelled());
        Ok(())
    });
    Ok(())
}
