//! The publisher's round for metric blocks: each block the TSDB cut and wrote to local
//! disk is bundled, staged, uploaded and published, as a split is (see the parent
//! module) — but with no WAL position in the transaction: a block is durable on local
//! disk before the TSDB advances its own checkpoint past its samples, so until it is
//! published the local block is the record.
//!
//! Publication is remembered in the block's directory (`bundle::PUBLISHED_MARKER`), so a restart neither publishes a block again nor loses the start of its
//! grace period, whatever the metastore says then. A crash between the publication and
//! that file redoes the steps, each idempotent; a block whose row was meanwhile
//! compacted or expired (the publication finds it marked) counts as published.

use std::path::Path;
use std::sync::Arc;

use triad_metastore::{MetastoreError, Publish};
use triad_storage::bundle;
use triad_tsdb::block::Block;

use super::{Failed, Publisher, crash_point, now_ms};
use crate::blocks::{block_row, write_block_bundle};
use crate::metrics::SignalLabel;

/// When the local block was published (ms), if it was.
fn published_at(block: &Block) -> Option<i64> {
    block.dir().and_then(bundle::published_at)
}

impl Publisher {
    /// Local blocks of every tenant, oldest first, with whether (and when) each was
    /// published.
    fn local_blocks(&self) -> Vec<(String, Arc<Block>, Option<i64>)> {
        let mut out: Vec<_> = self
            .metric_store
            .tenants()
            .into_iter()
            .flat_map(|(tenant, db)| {
                db.local_blocks()
                    .into_iter()
                    .map(move |b| (tenant.clone(), b))
            })
            .map(|(t, b)| {
                let at = published_at(&b);
                (t, b, at)
            })
            .collect();
        out.sort_by_key(|(_, b, _)| (b.meta.min_t, b.meta.max_t));
        out
    }

    /// Bytes of local blocks not published yet.
    pub(super) fn unpublished_block_bytes(&self) -> u64 {
        self.local_blocks()
            .iter()
            .filter(|(_, _, at)| at.is_none())
            .map(|(_, b, _)| b.disk_bytes())
            .sum()
    }

    /// Deletes local blocks published longer than the grace period ago (when
    /// `may_delete`), then publishes the others in order.
    pub(super) async fn block_round(&self, may_delete: bool) -> Result<(), Failed> {
        let label = SignalLabel { signal: "metrics" };
        let blocks = self.local_blocks();
        if may_delete {
            let cutoff = now_ms() - self.grace.as_millis() as i64;
            for (tenant, db) in self.metric_store.tenants() {
                let expired: Vec<String> = blocks
                    .iter()
                    .filter(|(t, _, at)| *t == tenant && at.is_some_and(|at| at <= cutoff))
                    .map(|(_, b, _)| b.name().to_string())
                    .collect();
                if expired.is_empty() {
                    continue;
                }
                let removed = tokio::task::spawn_blocking(move || db.remove_blocks(&expired))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|error| Failed {
                        stage: "cleanup",
                        split: tenant.clone(),
                        error,
                    })?;
                self.metrics
                    .local_removed
                    .get_or_create(&label)
                    .inc_by(removed as u64);
            }
        }
        let pending: Vec<_> = blocks
            .into_iter()
            .filter(|(_, _, at)| at.is_none())
            .collect();
        self.metrics
            .pending
            .get_or_create(&label)
            .set(pending.len() as i64);
        for (tenant, block, _) in pending {
            self.publish_block(&tenant, &block, &label).await?;
        }
        Ok(())
    }

    async fn publish_block(
        &self,
        tenant: &str,
        block: &Arc<Block>,
        label: &SignalLabel,
    ) -> Result<(), Failed> {
        let fail = |stage: &'static str| {
            let id = format!("{tenant}/{}", block.name());
            move |e: String| Failed {
                stage,
                split: id,
                error: e,
            }
        };
        let Some(dir) = block.dir().map(Path::to_path_buf) else {
            return Ok(());
        };
        let file = self
            .scratch
            .join(format!("metrics-{}.bundle", block.name()));
        let bytes = {
            let (b, t, f) = (block.clone(), tenant.to_string(), file.clone());
            tokio::task::spawn_blocking(move || write_block_bundle(&b, &t, &f))
                .await
                .map_err(|e| fail("bundle")(e.to_string()))?
                .map_err(fail("bundle"))?
        };
        let row = block_row(&self.node_id, tenant, block, bytes);
        self.metastore
            .stage(&row)
            .await
            .map_err(|e| fail("stage")(e.to_string()))?;
        crash_point("after-stage");
        self.storage
            .upload_file(&row.object_key, &file)
            .await
            .map_err(|e| fail("upload")(e.to_string()))?;
        crash_point("after-upload");
        let fence = self.fence().map_err(fail("publish"))?;
        let published = self
            .metastore
            .publish(&Publish {
                split_ids: vec![row.split_id.clone()],
                replaces: Vec::new(),
                checkpoint: None,
                operations: Vec::new(),
                fence,
            })
            .await;
        match published {
            Ok(()) => {}
            // Published before a crash, and compacted or expired since.
            Err(MetastoreError::Conflict(id)) if id == row.split_id => {
                tracing::info!(block = %row.split_id, "block was published before and replaced since");
            }
            Err(e) => {
                self.refused(&e);
                return Err(fail("publish")(e.to_string()));
            }
        }
        crash_point("after-publish");
        let _ = tokio::fs::remove_file(&file).await;
        let at = now_ms();
        tokio::task::spawn_blocking(move || bundle::mark_published(&dir, at))
            .await
            .map_err(|e| fail("publish")(e.to_string()))?
            .map_err(|e| fail("publish")(e.to_string()))?;
        self.metrics.splits.get_or_create(label).inc();
        self.metrics.bytes.get_or_create(label).inc_by(bytes);
        let lag = (now_ms() - block.meta.min_t).max(0) as f64 / 1e3;
        self.metrics.lag_seconds.get_or_create(label).observe(lag);
        tracing::info!(block = %row.split_id, samples = block.meta.num_samples, bytes, "published metric block");
        Ok(())
    }
}
