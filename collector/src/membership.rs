//! A collector's lease in the metastore: how query servers find every live collector,
//! and how a collector presumed dead is kept from publishing over its successor's work.
//!
//! At start (and again until it succeeds, while the metastore is away) the collector
//! registers its node ID and address: its generation goes up by one. It renews the
//! lease every third of `storage.lease_secs`; query servers ask the collectors whose
//! lease lasts. Every publication carries the lease, and the metastore refuses it once
//! another process registered as the same node (a restarted pod while the old one was
//! only cut off): this process is then **fenced** — it stops publishing, says so in its
//! log and in `triad_collector_fenced`, and keeps its data on local disk. At shutdown
//! the lease is ended, so query servers stop asking at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use triad_metastore::{Lease, Metastore, MetastoreError, NodeRow};

/// A collector's membership; see the module docs.
pub struct Membership {
    metastore: Metastore,
    node_id: String,
    address: String,
    ttl: Duration,
    lease: RwLock<Option<Lease>>,
    fenced: AtomicBool,
    live: RwLock<Vec<NodeRow>>,
}

impl Membership {
    /// The membership of `node_id`, reachable at `address`, with leases of `ttl`; not
    /// registered until [`Membership::run`] does it.
    pub fn new(metastore: Metastore, node_id: String, address: String, ttl: Duration) -> Self {
        Membership {
            metastore,
            node_id,
            address,
            ttl,
            lease: RwLock::new(None),
            fenced: AtomicBool::new(false),
            live: RwLock::new(Vec::new()),
        }
    }

    /// The current lease, once registered (and not fenced).
    pub fn lease(&self) -> Option<Lease> {
        if self.is_fenced() {
            return None;
        }
        self.lease.read().ok()?.clone()
    }

    /// How often the lease is renewed and the live collectors listed: a third of the
    /// lease.
    pub fn every(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(100))
    }

    /// This collector's node ID.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// True once another process registered as this node.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    /// The live collectors as of the last renewal, by node ID.
    pub fn live(&self) -> Vec<NodeRow> {
        self.live.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// Marks this process fenced (a publication was refused for its lease).
    pub fn fence(&self) {
        if !self.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                node = %self.node_id,
                "another process registered as this node: this one no longer publishes \
                 (its data stays on local disk); stop it, or give it its own collector.node_id"
            );
        }
    }

    /// One step: registers or renews, then lists the live collectors.
    pub async fn step(&self) -> Result<(), String> {
        if self.is_fenced() {
            return Ok(());
        }
        let ttl_ms = self.ttl.as_millis() as i64;
        let current = self.lease.read().ok().and_then(|l| l.clone());
        match current {
            None => {
                let lease = self
                    .metastore
                    .register(&self.node_id, &self.address, ttl_ms)
                    .await
                    .map_err(|e| format!("registering: {e}"))?;
                tracing::info!(node = %self.node_id, generation = lease.generation, address = %self.address, "collector registered");
                if let Ok(mut l) = self.lease.write() {
                    *l = Some(lease);
                }
            }
            Some(lease) => match self.metastore.renew(&lease, &self.address, ttl_ms).await {
                Ok(()) => {}
                Err(MetastoreError::Fenced(_)) => {
                    self.fence();
                    return Ok(());
                }
                Err(e) => return Err(format!("renewing the lease: {e}")),
            },
        }
        let live = self
            .metastore
            .nodes()
            .await
            .map_err(|e| format!("listing live collectors: {e}"))?
            .into_iter()
            .filter(|n| n.live)
            .collect();
        if let Ok(mut l) = self.live.write() {
            *l = live;
        }
        Ok(())
    }

    /// Registers and renews until `cancel` fires, then ends the lease.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let every = self.every();
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(node = %self.node_id, error = %e, "collector lease not renewed; retrying");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        if let Some(lease) = self.lease() {
            match self.metastore.leave(&lease).await {
                Ok(()) => tracing::info!(node = %self.node_id, "collector lease ended"),
                Err(e) => {
                    tracing::warn!(node = %self.node_id, error = %e, "could not end the lease; it expires by itself")
                }
            }
        }
    }
}
