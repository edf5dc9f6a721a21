//! The metastore: which sealed files (log and trace splits, metric blocks) exist in
//! object storage, in what state, and how far each writer's write-ahead log is covered
//! by published files.
//!
//! A split's life: the collector **stages** its row, uploads the object, then
//! **publishes** it — in the same transaction as advancing its WAL checkpoint, so a
//! crash at any point leaves either the staged row (the upload is retried, idempotent)
//! or the published split and the advanced checkpoint, never one without the other.
//! Readers list published splits only. Retention and merges **mark** splits; the
//! janitor deletes their objects after a grace period (longer than any query that may
//! still read them), then the rows.
//!
//! Two backends with the same behaviour, pinned by one contract test:
//! - [`file`]: a JSON file in the data directory, for one collector (the default);
//! - [`postgres`]: PostgreSQL, for collectors and query servers on several machines;
//!   schema changes are the plain SQL files in `metastore/migrations`.

pub mod file;
pub mod postgres;
pub mod testing;

use std::path::Path;

use serde::{Deserialize, Serialize};
use triad_model::config::{MetastoreConfig, TokenConfig};

fn no_tokens_in_a_file() -> MetastoreError {
    MetastoreError::Config(
        "tokens are kept in the metastore only with PostgreSQL (metastore.url); with the \
         file metastore, list them under auth.tokens in the configuration"
            .into(),
    )
}

/// The signal a split holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Log records (a tantivy split).
    Logs,
    /// Spans (a tantivy split).
    Traces,
    /// Samples (a TSDB block).
    Metrics,
}

impl Signal {
    /// `logs`, `traces`, `metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    fn parse(s: &str) -> Result<Signal> {
        match s {
            "logs" => Ok(Signal::Logs),
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            other => Err(MetastoreError::Corrupt(format!("unknown signal {other:?}"))),
        }
    }
}

/// Where a split is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitState {
    /// Row written, object being uploaded: invisible to readers.
    Staged,
    /// Uploaded and searchable.
    Published,
    /// Replaced (merge) or expired (retention): deleted after the grace period.
    Marked,
}

impl SplitState {
    fn code(self) -> i16 {
        match self {
            SplitState::Staged => 0,
            SplitState::Published => 1,
            SplitState::Marked => 2,
        }
    }

    fn from_code(c: i16) -> Result<SplitState> {
        match c {
            0 => Ok(SplitState::Staged),
            1 => Ok(SplitState::Published),
            2 => Ok(SplitState::Marked),
            other => Err(MetastoreError::Corrupt(format!(
                "unknown split state {other}"
            ))),
        }
    }
}

/// One sealed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRow {
    /// Unique ID (the dedupe key between collectors and object storage).
    pub split_id: String,
    /// What it holds.
    pub signal: Signal,
    /// The collector that wrote it.
    pub node_id: String,
    /// Where it is in its life.
    pub state: SplitState,
    /// Its object's key in the storage.
    pub object_key: String,
    /// The object's size, bytes.
    pub bytes: u64,
    /// Records (documents, samples) in it.
    pub docs: u64,
    /// Oldest record timestamp, ns.
    pub min_ts: i64,
    /// Newest record timestamp, ns.
    pub max_ts: i64,
    /// Tenants with records in it.
    pub tenants: Vec<String>,
    /// When the row was staged, ms since the epoch.
    pub created_ms: i64,
    /// When its state last changed, ms since the epoch.
    pub updated_ms: i64,
}

/// Which splits a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The signal.
    pub signal: Signal,
    /// The state.
    pub state: SplitState,
    /// Only splits holding records of this tenant.
    pub tenant: Option<String>,
    /// Only splits with records in `[start_ns, end_ns)`.
    pub start_ns: i64,
    /// End of the range, exclusive.
    pub end_ns: i64,
    /// Only splits written by this node.
    pub node_id: Option<String>,
    /// Only splits whose state changed before this time, ms (the janitor's grace).
    pub updated_before_ms: Option<i64>,
}

impl ListQuery {
    /// Published splits of `signal` overlapping `[start_ns, end_ns)`, any tenant.
    pub fn published(signal: Signal, start_ns: i64, end_ns: i64) -> ListQuery {
        ListQuery {
            signal,
            state: SplitState::Published,
            tenant: None,
            start_ns,
            end_ns,
            node_id: None,
            updated_before_ms: None,
        }
    }

    /// Every split of `signal` in `state`, whatever its time range.
    pub fn in_state(signal: Signal, state: SplitState) -> ListQuery {
        ListQuery {
            state,
            ..ListQuery::published(signal, i64::MIN, i64::MAX)
        }
    }

    fn matches(&self, r: &SplitRow) -> bool {
        r.signal == self.signal
            && r.state == self.state
            && r.max_ts >= self.start_ns
            && r.min_ts < self.end_ns
            && self.tenant.as_ref().is_none_or(|t| r.tenants.contains(t))
            && self.node_id.as_ref().is_none_or(|n| &r.node_id == n)
            && self.updated_before_ms.is_none_or(|t| r.updated_ms < t)
    }
}

/// A publication: splits becoming searchable, splits they replace, and the writer's
/// WAL checkpoint, applied together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// Staged splits to publish (already published ones are left as they are).
    pub split_ids: Vec<String>,
    /// Published splits the new ones replace (a merge's inputs): marked.
    pub replaces: Vec<String>,
    /// The writer's WAL position now covered: `(node_id, signal, lsn)`. It only moves
    /// forward.
    pub checkpoint: Option<(String, Signal, u64)>,
    /// Operations the published splits hold, entered in the services catalog (seen
    /// now).
    pub operations: Vec<OperationRow>,
    /// The writer's lease: the publication is refused ([`MetastoreError::Fenced`]) unless
    /// it is still the node's latest registration.
    pub fence: Option<Lease>,
}

/// A collector's registration: its node ID and the generation it registered as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The node.
    pub node_id: String,
    /// Its registration count: one more at every start.
    pub generation: u64,
}

/// A registered collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    /// The node.
    pub node_id: String,
    /// Its latest generation.
    pub generation: u64,
    /// Where query servers reach it (`http://collector-0.triad-collector:4318`).
    pub address: String,
    /// Until when its lease lasts, ms since the epoch (the metastore's clock); 0 once
    /// it left cleanly.
    pub lease_until_ms: i64,
    /// Whether the lease lasts now.
    pub live: bool,
}

/// An entry of the services catalog: an operation of a service of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OperationRow {
    /// The tenant.
    pub tenant: String,
    /// The service (`service.name`).
    pub service: String,
    /// The span kind (`server`, `client`, …; empty when unspecified).
    pub span_kind: String,
    /// The operation (span name).
    pub name: String,
}

/// What kind of alert-notifier record (see [`AlertRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A silence, keyed by its ID (written by the API of any process).
    Silence,
    /// A notification-log entry, keyed by receiver and group (written by the alerting
    /// leader after each delivery).
    Notification,
}

impl AlertKind {
    fn as_str(self) -> &'static str {
        match self {
            AlertKind::Silence => "silence",
            AlertKind::Notification => "notification",
        }
    }
}

/// A record of the alert notifier's shared state, so that whichever process evaluates
/// rules sees every silence and what was already notified. The body is the alert
/// engine's JSON; the metastore does not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Unique within its kind; text without NUL bytes (PostgreSQL's `TEXT`).
    pub key: String,
    /// What retention goes by, ms since the epoch (a silence's end, a delivery's time).
    pub until_ms: i64,
    /// The record.
    pub body: String,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// The `metastore` configuration cannot be used.
    #[error("metastore: {0}")]
    Config(String),
    /// PostgreSQL failed or could not be reached.
    #[error("postgres: {0}")]
    Postgres(String),
    /// The metastore file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A publication names a split that is not staged or published (a merge input
    /// already marked, a row a janitor removed): nothing of it was applied.
    #[error("split {0} cannot be published or replaced in its current state")]
    Conflict(String),
    /// The writer's lease is not its node's latest registration: another process
    /// registered as the same node since. Nothing was applied.
    #[error("node {0} registered again since this process did: its writes are fenced off")]
    Fenced(String),
    /// Stored data is not what this version understands.
    #[error("corrupt metastore: {0}")]
    Corrupt(String),
}

/// Result with [`MetastoreError`].
pub type Result<T> = std::result::Result<T, MetastoreError>;

/// The metastore a process uses.
#[derive(Debug, Clone)]
pub enum Metastore {
    /// A JSON file in the data directory.
    File(file::FileMetastore),
    /// PostgreSQL.
    Postgres(postgres::PgMetastore),
}

impl Metastore {
    /// Opens the metastore `cfg` names (for PostgreSQL: connects and applies pending
    /// migrations).
    pub async fn open(cfg: &MetastoreConfig, data_dir: &Path) -> Result<Metastore> {
        cfg.validate("metastore")
            .map_err(|e| MetastoreError::Config(e.to_string()))?;
        if cfg.url == "file://" {
            return Ok(Metastore::File(file::FileMetastore::open(
                &data_dir.join("metastore.json"),
            )?));
        }
        Ok(Metastore::Postgres(
            postgres::PgMetastore::connect(cfg).await?,
        ))
    }

    /// Writes a staged row (idempotent: a row already there is left as it is).
    pub async fn stage(&self, row: &SplitRow) -> Result<()> {
        match self {
            Metastore::File(m) => m.stage(row).await,
            Metastore::Postgres(m) => m.stage(row).await,
        }
    }

    /// Applies a publication atomically; see [`Publish`].
    pub async fn publish(&self, p: &Publish) -> Result<()> {
        match self {
            Metastore::File(m) => m.publish(p).await,
            Metastore::Postgres(m) => m.publish(p).await,
        }
    }

    /// Splits matching `q`, ordered by split ID.
    pub async fn list(&self, q: &ListQuery) -> Result<Vec<SplitRow>> {
        match self {
            Metastore::File(m) => m.list(q).await,
            Metastore::Postgres(m) => m.list(q).await,
        }
    }

    /// Marks published splits for deletion; returns how many changed.
    pub async fn mark(&self, split_ids: &[String]) -> Result<usize> {
        match self {
            Metastore::File(m) => m.mark(split_ids).await,
            Metastore::Postgres(m) => m.mark(split_ids).await,
        }
    }

    /// Removes rows of marked or staged splits (after their objects were deleted);
    /// published rows are never removed. Returns how many were removed.
    pub async fn remove(&self, split_ids: &[String]) -> Result<usize> {
        match self {
            Metastore::File(m) => m.remove(split_ids).await,
            Metastore::Postgres(m) => m.remove(split_ids).await,
        }
    }

    /// Runs `work` only if no other process runs work under the same `lock` (a
    /// PostgreSQL advisory lock held for the duration); `None` when another holds it.
    /// The file metastore has one process: it always runs `work`.
    pub async fn exclusively<T>(
        &self,
        lock: &str,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>> {
        match self {
            Metastore::File(_) => Ok(Some(work.await)),
            Metastore::Postgres(m) => m.exclusively(lock, work).await,
        }
    }

    /// The services catalog: every operation published splits held, sorted.
    pub async fn operations(&self) -> Result<Vec<OperationRow>> {
        match self {
            Metastore::File(m) => m.operations().await,
            Metastore::Postgres(m) => m.operations().await,
        }
    }

    /// Forgets catalog entries no publication held since `before_ms`; returns how many.
    pub async fn forget_operations(&self, before_ms: i64) -> Result<usize> {
        match self {
            Metastore::File(m) => m.forget_operations(before_ms).await,
            Metastore::Postgres(m) => m.forget_operations(before_ms).await,
        }
    }

    /// Registers `node_id` (reachable at `address`) with a lease of `ttl_ms`: its
    /// generation goes up by one, fencing off any earlier process of the same node.
    pub async fn register(&self, node_id: &str, address: &str, ttl_ms: i64) -> Result<Lease> {
        match self {
            Metastore::File(m) => m.register(node_id, address, ttl_ms).await,
            Metastore::Postgres(m) => m.register(node_id, address, ttl_ms).await,
        }
    }

    /// Extends `lease` by `ttl_ms` from now; [`MetastoreError::Fenced`] when the node
    /// registered again since.
    pub async fn renew(&self, lease: &Lease, address: &str, ttl_ms: i64) -> Result<()> {
        match self {
            Metastore::File(m) => m.renew(lease, address, ttl_ms).await,
            Metastore::Postgres(m) => m.renew(lease, address, ttl_ms).await,
        }
    }

    /// Ends `lease` now (a clean shutdown): the node is no longer live.
    pub async fn leave(&self, lease: &Lease) -> Result<()> {
        match self {
            Metastore::File(m) => m.leave(lease).await,
            Metastore::Postgres(m) => m.leave(lease).await,
        }
    }

    /// Every registered node, by node ID, with whether its lease lasts.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        match self {
            Metastore::File(m) => m.nodes().await,
            Metastore::Postgres(m) => m.nodes().await,
        }
    }

    /// Takes the leadership named `name` if no other process holds it (a PostgreSQL
    /// advisory lock held by a connection of its own, for as long as the returned
    /// [`Leadership`] lives and its connection does); `None` when another holds it. The
    /// file metastore has one process: it always leads.
    pub async fn lead(&self, name: &str) -> Result<Option<Leadership>> {
        match self {
            Metastore::File(_) => Ok(Some(Leadership { client: None })),
            Metastore::Postgres(m) => m.lead(name).await,
        }
    }

    /// Every alert-notifier record of `kind`, by key.
    pub async fn alert_records(&self, kind: AlertKind) -> Result<Vec<AlertRecord>> {
        match self {
            Metastore::File(m) => m.alert_records(kind).await,
            Metastore::Postgres(m) => m.alert_records(kind).await,
        }
    }

    /// The tokens kept here (PostgreSQL; none in a file metastore, whose one process
    /// takes its tokens from its configuration), by name.
    pub async fn tokens(&self) -> Result<Vec<TokenConfig>> {
        match self {
            Metastore::File(_) => Ok(Vec::new()),
            Metastore::Postgres(m) => m.tokens().await,
        }
    }

    /// Adds a token (its hash, never the token); `false` when its name or hash is
    /// taken already (nothing changed).
    pub async fn add_token(&self, token: &TokenConfig) -> Result<bool> {
        match self {
            Metastore::File(_) => Err(no_tokens_in_a_file()),
            Metastore::Postgres(m) => m.add_token(token, now_ms()).await,
        }
    }

    /// Removes the token named `name`; `false` when there was none.
    pub async fn remove_token(&self, name: &str) -> Result<bool> {
        match self {
            Metastore::File(_) => Err(no_tokens_in_a_file()),
            Metastore::Postgres(m) => m.remove_token(name).await,
        }
    }

    /// Writes (or replaces) the record of `kind` with `record.key`.
    pub async fn put_alert_record(&self, kind: AlertKind, record: &AlertRecord) -> Result<()> {
        match self {
            Metastore::File(m) => m.put_alert_record(kind, record).await,
            Metastore::Postgres(m) => m.put_alert_record(kind, record).await,
        }
    }

    /// Removes the records of `kind` whose `until_ms` is before `before_ms`; returns how
    /// many.
    pub async fn forget_alert_records(&self, kind: AlertKind, before_ms: i64) -> Result<usize> {
        match self {
            Metastore::File(m) => m.forget_alert_records(kind, before_ms).await,
            Metastore::Postgres(m) => m.forget_alert_records(kind, before_ms).await,
        }
    }

    /// The WAL position of `node_id`'s `signal` covered by published splits.
    pub async fn checkpoint(&self, node_id: &str, signal: Signal) -> Result<Option<u64>> {
        match self {
            Metastore::File(m) => m.checkpoint(node_id, signal).await,
            Metastore::Postgres(m) => m.checkpoint(node_id, signal).await,
        }
    }
}

/// A held leadership (see [`Metastore::lead`]): released when dropped, or by
/// PostgreSQL when this process or its connection dies.
pub struct Leadership {
    /// The connection holding the lock (none for the file metastore).
    client: Option<deadpool_postgres::ClientWrapper>,
}

impl Leadership {
    /// True while the lock is still held: its connection answers.
    pub async fn holds(&self) -> bool {
        match &self.client {
            None => true,
            Some(c) => c.simple_query("SELECT 1").await.is_ok(),
        }
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("postgres", &self.client.is_some())
            .finish()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    triad_model::now_ns() / 1_000_000
}
