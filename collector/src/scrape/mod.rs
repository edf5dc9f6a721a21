//! The Prometheus scraper: targets from `static_configs` and `file_sd_configs`, target
//! relabeling, one loop per target that fetches the exposition (gzip, size-limited,
//! timed out), parses it ([`crate::exposition`]), merges target labels (`exported_`
//! prefix unless `honor_labels`), applies `metric_relabel_configs` and appends to the
//! metric store with `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`.
//!
//! Staleness as Prometheus: a series present in the previous scrape and missing from
//! this one (or every series, when the scrape fails or the target goes away) gets a
//! staleness marker at this scrape's time.

mod cache;
mod discovery;
mod fetch;
pub mod relabel;
mod scrape_loop;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::DEFAULT_TENANT;
use triad_model::metric::{Exemplar, Labels, MetricMetadata, stale_nan};
use triad_model::promconfig::{PromConfig, ScrapeConfig};

use crate::exposition::{self, Format};
use crate::metrics::{FailureLabels, JobLabel, ScrapeMetrics};
use cache::*;
use discovery::*;
use fetch::*;
use relabel::Relabel;
use scrape_loop::*;
use triad_tsdb::AppendBatch;
use triad_tsdb::metric_store::MetricStore;

/// Body limit when neither the job nor `global` sets one.
pub const DEFAULT_BODY_LIMIT: u64 = 64 << 20;

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One target, ready to scrape.
#[derive(Clone)]
struct Target {
    job: String,
    url: String,
    /// Labels added to every sample (job, instance, static and relabeled labels).
    labels: Labels,
    interval: Duration,
    timeout: Duration,
    honor_labels: bool,
    honor_timestamps: bool,
    body_limit: u64,
    sample_limit: u64,
    metric_relabel: Arc<Vec<Relabel>>,
    auth: Option<String>,
    client: reqwest::Client,
}

impl Target {
    fn key(&self) -> String {
        format!("{}|{}|{}", self.job, self.url, self.labels)
    }
}

/// A compiled scrape job.
struct Job {
    cfg: ScrapeConfig,
    relabel: Vec<Relabel>,
    metric_relabel: Arc<Vec<Relabel>>,
    interval: Duration,
    timeout: Duration,
    body_limit: u64,
    sample_limit: u64,
    client: reqwest::Client,
    auth: Option<String>,
}

/// Runs every job's targets until cancelled.
pub struct Scraper {
    jobs: Vec<Job>,
    store: Arc<MetricStore>,
    metrics: ScrapeMetrics,
    external_labels: Vec<(String, String)>,
    /// With several collectors: this one scrapes only the targets it owns.
    shard: Option<Arc<crate::membership::Membership>>,
}

/// The owner of `target` among `nodes`: the highest rendezvous score (a stable hash
/// of node and target), so a node joining or leaving moves only its own share.
pub fn owner<'a>(target: &str, nodes: &'a [String]) -> Option<&'a str> {
    fn score(node: &str, target: &str) -> u64 {
        // FNV-1a, then a final mix: the same in every process and version.
        let mut h = 0xcbf2_9ce4_8422_2325_u64;
        for b in node.bytes().chain([0]).chain(target.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
    nodes
        .iter()
        .max_by_key(|n| (score(n, target), n.as_str()))
        .map(String::as_str)
}

/// Why the scraper could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScrapeSetupError(String);

impl Scraper {
    /// Compiles the configuration (validated before) and builds one HTTP client per job.
    pub fn new(
        cfg: &PromConfig,
        store: Arc<MetricStore>,
        metrics: ScrapeMetrics,
    ) -> Result<Scraper, ScrapeSetupError> {
        let mut jobs = Vec::new();
        for sc in &cfg.scrape_configs {
            let compile = |list: &[triad_model::promconfig::RelabelConfig]| {
                list.iter()
                    .map(Relabel::new)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ScrapeSetupError(format!("job {}: {e}", sc.job_name)))
            };
            let interval = sc.scrape_interval.unwrap_or(cfg.global.scrape_interval).0;
            let timeout = sc
                .scrape_timeout
                .unwrap_or(cfg.global.scrape_timeout)
                .0
                .min(interval);
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("triad/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::limited(10));
            if sc
                .tls_config
                .as_ref()
                .is_some_and(|t| t.insecure_skip_verify)
            {
                builder = builder.danger_accept_invalid_certs(true);
            }
            let client = builder
                .build()
                .map_err(|e| ScrapeSetupError(format!("job {}: HTTP client: {e}", sc.job_name)))?;
            let auth = match (&sc.authorization, &sc.basic_auth) {
                (Some(a), _) => Some(format!("{} {}", a.kind, a.credentials)),
                (None, Some(b)) => {
                    use base64::Engine as _;
                    let raw = format!("{}:{}", b.username, b.password);
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    ))
                }
                (None, None) => None,
            };
            let limit = sc.body_size_limit.unwrap_or(cfg.global.body_size_limit).0;
            jobs.push(Job {
                relabel: compile(&sc.relabel_configs)?,
                metric_relabel: Arc::new(compile(&sc.metric_relabel_configs)?),
                interval: Duration::from_millis(interval.max(1) as u64),
                timeout: Duration::from_millis(timeout.max(1) as u64),
                body_limit: if limit == 0 {
                    DEFAULT_BODY_LIMIT
                } else {
                    limit
                },
                sample_limit: sc.sample_limit.unwrap_or(cfg.global.sample_limit),
                client,
                auth,
                cfg: sc.clone(),
            });
        }
        Ok(Scraper {
            jobs,
            store,
            metrics,
            external_labels: cfg
                .global
                .external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            shard: None,
        })
    }

    /// Scrapes only the targets `membership`'s node owns among the live collectors
    /// ([`owner`]); re-assigned every few seconds, so a dead collector's targets move
    /// within its lease. Until the first list of live collectors, every target.
    pub fn sharded(mut self, membership: Arc<crate::membership::Membership>) -> Self {
        self.shard = Some(membership);
        self
    }

    /// Whether this collector scrapes the target with `key`.
    fn owns(&self, key: &str) -> bool {
        let Some(m) = &self.shard else { return true };
        let live: Vec<String> = m.live().into_iter().map(|n| n.node_id).collect();
        if live.is_empty() || !live.iter().any(|n| n == m.node_id()) {
            // Not registered yet (or the metastore away since the start): scrape, a
            // sample from two collectors is merged, never doubled.
            return true;
        }
        owner(key, &live) == Some(m.node_id())
    }

    /// Discovers targets, keeps one loop per target, re-reads file_sd files on their
    /// refresh interval; stops every loop (writing staleness markers) on cancel.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), String> {
        if self.jobs.is_empty() {
            cancel.cancelled().await;
            return Ok(());
        }
        let mut refresh = self
            .jobs
            .iter()
            .flat_map(|j| j.cfg.file_sd_configs.iter().map(|f| f.refresh_interval.0))
            .min()
            .map(|ms| Duration::from_millis(ms.max(1000) as u64))
            .unwrap_or(Duration::from_secs(3600));
        if let Some(shard) = &self.shard {
            // Re-assigned as often as the live collectors are listed: a dead
            // collector's targets move within a lease and a third or two.
            refresh = refresh.min(shard.every());
        }
        let mut running: HashMap<String, CancellationToken> = HashMap::new();
        let mut loops: JoinSet<()> = JoinSet::new();
        let mut tick = tokio::time::interval(refresh);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
                Some(done) = loops.join_next(), if !loops.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "a scrape loop panicked");
                    }
                    continue;
                }
            }
            let targets = self.discover().await;
            let mut wanted: HashMap<String, Target> = targets
                .into_iter()
                .map(|t| (t.key(), t))
                .filter(|(key, _)| self.owns(key))
                .collect();
            running.retain(|key, token| {
                let keep = wanted.remove(key).is_some();
                if !keep {
                    token.cancel();
                }
                keep
            });
            for (key, t) in wanted {
                let token = cancel.child_token();
                running.insert(key, token.clone());
                let store = self.store.clone();
                let metrics = self.metrics.clone();
                let external = self.external_labels.clone();
                loops.spawn(scrape_loop(t, store, metrics, external, token));
            }
            for job in &self.jobs {
                let n = running
                    .keys()
                    .filter(|k| k.starts_with(&format!("{}|", job.cfg.job_name)))
                    .count();
                self.metrics
                    .targets
                    .get_or_create(&JobLabel {
                        job: job.cfg.job_name.clone(),
                    })
                    .set(n as i64);
            }
        }
        for token in running.values() {
            token.cancel();
        }
        while let Some(done) = loops.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a scrape loop panicked");
            }
        }
        Ok(())
    }

    async fn discover(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for job in &self.jobs {
            let mut groups: Vec<(Vec<String>, BTreeMap<String, String>)> = job
                .cfg
                .static_configs
                .iter()
                .map(|s| (s.targets.clone(), s.labels.clone()))
                .collect();
            for fsd in &job.cfg.file_sd_configs {
                for path in expand_globs(&fsd.files) {
                    match read_file_sd(&path).await {
                        Ok(gs) => groups.extend(gs.into_iter().map(|g| {
                            let mut labels = g.labels;
                            labels.insert("__meta_filepath".into(), path.display().to_string());
                            (g.targets, labels)
                        })),
                        Err(e) => {
                            self.metrics.discovery_errors.inc();
                            tracing::warn!(file = %path.display(), error = %e, job = %job.cfg.job_name, "file_sd file skipped");
                        }
                    }
                }
            }
            for (targets, labels) in groups {
                for address in targets {
                    if let Some(t) = populate(job, &address, &labels) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_targets_and_moves_only_the_leavers_share() {
        let nodes: Vec<String> = ["c0", "c1", "c2"].map(String::from).to_vec();
        let targets: Vec<String> = (0..3000)
            .map(|i| format!("app|http://h{i}:9100/metrics|"))
            .collect();
        let before: Vec<&str> = targets.iter().map(|t| owner(t, &nodes).unwrap()).collect();
        for n in &nodes {
            let share = before.iter().filter(|o| **o == n.as_str()).count();
            assert!((800..1200).contains(&share), "{n}: {share} of 3000");
        }
        let two = &nodes[..2];
        for (t, was) in targets.iter().zip(&before) {
            let now = owner(t, two).unwrap();
            if *was != "c2" {
                assert_eq!(now, *was, "a target of a node that stays does not move");
            }
        }
        assert_eq!(owner("x", &[]), None);
        assert_eq!(owner("x", &nodes), owner("x", &nodes), "stable");
    }

    fn target(honor_labels: bool) -> Target {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Target {
            job: "app".into(),
            url: "http://127.0.0.1:1/metrics".into(),
            labels: Labels::new(vec![
                ("job".into(), "app".into()),
                ("instance".into(), "h:1".into()),
            ]),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            honor_labels,
            honor_timestamps: true,
            body_limit: DEFAULT_BODY_LIMIT,
            sample_limit: 0,
            metric_relabel: Arc::new(Vec::new()),
            auth: None,
            client: reqwest::Client::new(),
        }
    }

    #[test]
    fn series_that_vanish_go_stale_and_clashing_labels_are_exported() {
        let t = target(false);
        let mut cache = SeriesCache::default();
        let text = "a{job=\"x\"} 1\nb 2 1000\n";
        cache.generation += 1;
        let s = convert(&t, text, Format::Prometheus, 5000, &[], &mut cache).unwrap();
        assert_eq!(s.added, 2);
        assert!(cache.finish(false).is_empty());
        let a = &s.samples[0].0;
        assert_eq!(a.get("job"), Some("app"));
        assert_eq!(a.get("exported_job"), Some("x"));
        assert_eq!(
            s.samples[1].1, 1000,
            "the exposition's timestamp is honoured"
        );
        cache.generation += 1;
        let s = convert(&t, "b 3\n", Format::Prometheus, 6000, &[], &mut cache).unwrap();
        assert_eq!(s.added, 0);
        let gone = cache.finish(false);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name(), Some("a"));
        cache.generation += 1;
        assert_eq!(
            cache.finish(true).len(),
            1,
            "a failed scrape ends every series"
        );

        let honoured = convert(
            &target(true),
            text,
            Format::Prometheus,
            5000,
            &[],
            &mut SeriesCache::default(),
        )
        .unwrap();
        assert_eq!(honoured.samples[0].0.get("job"), Some("x"));
    }

    #[test]
    fn cached_scrapes_match_fresh_ones_whatever_the_order() {
        // Same series reordered, inserted, repeated and removed between scrapes: the
        // positional guesses must never hand a sample another series' labels.
        let t = target(false);
        let bodies = [
            "a 1\nb{x=\"1\"} 2\nc 3\n",
            "a 1\nb{x=\"1\"} 2\nc 3\n",
            "c 3\na 1\nb{x=\"1\"} 2\n",
            "new 0\nc 3\nb{x=\"1\"} 2\n",
            "c 3\nc 4\nb{x=\"1\"} 2\nb{x=\"2\"} 5\n",
            "a 1\nb{x=\"1\"} 2\nc 3\n",
        ];
        let mut cache = SeriesCache::default();
        for (i, body) in bodies.iter().enumerate() {
            cache.generation += 1;
            let cached = convert(&t, body, Format::Prometheus, 1000, &[], &mut cache).unwrap();
            cache.finish(false);
            let fresh = convert(
                &t,
                body,
                Format::Prometheus,
                1000,
                &[],
                &mut SeriesCache::default(),
            )
            .unwrap();
            let pairs = |s: &Scraped| -> Vec<(String, u64)> {
                s.samples
                    .iter()
                    .map(|(l, _, v)| (l.to_string(), v.to_bits()))
                    .collect()
            };
            assert_eq!(pairs(&cached), pairs(&fresh), "scrape {i}: {body:?}");
        }
    }
}
