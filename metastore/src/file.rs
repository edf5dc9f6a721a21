//! The embedded metastore: the whole state in one JSON file, rewritten atomically
//! (temporary file, `fsync`, rename, directory `fsync`) on every change. One process
//! owns it; it holds what one collector writes (thousands of rows, not millions).
//!
//! A change is applied to a copy, the copy is made durable, and only then does it
//! replace the state in memory: a failed write changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    AlertKind, AlertRecord, Lease, ListQuery, MetastoreError, NodeRow, OperationRow, Publish,
    Result, Signal, SplitRow, SplitState, now_ms,
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    /// Format version (1).
    version: u32,
    splits: BTreeMap<String, SplitRow>,
    checkpoints: Vec<CheckpointRow>,
    /// The services catalog, with when each entry was last published.
    #[serde(default)]
    operations: Vec<(OperationRow, i64)>,
    /// Registered nodes.
    #[serde(default)]
    nodes: Vec<NodeRow>,
    /// The alert notifier's records, by kind and key.
    #[serde(default)]
    alert_state: BTreeMap<AlertKind, BTreeMap<String, AlertRecord>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointRow {
    node_id: String,
    signal: Signal,
    lsn: u64,
}

/// A metastore in one file.
#[derive(Debug, Clone)]
pub struct FileMetastore {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> MetastoreError {
    move |source| MetastoreError::Io { context, source }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl FileMetastore {
    /// Opens (or creates) the metastore file at `path`.
    pub fn open(path: &Path) -> Result<FileMetastore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        }
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes)
                    .map_err(|e| MetastoreError::Corrupt(format!("{}: {e}", path.display())))?;
                if state.version != 1 {
                    return Err(MetastoreError::Corrupt(format!(
                        "{}: unknown version {}",
                        path.display(),
                        state.version
                    )));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                version: 1,
                ..State::default()
            },
            Err(e) => return Err(io(format!("read {}", path.display()))(e)),
        };
        Ok(FileMetastore {
            path: path.to_path_buf(),
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// Applies `change` to a copy of the state, persists the copy, then keeps it.
    async fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.state.lock().await;
        let mut next = guard.clone();
        let out = change(&mut next)?;
        let bytes = serde_json::to_vec(&next)
            .map_err(|e| MetastoreError::Corrupt(format!("serialize: {e}")))?;
        let path = self.path.clone();
        let context = format!("write {}", path.display());
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| MetastoreError::Io {
                context: context.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(io(context))?;
        *guard = next;
        Ok(out)
    }

    pub(crate) async fn stage(&self, row: &SplitRow) -> Result<()> {
        let now = now_ms();
        self.update(|s| {
            s.splits
                .entry(row.split_id.clone())
                .or_insert_with(|| SplitRow {
                    state: SplitState::Staged,
                    created_ms: now,
                    updated_ms: now,
                    ..row.clone()
                });
            Ok(())
        })
        .await
    }

    pub(crate) async fn publish(&self, p: &Publish) -> Result<()> {
        let now = now_ms();
        self.update(|s| {
            if let Some(lease) = &p.fence {
                let current = s.nodes.iter().find(|n| n.node_id == lease.node_id);
                if current.is_none_or(|n| n.generation != lease.generation) {
                    return Err(MetastoreError::Fenced(lease.node_id.clone()));
                }
            }
            for id in &p.split_ids {
                match s.splits.get_mut(id) {
                    Some(r) if r.state == SplitState::Staged => {
                        r.state = SplitState::Published;
                        r.updated_ms = now;
                    }
                    Some(r) if r.state == SplitState::Published => {}
                    _ => return Err(MetastoreError::Conflict(id.clone())),
                }
            }
            for id in &p.replaces {
                match s.splits.get_mut(id) {
                    Some(r) if r.state == SplitState::Published => {
                        r.state = SplitState::Marked;
                        r.updated_ms = now;
                    }
                    _ => return Err(MetastoreError::Conflict(id.clone())),
                }
            }
            if let Some((node, signal, lsn)) = &p.checkpoint {
                match s
                    .checkpoints
                    .iter_mut()
                    .find(|c| &c.node_id == node && c.signal == *signal)
                {
                    Some(c) => c.lsn = c.lsn.max(*lsn),
                    None => s.checkpoints.push(CheckpointRow {
                        node_id: node.clone(),
                        signal: *signal,
                        lsn: *lsn,
                    }),
                }
            }
            if !p.operations.is_empty() {
                let mut catalog: BTreeMap<OperationRow, i64> =
                    std::mem::take(&mut s.operations).into_iter().collect();
                for op in &p.operations {
                    catalog.insert(op.clone(), now);
                }
                s.operations = catalog.into_iter().collect();
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn list(&self, q: &ListQuery) -> Result<Vec<SplitRow>> {
        let s = self.state.lock().await;
        Ok(s.splits
            .values()
            .filter(|r| q.matches(r))
            .cloned()
            .collect())
    }

    pub(crate) async fn mark(&self, ids: &[String]) -> Result<usize> {
        let now = now_ms();
        self.update(|s| {
            let mut n = 0;
            for id in ids {
                if let Some(r) = s.splits.get_mut(id)
                    && r.state == SplitState::Published
                {
                    r.state = SplitState::Marked;
                    r.updated_ms = now;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    pub(crate) async fn remove(&self, ids: &[String]) -> Result<usize> {
        self.update(|s| {
            let before = s.splits.len();
            for id in ids {
                if s.splits
                    .get(id)
                    .is_some_and(|r| r.state != SplitState::Published)
                {
                    s.splits.remove(id);
                }
            }
            Ok(before - s.splits.len())
        })
        .await
    }

    pub(crate) async fn operations(&self) -> Result<Vec<OperationRow>> {
        let s = self.state.lock().await;
        Ok(s.operations.iter().map(|(op, _)| op.clone()).collect())
    }

    pub(crate) async fn forget_operations(&self, before_ms: i64) -> Result<usize> {
        self.update(|s| {
            let n = s.operations.len();
            s.operations.retain(|(_, seen)| *seen >= before_ms);
            Ok(n - s.operations.len())
        })
        .await
    }

    pub(crate) async fn register(
        &self,
        node_id: &str,
        address: &str,
        ttl_ms: i64,
    ) -> Result<Lease> {
        let now = now_ms();
        self.update(|s| {
            let generation = match s.nodes.iter_mut().find(|n| n.node_id == node_id) {
                Some(n) => {
                    n.generation += 1;
                    n.address = address.to_string();
                    n.lease_until_ms = now + ttl_ms;
                    n.generation
                }
                None => {
                    s.nodes.push(NodeRow {
                        node_id: node_id.to_string(),
                        generation: 1,
                        address: address.to_string(),
                        lease_until_ms: now + ttl_ms,
                        live: false,
                    });
                    1
                }
            };
            Ok(Lease {
                node_id: node_id.to_string(),
                generation,
            })
        })
        .await
    }

    pub(crate) async fn renew(&self, lease: &Lease, address: &str, ttl_ms: i64) -> Result<()> {
        let now = now_ms();
        self.update(|s| {
            match s
                .nodes
                .iter_mut()
                .find(|n| n.node_id == lease.node_id && n.generation == lease.generation)
            {
                Some(n) => {
                    n.address = address.to_string();
                    n.lease_until_ms = now + ttl_ms;
                    Ok(())
                }
                None => Err(MetastoreError::Fenced(lease.node_id.clone())),
            }
        })
        .await
    }

    pub(crate) async fn leave(&self, lease: &Lease) -> Result<()> {
        self.update(|s| {
            if let Some(n) = s
                .nodes
                .iter_mut()
                .find(|n| n.node_id == lease.node_id && n.generation == lease.generation)
            {
                n.lease_until_ms = 0;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let now = now_ms();
        let s = self.state.lock().await;
        let mut nodes: Vec<NodeRow> = s
            .nodes
            .iter()
            .map(|n| NodeRow {
                live: n.lease_until_ms > now,
                ..n.clone()
            })
            .collect();
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }

    pub(crate) async fn checkpoint(&self, node_id: &str, signal: Signal) -> Result<Option<u64>> {
        let s = self.state.lock().await;
        Ok(s.checkpoints
            .iter()
            .find(|c| c.node_id == node_id && c.signal == signal)
            .map(|c| c.lsn))
    }

    pub(crate) async fn alert_records(&self, kind: AlertKind) -> Result<Vec<AlertRecord>> {
        let s = self.state.lock().await;
        Ok(s.alert_state
            .get(&kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    pub(crate) async fn put_alert_record(&self, kind: AlertKind, r: &AlertRecord) -> Result<()> {
        self.update(|s| {
            s.alert_state
                .entry(kind)
                .or_default()
                .insert(r.key.clone(), r.clone());
            Ok(())
        })
        .await
    }

    pub(crate) async fn forget_alert_records(
        &self,
        kind: AlertKind,
        before_ms: i64,
    ) -> Result<usize> {
        self.update(|s| {
            let Some(m) = s.alert_state.get_mut(&kind) else {
                return Ok(0);
            };
            let before = m.len();
            m.retain(|_, r| r.until_ms >= before_ms);
            Ok(before - m.len())
        })
        .await
    }
}
