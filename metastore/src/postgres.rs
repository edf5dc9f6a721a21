//! The metastore in PostgreSQL, shared by every collector and query server.
//!
//! A small pool of connections (`deadpool-postgres`); statements select only the
//! columns they need and prune by signal, state, time range and tenant in SQL, on the
//! indexes of `migrations/0001_splits.sql`. Migrations are applied at connect, in one
//! transaction holding an advisory lock, so processes starting together apply each
//! exactly once.

use std::time::Duration;

use deadpool_postgres::{
    Config, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres::NoTls;
use triad_model::auth::Role;
use triad_model::config::{MetastoreConfig, TokenConfig};

use crate::{
    AlertKind, AlertRecord, Lease, ListQuery, MetastoreError, NodeRow, OperationRow, Publish,
    Result, Signal, SplitRow, SplitState, now_ms,
};

/// The schema, in order. A migration is never edited once released: changes are new
/// files.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_splits.sql")),
    (2, include_str!("../migrations/0002_operations.sql")),
    (3, include_str!("../migrations/0003_nodes.sql")),
    (4, include_str!("../migrations/0004_alert_state.sql")),
    (5, include_str!("../migrations/0005_tokens.sql")),
];

/// PostgreSQL's clock, ms since the epoch: leases are timed by one clock for all.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Advisory lock key of schema migrations ("triad" in ASCII).
const MIGRATION_LOCK: i64 = 0x74_7269_6164;

/// A PostgreSQL metastore.
#[derive(Clone)]
pub struct PgMetastore {
    pool: Pool,
}

impl std::fmt::Debug for PgMetastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMetastore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// The error with its causes (`tokio_postgres` says only "db error" at the top; the
/// server's message is its source).
fn pg(e: impl std::error::Error) -> MetastoreError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    MetastoreError::Postgres(message)
}

const COLUMNS: &str = "split_id, signal, node_id, state, object_key, bytes, docs, min_ts, \
                       max_ts, tenants, created_ms, updated_ms";

fn row(r: &tokio_postgres::Row) -> Result<SplitRow> {
    let get_i64 = |i: usize| -> Result<i64> { r.try_get::<_, i64>(i).map_err(pg) };
    Ok(SplitRow {
        split_id: r.try_get(0).map_err(pg)?,
        signal: Signal::parse(r.try_get(1).map_err(pg)?)?,
        node_id: r.try_get(2).map_err(pg)?,
        state: SplitState::from_code(r.try_get(3).map_err(pg)?)?,
        object_key: r.try_get(4).map_err(pg)?,
        bytes: get_i64(5)? as u64,
        docs: get_i64(6)? as u64,
        min_ts: get_i64(7)?,
        max_ts: get_i64(8)?,
        tenants: r.try_get(9).map_err(pg)?,
        created_ms: get_i64(10)?,
        updated_ms: get_i64(11)?,
    })
}

/// The advisory lock key of a named lock (FNV-1a of the name).
fn lock_key(name: &str) -> i64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) as i64
}

impl PgMetastore {
    /// Connects to `cfg.url` and brings the schema up to date.
    pub async fn connect(cfg: &MetastoreConfig) -> Result<PgMetastore> {
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let mut c = Config::new();
        c.url = Some(cfg.url.clone());
        c.connect_timeout = Some(timeout);
        c.options = Some(format!("-c statement_timeout={}", timeout.as_millis()));
        c.application_name = Some("triad".into());
        c.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        c.pool = Some(PoolConfig {
            max_size: cfg.pool_size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        });
        let pool = c
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| MetastoreError::Config(format!("metastore.url: {e}")))?;
        let m = PgMetastore { pool };
        m.migrate().await?;
        Ok(m)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pg)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS triad_migrations (
                 version INT PRIMARY KEY,
                 applied_ms BIGINT NOT NULL)",
        )
        .await
        .map_err(pg)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM triad_migrations", &[])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|e| MetastoreError::Postgres(format!("migration {version}: {e}")))?;
            tx.execute(
                "INSERT INTO triad_migrations (version, applied_ms) VALUES ($1, $2)",
                &[version, &now_ms()],
            )
            .await
            .map_err(pg)?;
            tracing::info!(version, "metastore schema migrated");
        }
        tx.commit().await.map_err(pg)
    }

    pub(crate) async fn stage(&self, r: &SplitRow) -> Result<()> {
        let now = now_ms();
        self.client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO splits ({COLUMNS}) VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $10, $10)
                     ON CONFLICT (split_id) DO NOTHING"
                ),
                &[
                    &r.split_id,
                    &r.signal.as_str(),
                    &r.node_id,
                    &r.object_key,
                    &(r.bytes as i64),
                    &(r.docs as i64),
                    &r.min_ts,
                    &r.max_ts,
                    &r.tenants,
                    &now,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    pub(crate) async fn publish(&self, p: &Publish) -> Result<()> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        if let Some(lease) = &p.fence {
            // Held until the commit: a registration of the same node waits for it.
            let current = tx
                .query_opt(
                    "SELECT generation FROM nodes WHERE node_id = $1 FOR SHARE",
                    &[&lease.node_id],
                )
                .await
                .map_err(pg)?
                .map(|r| r.get::<_, i64>(0));
            if current != Some(lease.generation as i64) {
                return Err(MetastoreError::Fenced(lease.node_id.clone()));
            }
        }
        tx.execute(
            "UPDATE splits SET state = 1, updated_ms = $2 WHERE split_id = ANY($1) AND state = 0",
            &[&p.split_ids, &now],
        )
        .await
        .map_err(pg)?;
        let published: Vec<String> = tx
            .query(
                "SELECT split_id FROM splits WHERE split_id = ANY($1) AND state = 1",
                &[&p.split_ids],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(missing) = p.split_ids.iter().find(|id| !published.contains(id)) {
            return Err(MetastoreError::Conflict(missing.clone()));
        }
        if !p.replaces.is_empty() {
            let marked: Vec<String> = tx
                .query(
                    "UPDATE splits SET state = 2, updated_ms = $2
                     WHERE split_id = ANY($1) AND state = 1 RETURNING split_id",
                    &[&p.replaces, &now],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if let Some(missing) = p.replaces.iter().find(|id| !marked.contains(id)) {
                return Err(MetastoreError::Conflict(missing.clone()));
            }
        }
        if let Some((node, signal, lsn)) = &p.checkpoint {
            tx.execute(
                "INSERT INTO checkpoints (node_id, signal, lsn, updated_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node_id, signal) DO UPDATE
                 SET lsn = GREATEST(checkpoints.lsn, EXCLUDED.lsn), updated_ms = EXCLUDED.updated_ms",
                &[node, &signal.as_str(), &(*lsn as i64), &now],
            )
            .await
            .map_err(pg)?;
        }
        if !p.operations.is_empty() {
            let column = |f: fn(&OperationRow) -> &String| -> Vec<&str> {
                p.operations.iter().map(|o| f(o).as_str()).collect()
            };
            tx.execute(
                "INSERT INTO operations (tenant, service, span_kind, name, last_seen_ms)
                 SELECT t, s, k, n, $5
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) AS u(t, s, k, n)
                 ON CONFLICT (tenant, service, span_kind, name) DO UPDATE
                 SET last_seen_ms = GREATEST(operations.last_seen_ms, EXCLUDED.last_seen_ms)",
                &[
                    &column(|o| &o.tenant),
                    &column(|o| &o.service),
                    &column(|o| &o.span_kind),
                    &column(|o| &o.name),
                    &now,
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    pub(crate) async fn operations(&self) -> Result<Vec<OperationRow>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant, service, span_kind, name FROM operations
                 ORDER BY tenant, service, span_kind, name",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(OperationRow {
                    tenant: r.try_get(0).map_err(pg)?,
                    service: r.try_get(1).map_err(pg)?,
                    span_kind: r.try_get(2).map_err(pg)?,
                    name: r.try_get(3).map_err(pg)?,
                })
            })
            .collect()
    }

    pub(crate) async fn forget_operations(&self, before_ms: i64) -> Result<usize> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM operations WHERE last_seen_ms < $1",
                &[&before_ms],
            )
            .await
            .map_err(pg)?;
        Ok(n as usize)
    }

    pub(crate) async fn list(&self, q: &ListQuery) -> Result<Vec<SplitRow>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM splits
                     WHERE signal = $1 AND state = $2 AND max_ts >= $3 AND min_ts < $4
                       AND ($5::TEXT IS NULL OR $5 = ANY(tenants))
                       AND ($6::TEXT IS NULL OR node_id = $6)
                       AND ($7::BIGINT IS NULL OR updated_ms < $7)
                     ORDER BY split_id"
                ),
                &[
                    &q.signal.as_str(),
                    &q.state.code(),
                    &q.start_ns,
                    &q.end_ns,
                    &q.tenant,
                    &q.node_id,
                    &q.updated_before_ms,
                ],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(row).collect()
    }

    pub(crate) async fn mark(&self, ids: &[String]) -> Result<usize> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE splits SET state = 2, updated_ms = $2 WHERE split_id = ANY($1) AND state = 1",
                &[&ids, &now_ms()],
            )
            .await
            .map_err(pg)?;
        Ok(n as usize)
    }

    pub(crate) async fn remove(&self, ids: &[String]) -> Result<usize> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM splits WHERE split_id = ANY($1) AND state <> 1",
                &[&ids],
            )
            .await
            .map_err(pg)?;
        Ok(n as usize)
    }

    pub(crate) async fn exclusively<T>(
        &self,
        lock: &str,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>> {
        // A transaction-scoped advisory lock on a connection of its own, held while
        // `work` runs on others; released by the commit, or by PostgreSQL if this
        // process dies.
        let key = lock_key(lock);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let got: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key])
            .await
            .map_err(pg)?
            .get(0);
        if !got {
            return Ok(None);
        }
        let out = work.await;
        tx.commit().await.map_err(pg)?;
        Ok(Some(out))
    }

    pub(crate) async fn register(
        &self,
        node_id: &str,
        address: &str,
        ttl_ms: i64,
    ) -> Result<Lease> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO nodes (node_id, generation, address, lease_until_ms, registered_ms)
                     VALUES ($1, 1, $2, {DB_NOW_MS} + $3, {DB_NOW_MS})
                     ON CONFLICT (node_id) DO UPDATE
                     SET generation = nodes.generation + 1, address = EXCLUDED.address,
                         lease_until_ms = EXCLUDED.lease_until_ms,
                         registered_ms = EXCLUDED.registered_ms
                     RETURNING generation"
                ),
                &[&node_id, &address, &ttl_ms],
            )
            .await
            .map_err(pg)?;
        Ok(Lease {
            node_id: node_id.to_string(),
            generation: row.get::<_, i64>(0) as u64,
        })
    }

    pub(crate) async fn renew(&self, lease: &Lease, address: &str, ttl_ms: i64) -> Result<()> {
        let n = self
            .client()
            .await?
            .execute(
                &format!(
                    "UPDATE nodes SET lease_until_ms = {DB_NOW_MS} + $3, address = $4
                     WHERE node_id = $1 AND generation = $2"
                ),
                &[
                    &lease.node_id,
                    &(lease.generation as i64),
                    &ttl_ms,
                    &address,
                ],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(MetastoreError::Fenced(lease.node_id.clone()));
        }
        Ok(())
    }

    pub(crate) async fn leave(&self, lease: &Lease) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE nodes SET lease_until_ms = 0 WHERE node_id = $1 AND generation = $2",
                &[&lease.node_id, &(lease.generation as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT node_id, generation, address, lease_until_ms,
                            lease_until_ms > {DB_NOW_MS}
                     FROM nodes ORDER BY node_id"
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    node_id: r.try_get(0).map_err(pg)?,
                    generation: r.try_get::<_, i64>(1).map_err(pg)? as u64,
                    address: r.try_get(2).map_err(pg)?,
                    lease_until_ms: r.try_get(3).map_err(pg)?,
                    live: r.try_get(4).map_err(pg)?,
                })
            })
            .collect()
    }

    pub(crate) async fn lead(&self, name: &str) -> Result<Option<crate::Leadership>> {
        // A connection of its own, out of the pool: the session-level lock lives as long
        // as it does, and dropping it (or this process dying) releases the lock.
        let client = deadpool_postgres::Object::take(self.client().await?);
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key(name)])
            .await
            .map_err(pg)?
            .get(0);
        Ok(got.then(|| crate::Leadership {
            client: Some(client),
        }))
    }

    pub(crate) async fn checkpoint(&self, node_id: &str, signal: Signal) -> Result<Option<u64>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT lsn FROM checkpoints WHERE node_id = $1 AND signal = $2",
                &[&node_id, &signal.as_str()],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    pub(crate) async fn alert_records(&self, kind: AlertKind) -> Result<Vec<AlertRecord>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key, until_ms, body FROM alert_state WHERE kind = $1 ORDER BY key",
                &[&kind.as_str()],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(AlertRecord {
                    key: r.try_get(0).map_err(pg)?,
                    until_ms: r.try_get(1).map_err(pg)?,
                    body: r.try_get(2).map_err(pg)?,
                })
            })
            .collect()
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<TokenConfig>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, hash, tenant, role, trusted FROM tokens ORDER BY name",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(3).map_err(pg)?;
                Ok(TokenConfig {
                    name: r.try_get(0).map_err(pg)?,
                    hash: r.try_get(1).map_err(pg)?,
                    tenant: r.try_get(2).map_err(pg)?,
                    role: Role::parse(&role).map_err(MetastoreError::Corrupt)?,
                    trusted: r.try_get(4).map_err(pg)?,
                })
            })
            .collect()
    }

    pub(crate) async fn add_token(&self, t: &TokenConfig, created_ms: i64) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO tokens (name, hash, tenant, role, trusted, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &t.name,
                    &t.hash,
                    &t.tenant,
                    &t.role.as_str(),
                    &t.trusted,
                    &created_ms,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    pub(crate) async fn remove_token(&self, name: &str) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM tokens WHERE name = $1", &[&name])
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    pub(crate) async fn put_alert_record(&self, kind: AlertKind, r: &AlertRecord) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO alert_state (kind, key, until_ms, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, key) DO UPDATE
                 SET until_ms = EXCLUDED.until_ms, body = EXCLUDED.body",
                &[&kind.as_str(), &r.key, &r.until_ms, &r.body],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    pub(crate) async fn forget_alert_records(
        &self,
        kind: AlertKind,
        before_ms: i64,
    ) -> Result<usize> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM alert_state WHERE kind = $1 AND until_ms < $2",
                &[&kind.as_str(), &before_ms],
            )
            .await
            .map_err(pg)?;
        Ok(n as usize)
    }
}
