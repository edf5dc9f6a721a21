//! The metric store: one [`Tsdb`] per tenant under `<data_dir>/metrics/<tenant>`, and the
//! read side the query server uses (`triad_model::store::MetricRead`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;
use triad_model::metric::{Labels, Matcher, MetricMetadata, SeriesExemplars, SeriesSamples};
use triad_model::store::{
    MetricRead, MetricWrite, StoreError, StoreResult, label_names_of, label_values_of,
};

use crate::{AppendBatch, AppendOutcome, Tsdb, TsdbMetrics, TsdbOptions};
use crate::{Error, Result};

/// Every tenant's TSDB.
pub struct MetricStore {
    dir: PathBuf,
    opts: TsdbOptions,
    metrics: TsdbMetrics,
    tenants: RwLock<HashMap<String, Arc<Tsdb>>>,
    /// The most series a tenant's head may hold (0: no limit).
    max_series: RwLock<Option<SeriesLimit>>,
    /// Tenants' own retention, seconds (the others keep `opts.retention_ms`).
    retention: RwLock<BTreeMap<String, u64>>,
}

/// The most series a tenant's head may hold (`limits.max_series`; 0: no limit).
pub type SeriesLimit = Arc<dyn Fn(&str) -> usize + Send + Sync>;

fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl MetricStore {
    /// Opens every tenant found under `dir` (replaying their WALs).
    pub fn open(dir: &Path, opts: TsdbOptions, registry: &mut Registry) -> Result<MetricStore> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let metrics = TsdbMetrics::register(registry);
        let mut tenants = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io("listing metric tenants"))? {
            let entry = entry.map_err(Error::io("listing metric tenants"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_tenant(&name) && entry.path().is_dir() {
                let db = Tsdb::open(&entry.path(), opts.clone(), metrics.clone())?;
                tenants.insert(name, Arc::new(db));
            }
        }
        Ok(MetricStore {
            dir: dir.to_path_buf(),
            opts,
            metrics,
            tenants: RwLock::new(tenants),
            max_series: RwLock::new(None),
            retention: RwLock::new(BTreeMap::new()),
        })
    }

    /// The TSDB of a tenant, if it has data.
    pub fn get(&self, tenant: &str) -> Option<Arc<Tsdb>> {
        self.tenants.read().ok()?.get(tenant).cloned()
    }

    /// The TSDB of a tenant, created on first use.
    pub fn tenant(&self, tenant: &str) -> Result<Arc<Tsdb>> {
        if let Some(db) = self.get(tenant) {
            return Ok(db);
        }
        if !valid_tenant(tenant) {
            return Err(Error::Corrupt(format!("invalid tenant name {tenant:?}")));
        }
        let mut map = self.tenants.write().map_err(|_| Error::Closed("metrics"))?;
        if let Some(db) = map.get(tenant) {
            return Ok(db.clone());
        }
        let db = Arc::new(Tsdb::open(
            &self.dir.join(tenant),
            self.opts.clone(),
            self.metrics.clone(),
        )?);
        map.insert(tenant.to_string(), db.clone());
        Ok(db)
    }

    /// Commits a batch for a tenant (see [`Tsdb::append`]).
    pub fn append(
        &self,
        tenant: &str,
        batch: &AppendBatch,
        durable: bool,
    ) -> Result<AppendOutcome> {
        let max = self
            .max_series
            .read()
            .ok()
            .and_then(|l| l.as_ref().map(|f| f(tenant)))
            .unwrap_or(0);
        self.tenant(tenant)?.append_limited(batch, durable, max)
    }

    /// Sets the most series each tenant's head may hold.
    pub fn set_series_limit(&self, limit: SeriesLimit) {
        if let Ok(mut l) = self.max_series.write() {
            *l = Some(limit);
        }
    }

    /// Every tenant's TSDB, with the tenant's name.
    pub fn tenants(&self) -> Vec<(String, Arc<Tsdb>)> {
        self.tenants
            .read()
            .map(|m| m.iter().map(|(t, db)| (t.clone(), db.clone())).collect())
            .unwrap_or_default()
    }

    /// Every tenant's TSDB.
    pub fn all(&self) -> Vec<Arc<Tsdb>> {
        self.tenants
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Gives tenants their own retention (`limits.tenants.<name>.metrics_retention_secs`,
    /// seconds, 0: for ever); the others keep [`TsdbOptions::retention_ms`].
    pub fn set_retention(&self, tenants: BTreeMap<String, u64>) {
        if let Ok(mut r) = self.retention.write() {
            *r = tenants;
        }
    }

    /// Runs maintenance (cut, compaction, retention) on every tenant, each with its own
    /// retention.
    pub fn maintain(&self, now_ms: i64) -> Result<()> {
        for (tenant, db) in self.tenants() {
            let own = self
                .retention
                .read()
                .ok()
                .and_then(|r| r.get(&tenant).copied());
            match own {
                Some(secs) => db.maintain_with(now_ms, (secs as i64).saturating_mul(1000))?,
                None => db.maintain(now_ms)?,
            }
        }
        Ok(())
    }
}

fn internal(e: Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl MetricWrite for MetricStore {
    fn append_samples(&self, tenant: &str, samples: Vec<(Labels, i64, f64)>) -> StoreResult<usize> {
        let batch = AppendBatch {
            samples,
            ..AppendBatch::default()
        };
        self.append(tenant, &batch, true)
            .map(|o| o.rejected())
            .map_err(internal)
    }
}

impl MetricRead for MetricStore {
    fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesSamples>> {
        match self.get(tenant) {
            Some(db) => db.select(matchers, start_ms, end_ms).map_err(internal),
            None => Ok(Vec::new()),
        }
    }

    fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<Labels>> {
        match self.get(tenant) {
            Some(db) => Ok(db
                .series(matcher_sets, start_ms, end_ms)
                .map_err(internal)?
                .into_iter()
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(label_names_of(&self.series(
            tenant,
            matcher_sets,
            start_ms,
            end_ms,
        )?))
    }

    fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(label_values_of(
            &self.series(tenant, matcher_sets, start_ms, end_ms)?,
            name,
        ))
    }

    fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StoreResult<BTreeMap<String, Vec<MetricMetadata>>> {
        let mut out: BTreeMap<String, Vec<MetricMetadata>> = BTreeMap::new();
        if let Some(db) = self.get(tenant) {
            for (name, m) in db.metadata().map_err(internal)? {
                if metric.is_none_or(|w| w == name) {
                    out.entry(name).or_default().push(m);
                }
            }
        }
        Ok(out)
    }

    fn exemplars(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<SeriesExemplars>> {
        match self.get(tenant) {
            Some(db) => db
                .exemplars(matcher_sets, start_ms, end_ms)
                .map_err(internal),
            None => Ok(Vec::new()),
        }
    }
}
