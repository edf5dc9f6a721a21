//! A durable, time-partitioned store of one signal (logs or spans) on tantivy.
//!
//! Data path of an append (see docs/architecture.md):
//!
//! 1. the receiver encodes the batch (postcard) and sends it to the **WAL thread**
//!    through a bounded queue ([`APPEND_QUEUE`]);
//! 2. the WAL thread writes every waiting batch, makes them durable with one
//!    `fdatasync` (group commit), hands them to the indexer through a second bounded
//!    queue ([`INDEX_QUEUE`]) and only then acknowledges them: an acknowledged batch
//!    survives `kill -9`;
//! 3. the **indexer thread** adds documents to the active split's tantivy writer and
//!    commits every `commit_interval_ms` or `commit_docs` documents. The commit payload
//!    records the WAL position it covers; WAL segments below it are deleted, and at
//!    start everything above it is replayed.
//!
//! Both queues are bounded, so a slow disk or indexer pushes back to the receivers
//! instead of growing memory. Neither thread runs on the async runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tantivy::schema::Schema;
use tantivy::{Index, IndexWriter, Searcher, TantivyDocument};
use tokio::sync::{mpsc, oneshot};
use triad_model::config::StoreConfig;

use crate::error::{Error, Result};
use crate::metrics::{SignalLabel, StageLabels, StoreMetrics};
use crate::split::{Split, SplitMeta};
use triad_wal::Wal;

mod threads;
use threads::{index_loop, new_writer, wal_loop};

/// Append requests waiting for the WAL thread. Each holds one export request (up to
/// `max_request_bytes`), so this bounds queued memory to ~64 requests.
pub const APPEND_QUEUE: usize = 64;
/// Durable batches waiting for the indexer. It absorbs the indexer's commit pauses
/// (~100-300 ms, i.e. 10-30 batches of 1000 records at full speed); beyond that the WAL
/// thread waits and backpressure reaches the senders. At 256 it held ~250 MB of
/// decoded spans when senders outran the indexer (measured with triad-bench).
pub const INDEX_QUEUE: usize = 32;
/// The WAL thread gathers waiting requests up to this many bytes into one fsync.
const GROUP_COMMIT_BYTES: usize = 8 << 20;

/// Doc store blocks: larger blocks compress better; reading a hit decompresses one
/// block, which at this size stays well under a millisecond.
pub const DOC_STORE_BLOCK_BYTES: usize = 64 * 1024;

/// zstd for the doc store at `level`: a third smaller than lz4 on log text at level 3;
/// decompression speed is not the bottleneck of any query.
pub fn doc_store_settings(level: i32) -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(level),
        }),
        docstore_blocksize: DOC_STORE_BLOCK_BYTES,
        ..Default::default()
    }
}

/// What a store stores: its schema and how a record becomes a document.
pub trait Signal: Send + Sync + 'static {
    /// The stored record type.
    type Record: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// `logs` or `traces`: directory name and metrics label.
    const NAME: &'static str;
    /// The tantivy schema of a split.
    fn schema(&self) -> Schema;
    /// Index settings of a split (doc store compression and block size).
    fn settings(&self) -> tantivy::IndexSettings {
        doc_store_settings(3)
    }
    /// Registers tokenizers on a newly opened index.
    fn configure(&self, index: &Index);
    /// The document for a record; `seq` is its arrival number in the store.
    fn document(&self, record: &Self::Record, seq: u64) -> TantivyDocument;
    /// The record's timestamp, ns (drives split time ranges and retention).
    fn timestamp_ns(record: &Self::Record) -> i64;
}

struct AppendRequest<R> {
    records: Vec<R>,
    payload: Vec<u8>,
    ack: oneshot::Sender<Result<()>>,
}

enum IndexMsg<R> {
    /// Durable records to index.
    Batch { lsn: u64, records: Vec<R> },
    /// Commit what is pending, then reply: a barrier for WAL replay at open.
    Flush(std_mpsc::SyncSender<()>),
}

struct Shared<S: Signal> {
    signal: S,
    dir: PathBuf,
    cfg: StoreConfig,
    splits: RwLock<Vec<Arc<Split>>>,
    /// Highest WAL LSN covered by an index commit.
    checkpoint: AtomicU64,
    /// False once a thread stopped on a fatal error.
    healthy: AtomicBool,
    metrics: StoreMetrics,
    /// Tenants' own retention (`cfg.retention_secs` for the others).
    retention: RwLock<triad_model::config::Retention>,
}

impl<S: Signal> Shared<S> {
    fn new(signal: S, dir: &Path, cfg: StoreConfig, metrics: StoreMetrics) -> Self {
        let cfg_retention = cfg.retention_secs;
        Self {
            signal,
            dir: dir.to_path_buf(),
            cfg,
            splits: RwLock::new(Vec::new()),
            checkpoint: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            metrics,
            retention: RwLock::new(triad_model::config::Retention::uniform(cfg_retention)),
        }
    }

    fn label(&self) -> SignalLabel {
        SignalLabel { signal: S::NAME }
    }

    fn error(&self, stage: &'static str) {
        self.metrics
            .errors
            .get_or_create(&StageLabels {
                signal: S::NAME,
                stage,
            })
            .inc();
    }

    fn configure(&self) -> impl Fn(&Index) + '_ {
        |index: &Index| self.signal.configure(index)
    }

    fn splits_dir(&self) -> PathBuf {
        self.dir.join("splits")
    }
}

/// A store of one signal. Cloning the `Arc` around it shares it between the receivers
/// and the query side.
pub struct Store<S: Signal> {
    shared: Arc<Shared<S>>,
    tx: Mutex<Option<mpsc::Sender<AppendRequest<S::Record>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// False for a store over given splits ([`Store::from_splits`]): it has no
    /// directory to refresh from.
    local: bool,
    /// A view's collector store and node ID: its splits not published yet join the
    /// view's own (see [`Store::view`]).
    overlay: Option<(Arc<Store<S>>, String)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_splits<S: Signal>(shared: &Shared<S>) -> Result<Vec<Arc<Split>>> {
    let dir = shared.splits_dir();
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
    split_dirs(&dir)?
        .iter()
        .map(|p| Split::open(p, &shared.configure()).map(Arc::new))
        .collect()
}

/// Starts the indexer and WAL threads over the splits in `shared`: the newest split
/// takes writes if it is not sealed (else a new one is created), and the WAL is replayed
/// above the last commit before any new write. Returns the append channel and the
/// threads.
#[allow(clippy::type_complexity)]
fn start<S: Signal>(
    shared: &Arc<Shared<S>>,
) -> Result<(mpsc::Sender<AppendRequest<S::Record>>, Vec<JoinHandle<()>>)> {
    let splits: Vec<Arc<Split>> = shared
        .splits
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let checkpoint = splits.iter().map(|s| s.meta().lsn).max().unwrap_or(0);
    let next_seq = splits.iter().map(|s| s.meta().max_seq).max().unwrap_or(0) + 1;
    shared.checkpoint.store(checkpoint, Ordering::SeqCst);
    // Only the newest split may take writes; an older unsealed one (a crash during a
    // rollover) is treated as sealed.
    let active = match splits.last() {
        Some(s) if !s.meta().sealed => s.clone(),
        _ => {
            let s = Arc::new(Split::create(
                &shared.splits_dir(),
                shared.signal.schema(),
                shared.signal.settings(),
                &shared.configure(),
            )?);
            shared
                .splits
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.clone());
            s
        }
    };
    shared
        .metrics
        .splits
        .get_or_create(&shared.label())
        .set(shared.splits.read().map(|s| s.len()).unwrap_or(0) as i64);

    let writer = new_writer(shared, &active)?;
    let (index_tx, index_rx) = std_mpsc::sync_channel::<IndexMsg<S::Record>>(INDEX_QUEUE);
    let indexer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("{}-indexer", S::NAME))
            .spawn(move || index_loop(shared, index_rx, active, writer, next_seq))
            .map_err(Error::io("spawn indexer thread"))?
    };
    // On an error below, the indexer ends with its channel, and is waited for.
    let stop = |indexer: JoinHandle<()>, index_tx: std_mpsc::SyncSender<IndexMsg<S::Record>>| {
        drop(index_tx);
        let _ = indexer.join();
    };

    // Replay what was acknowledged but not yet committed, in order, before any new write.
    let wal_dir = shared.dir.join("wal");
    let replay_shared = shared.clone();
    let opened = Wal::open(&wal_dir, checkpoint, |lsn, payload| {
        let records: Vec<S::Record> = postcard::from_bytes(&payload).map_err(|e| {
            replay_shared.error("wal");
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("wal record {lsn}: {e}"),
            )
        })?;
        index_tx
            .send(IndexMsg::Batch { lsn, records })
            .map_err(|_| std::io::Error::other("indexer stopped during replay"))
    })
    .map_err(Error::io(format!("open wal {}", wal_dir.display())));
    let (wal, stats) = match opened {
        Ok(w) => w,
        Err(e) => {
            stop(indexer, index_tx);
            return Err(e);
        }
    };
    shared
        .metrics
        .wal_replayed
        .get_or_create(&shared.label())
        .inc_by(stats.replayed);
    if stats.replayed > 0 {
        // Open returns once replayed data is committed: ready means searchable.
        let (done_tx, done_rx) = std_mpsc::sync_channel(1);
        if index_tx.send(IndexMsg::Flush(done_tx)).is_err() || done_rx.recv().is_err() {
            wal.abandon();
            stop(indexer, index_tx);
            return Err(Error::Closed(S::NAME));
        }
    }
    if stats.replayed > 0 || stats.truncated_bytes > 0 {
        tracing::info!(
            signal = S::NAME,
            replayed = stats.replayed,
            truncated_bytes = stats.truncated_bytes,
            "replayed write-ahead log"
        );
    }

    let (tx, rx) = mpsc::channel(APPEND_QUEUE);
    let wal_thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("{}-wal", S::NAME))
            .spawn(move || wal_loop(shared, wal, rx, index_tx))
            .map_err(Error::io("spawn wal thread"))?
    };
    Ok((tx, vec![wal_thread, indexer]))
}

impl<S: Signal> Store<S> {
    /// Opens the store in `dir` for reading and writing: opens its splits, replays the
    /// WAL above the last commit and starts the WAL and indexer threads.
    pub fn open(
        signal: S,
        dir: &Path,
        cfg: StoreConfig,
        metrics: StoreMetrics,
    ) -> Result<Arc<Self>> {
        let shared = Arc::new(Shared::new(signal, dir, cfg, metrics));
        let splits = open_splits(&shared)?;
        *shared.splits.write().unwrap_or_else(|e| e.into_inner()) = splits;
        let (tx, threads) = start(&shared)?;
        Ok(Arc::new(Store {
            shared,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            local: true,
            overlay: None,
        }))
    }

    /// Restarts a store whose WAL or indexer stopped on an error (a full disk, say):
    /// stops both threads, then starts them again as [`Store::open`] does — the active
    /// split reopened at its last commit, the WAL replayed above it (every acknowledged
    /// record), writes taken again. Fails, leaving the store stopped, while the cause
    /// lasts (the disk still full); call it again later. Does blocking I/O.
    pub fn restart(&self) -> Result<()> {
        if !self.local {
            return Ok(());
        }
        lock(&self.tx).take();
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                tracing::error!(signal = S::NAME, "store thread panicked");
            }
        }
        let (tx, threads) = start(&self.shared)?;
        *lock(&self.tx) = Some(tx);
        *lock(&self.threads) = threads;
        self.shared.healthy.store(true, Ordering::SeqCst);
        self.shared
            .metrics
            .restarts
            .get_or_create(&self.shared.label())
            .inc();
        tracing::info!(signal = S::NAME, "store restarted; taking writes again");
        Ok(())
    }

    /// Opens the store read-only, for a query server beside a collector that writes it.
    /// Call [`Store::refresh`] periodically to see new commits and splits.
    pub fn open_read_only(
        signal: S,
        dir: &Path,
        cfg: StoreConfig,
        metrics: StoreMetrics,
    ) -> Result<Arc<Self>> {
        let shared = Arc::new(Shared::new(signal, dir, cfg, metrics));
        let splits = open_splits(&shared)?;
        *shared.splits.write().unwrap_or_else(|e| e.into_inner()) = splits;
        Ok(Arc::new(Store {
            shared,
            tx: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            local: true,
            overlay: None,
        }))
    }

    /// A read-only store over `splits` (sealed splits opened from object storage, say):
    /// searches see exactly them, oldest first, until [`Store::set_splits`] replaces them.
    pub fn from_splits(
        signal: S,
        cfg: StoreConfig,
        metrics: StoreMetrics,
        splits: Vec<Arc<Split>>,
    ) -> Arc<Self> {
        let shared = Arc::new(Shared::new(signal, Path::new(""), cfg, metrics));
        *shared.splits.write().unwrap_or_else(|e| e.into_inner()) = splits;
        Arc::new(Store {
            shared,
            tx: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            local: false,
            overlay: None,
        })
    }

    /// A read-only view for queries in object-storage mode: published splits (set with
    /// [`Store::set_splits`], their IDs `node/local-id`) plus the splits of the
    /// collector's own `local` store that are not among them — the active split, sealed
    /// splits being uploaded, and published ones the view does not list yet. A split is
    /// thus searched exactly once, wherever it is during its hand-off to object storage.
    pub fn view(
        signal: S,
        cfg: StoreConfig,
        metrics: StoreMetrics,
        local: Option<(Arc<Store<S>>, String)>,
    ) -> Arc<Self> {
        let shared = Arc::new(Shared::new(signal, Path::new(""), cfg, metrics));
        Arc::new(Store {
            shared,
            tx: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            local: false,
            overlay: local,
        })
    }

    /// Replaces the splits of a store made by [`Store::from_splits`] (oldest first).
    pub fn set_splits(&self, splits: Vec<Arc<Split>>) {
        *self
            .shared
            .splits
            .write()
            .unwrap_or_else(|e| e.into_inner()) = splits;
    }

    /// Makes `records` durable; returns once they survive a crash. They become
    /// searchable at the next index commit.
    pub async fn append(&self, records: Vec<S::Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let payload = postcard::to_stdvec(&records).map_err(|e| Error::Corrupt(e.to_string()))?;
        let tx = lock(&self.tx).clone().ok_or(Error::Closed(S::NAME))?;
        let (ack, done) = oneshot::channel();
        tx.send(AppendRequest {
            records,
            payload,
            ack,
        })
        .await
        .map_err(|_| Error::Closed(S::NAME))?;
        done.await.map_err(|_| Error::Closed(S::NAME))?
    }

    /// True while both threads run.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    /// The signal (schema fields and helpers).
    pub fn signal(&self) -> &S {
        &self.shared.signal
    }

    /// All splits, oldest first.
    pub fn splits(&self) -> Vec<Arc<Split>> {
        let mut own = self
            .shared
            .splits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((local, node)) = &self.overlay {
            let published: std::collections::HashSet<&str> =
                own.iter().map(|s| s.id.as_str()).collect();
            let prefix = format!("{node}/");
            let extra: Vec<Arc<Split>> = local
                .splits()
                .into_iter()
                .filter(|s| !published.contains(format!("{prefix}{}", s.id).as_str()))
                .collect();
            own.extend(extra);
            // Oldest first, as a local store lists them: by the creation time that
            // ends every split ID.
            own.sort_by(|a, b| local_id(&a.id).cmp(local_id(&b.id)));
        }
        own
    }

    /// Splits no longer written: every split but the active (newest) one, which also
    /// excludes a split sealed a moment ago whose writer is still finishing merges.
    pub fn sealed_splits(&self) -> Vec<Arc<Split>> {
        let mut splits = self.splits();
        splits.pop();
        splits
    }

    /// Removes sealed splits by ID (their local copies, once published and past the
    /// grace period) and deletes their directories. Returns how many were removed.
    /// Blocking file I/O.
    pub fn remove_splits(&self, ids: &[String]) -> Result<usize> {
        let removed: Vec<Arc<Split>> = {
            let mut splits = self
                .shared
                .splits
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let active = splits.last().map(|s| s.id.clone());
            let (gone, kept): (Vec<_>, Vec<_>) = splits
                .drain(..)
                .partition(|s| ids.contains(&s.id) && Some(&s.id) != active.as_ref());
            *splits = kept;
            self.shared
                .metrics
                .splits
                .get_or_create(&self.shared.label())
                .set(splits.len() as i64);
            gone
        };
        for s in &removed {
            if let Some(dir) = s.local_dir()
                && let Err(e) = std::fs::remove_dir_all(dir)
            {
                self.shared.error("retention");
                tracing::error!(split = %dir.display(), error = %e, "failed to delete a published split's local copy");
            }
        }
        Ok(removed.len())
    }

    /// Searchers of the splits with records in `[start_ns, end_ns)`, newest split first.
    /// Splits outside the range are skipped without being opened for search.
    pub fn searchers(&self, start_ns: i64, end_ns: i64) -> Vec<Searcher> {
        let mut v: Vec<Searcher> = self
            .splits()
            .iter()
            .filter(|s| s.overlaps(start_ns, end_ns))
            .map(|s| s.searcher())
            .collect();
        v.reverse();
        v
    }

    /// Searchers of every non-empty split, newest first.
    pub fn all_searchers(&self) -> Vec<Searcher> {
        self.searchers(i64::MIN, i64::MAX)
    }

    /// Read-only mode: picks up new commits, new splits and removed splits.
    pub fn refresh(&self) -> Result<()> {
        if !self.local {
            return Ok(());
        }
        let on_disk = split_dirs(&self.shared.splits_dir())?;
        let current = self.splits();
        let mut next = Vec::with_capacity(on_disk.len());
        for path in on_disk {
            match current
                .iter()
                .find(|s| s.local_dir() == Some(path.as_path()))
            {
                Some(s) => {
                    s.refresh()?;
                    next.push(s.clone());
                }
                None => next.push(Arc::new(Split::open(&path, &self.shared.configure())?)),
            }
        }
        *self
            .shared
            .splits
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// Gives tenants their own retention (the default stays `retention_secs`).
    pub fn set_retention(&self, retention: triad_model::config::Retention) {
        *self
            .shared
            .retention
            .write()
            .unwrap_or_else(|e| e.into_inner()) = retention;
    }

    /// Drops sealed splits whose newest record is older than their retention — the
    /// longest of their tenants' (`retention_secs` unless [`Store::set_retention`] gave
    /// some their own) — then the oldest sealed splits while the store exceeds
    /// `retention_bytes`. Returns how many splits were removed. Does blocking file I/O.
    pub fn apply_retention(&self, now_ns: i64) -> Result<usize> {
        let cfg = &self.shared.cfg;
        let retention = self
            .shared
            .retention
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut removed = Vec::new();
        {
            let mut splits = self
                .shared
                .splits
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let shortest = retention.shortest();
            if shortest > 0 {
                // Nothing newer than the shortest retention can have expired.
                let earliest =
                    now_ns.saturating_sub((shortest as i64).saturating_mul(1_000_000_000));
                let uniform = retention.is_uniform();
                let mut failed = false;
                splits.retain(|s| {
                    let m = s.meta();
                    if !m.sealed || m.max_ts >= earliest {
                        return true;
                    }
                    let cutoff = if uniform {
                        Some(earliest)
                    } else {
                        match s.tenants() {
                            Ok(t) => retention.cutoff_ns(t.iter().map(String::as_str), now_ns),
                            Err(e) => {
                                // Kept: a split is never dropped on a guess.
                                failed = true;
                                tracing::error!(split = %s.id, error = %e, "cannot read the tenants of a split; kept");
                                None
                            }
                        }
                    };
                    let expired = cutoff.is_some_and(|c| m.max_ts < c);
                    if expired {
                        removed.push(s.clone());
                    }
                    !expired
                });
                if failed {
                    self.shared.error("retention");
                }
            }
            let sizes: Vec<u64> = splits.iter().map(|s| s.disk_bytes()).collect();
            let mut total: u64 = sizes.iter().sum();
            if cfg.retention_bytes > 0 {
                let mut i = 0;
                while total > cfg.retention_bytes && i < splits.len() {
                    if splits[i].meta().sealed {
                        total -= sizes[i];
                        removed.push(splits.remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
            let label = self.shared.label();
            self.shared
                .metrics
                .disk_bytes
                .get_or_create(&label)
                .set(total as i64);
            self.shared
                .metrics
                .splits
                .get_or_create(&label)
                .set(splits.len() as i64);
        }
        for s in &removed {
            tracing::info!(signal = S::NAME, split = %s.id, "retention removed split");
            // A split in object storage is deleted by the janitor, after a grace period.
            if let Some(dir) = s.local_dir()
                && let Err(e) = std::fs::remove_dir_all(dir)
            {
                self.shared.error("retention");
                tracing::error!(split = %dir.display(), error = %e, "failed to delete expired split");
            }
        }
        self.shared
            .metrics
            .retention_removed_splits
            .get_or_create(&self.shared.label())
            .inc_by(removed.len() as u64);
        Ok(removed.len())
    }

    /// How often retention should run: often enough to drop a split soon after it expires.
    pub fn retention_check_interval(&self) -> Duration {
        Duration::from_secs(self.shared.cfg.split_max_age_secs.clamp(1, 60))
    }

    /// Stops accepting writes, lets the threads drain their queues, commits and joins
    /// them. Blocks: call it from `spawn_blocking` on a runtime.
    pub fn shutdown(&self) {
        lock(&self.tx).take();
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        let was_running = !threads.is_empty();
        for t in threads {
            if t.join().is_err() {
                tracing::error!(signal = S::NAME, "store thread panicked");
            }
        }
        if was_running {
            // Everything is committed now: reopening the WAL at the final checkpoint
            // deletes the segments it covers. Anything above it stays for replay.
            let checkpoint = self.shared.checkpoint.load(Ordering::SeqCst);
            if let Err(e) = Wal::open(&self.shared.dir.join("wal"), checkpoint, |_, _| Ok(())) {
                tracing::warn!(signal = S::NAME, error = %e, "could not trim the write-ahead log at shutdown");
            }
        }
    }
}

/// Split directories (those holding a tantivy `meta.json`), oldest first.
fn split_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut ids: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(format!("list {}", dir.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("meta.json").exists())
        .map(|e| e.path())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The creation-time part of a split ID (`node/00001700…` or `00001700…`).
fn local_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}
