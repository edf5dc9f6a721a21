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

pub mod relabel;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::DEFAULT_TENANT;
use triad_model::metric::{Exemplar, Labels, MetricMetadata, stale_nan};
use triad_model::promconfig::{PromConfig, ScrapeConfig};

use crate::exposition::{self, Format};
use relabel::Relabel;
use triad_tsdb::AppendBatch;
use triad_tsdb::metric_store::MetricStore;

/// Body limit when neither the job nor `global` sets one.
pub const DEFAULT_BODY_LIMIT: u64 = 64 << 20;

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    job: String,
    reason: &'static str,
}

/// The scraper's own metrics (`triad_scrape_*`).
#[derive(Clone)]
pub struct ScrapeMetrics {
    targets: Family<JobLabel, Gauge>,
    scrapes: Family<JobLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    samples: Family<JobLabel, Counter>,
    discovery_errors: Counter,
}

impl ScrapeMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> ScrapeMetrics {
        let m = ScrapeMetrics {
            targets: Family::default(),
            scrapes: Family::default(),
            failures: Family::default(),
            samples: Family::default(),
            discovery_errors: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("triad_scrape");
        r.register(
            "targets",
            "Active scrape targets per job",
            m.targets.clone(),
        );
        r.register("scrapes", "Scrapes attempted per job", m.scrapes.clone());
        r.register(
            "failures",
            "Failed scrapes per job and reason (http, timeout, too_large, parse, sample_limit, store)",
            m.failures.clone(),
        );
        r.register(
            "samples",
            "Samples stored by scrapes per job",
            m.samples.clone(),
        );
        r.register(
            "discovery_errors",
            "Unreadable or invalid file_sd files",
            m.discovery_errors.clone(),
        );
        m
    }
}

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

/// A target group as file_sd files hold them.
#[derive(Deserialize)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Runs every job's targets until cancelled.
pub struct Scraper {
    jobs: Vec<Job>,
    store: Arc<MetricStore>,
    metrics: ScrapeMetrics,
    external_labels: Vec<(String, String)>,
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
        })
    }

    /// Discovers targets, keeps one loop per target, re-reads file_sd files on their
    /// refresh interval; stops every loop (writing staleness markers) on cancel.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), String> {
        if self.jobs.is_empty() {
            cancel.cancelled().await;
            return Ok(());
        }
        let refresh = self
            .jobs
            .iter()
            .flat_map(|j| j.cfg.file_sd_configs.iter().map(|f| f.refresh_interval.0))
            .min()
            .map(|ms| Duration::from_millis(ms.max(1000) as u64))
            .unwrap_or(Duration::from_secs(3600));
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
            let mut wanted: HashMap<String, Target> =
                targets.into_iter().map(|t| (t.key(), t)).collect();
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

fn expand_globs(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains('*') {
            out.push(f.clone());
            continue;
        }
        let dir = f
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let pattern = format!("^{}$", regex::escape(&name).replace("\\*", "[^/]*"));
        let Ok(re) = regex::Regex::new(&pattern) else {
            continue;
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| re.is_match(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            found.sort();
            out.extend(found);
        }
    }
    out
}

async fn read_file_sd(path: &Path) -> Result<Vec<FileGroup>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| e.to_string())?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())
    }
}

/// Prometheus' `PopulateLabels`: meta labels, relabeling, default port, instance.
fn populate(job: &Job, address: &str, group: &BTreeMap<String, String>) -> Option<Target> {
    let cfg = &job.cfg;
    let mut labels: Vec<(String, String)> =
        group.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut base = vec![
        ("__address__".to_string(), address.to_string()),
        ("job".to_string(), cfg.job_name.clone()),
        ("__scheme__".to_string(), cfg.scheme.clone()),
        ("__metrics_path__".to_string(), cfg.metrics_path.clone()),
        (
            "__scrape_interval__".to_string(),
            format_duration(job.interval),
        ),
        (
            "__scrape_timeout__".to_string(),
            format_duration(job.timeout),
        ),
    ];
    for (name, values) in &cfg.params {
        if let Some(v) = values.first() {
            base.push((format!("__param_{name}"), v.clone()));
        }
    }
    for (n, v) in base {
        if !labels.iter().any(|(k, _)| *k == n) {
            labels.push((n, v));
        }
    }
    let labels = relabel::process(labels, &job.relabel)?;
    let get = |n: &str| {
        labels
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut addr = get("__address__");
    if addr.is_empty() {
        return None;
    }
    let scheme = get("__scheme__");
    if !addr.contains(':') || addr.ends_with(']') {
        addr = format!("{addr}:{}", if scheme == "https" { 443 } else { 80 });
    }
    let mut query: Vec<(String, String)> = Vec::new();
    for (name, values) in &cfg.params {
        for v in values {
            query.push((name.clone(), v.clone()));
        }
    }
    for (k, v) in &labels {
        if let Some(name) = k.strip_prefix("__param_") {
            query.retain(|(n, _)| n != name);
            query.push((name.to_string(), v.clone()));
        }
    }
    let mut url = format!("{scheme}://{addr}{}", get("__metrics_path__"));
    if !query.is_empty() {
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&qs);
    }
    let mut final_labels: Vec<(String, String)> = labels
        .into_iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .collect();
    if !final_labels.iter().any(|(k, _)| k == "instance") {
        final_labels.push(("instance".into(), addr.clone()));
    }
    Some(Target {
        job: cfg.job_name.clone(),
        url,
        labels: Labels::new(final_labels),
        interval: job.interval,
        timeout: job.timeout,
        honor_labels: cfg.honor_labels,
        honor_timestamps: cfg.honor_timestamps,
        body_limit: job.body_limit,
        sample_limit: job.sample_limit,
        metric_relabel: job.metric_relabel.clone(),
        auth: job.auth.clone(),
        client: job.client.clone(),
    })
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Why a scrape failed.
#[derive(Debug)]
struct ScrapeFailure {
    reason: &'static str,
    message: String,
}

fn failure(reason: &'static str, message: impl Into<String>) -> ScrapeFailure {
    ScrapeFailure {
        reason,
        message: message.into(),
    }
}

/// Fetches the body: timeout, size limit, gzip.
/// Fetches a target's exposition into `buf` (its allocation reused scrape after scrape,
/// as the body is about the same size every time); the text and its format.
async fn fetch<'b>(t: &Target, buf: &'b mut Buffers) -> Result<(&'b str, Format), ScrapeFailure> {
    let mut req = t
        .client
        .get(&t.url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", t.timeout.as_secs_f64()),
        );
    if let Some(a) = &t.auth {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| failure("http", format!("request failed: {e}")))?;
    if !resp.status().is_success() {
        return Err(failure(
            "http",
            format!("server returned HTTP status {}", resp.status()),
        ));
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let format = Format::from_content_type(&header(reqwest::header::CONTENT_TYPE));
    let gzip = header(reqwest::header::CONTENT_ENCODING).eq_ignore_ascii_case("gzip");
    let raw = &mut buf.raw;
    // One refused giant body should not pin its memory for the target's lifetime.
    if raw.capacity() > 4 * raw.len().max(1 << 20) {
        *raw = Vec::new();
    }
    raw.clear();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| failure("http", format!("reading the body: {e}")))?
    {
        raw.extend_from_slice(&chunk);
        if raw.len() as u64 > t.body_limit {
            return Err(failure(
                "too_large",
                format!("body size limit exceeded ({} bytes)", t.body_limit),
            ));
        }
    }
    let bytes = if gzip {
        let out = &mut buf.unzipped;
        out.clear();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(t.body_limit + 1)
            .read_to_end(out)
            .map_err(|e| failure("parse", format!("gzip: {e}")))?;
        if out.len() as u64 > t.body_limit {
            return Err(failure(
                "too_large",
                format!(
                    "body size limit exceeded ({} bytes) after gzip",
                    t.body_limit
                ),
            ));
        }
        &buf.unzipped
    } else {
        &buf.raw
    };
    let text = std::str::from_utf8(bytes).map_err(|_| failure("parse", "body is not UTF-8"))?;
    Ok((text, format))
}

/// A scrape loop's body buffers.
#[derive(Default)]
struct Buffers {
    raw: Vec<u8>,
    unzipped: Vec<u8>,
}

/// A parsed scrape, ready to append.
struct Scraped {
    samples: Vec<(Labels, i64, f64)>,
    exemplars: Vec<(Labels, Exemplar)>,
    metadata: Vec<(String, MetricMetadata)>,
    scraped: usize,
    added: usize,
}

/// What a target's series text became, and when it was last seen.
struct CacheEntry {
    /// `None` when metric relabeling dropped it.
    labels: Option<Labels>,
    /// Scrape number of the last scrape that had it.
    seen: u64,
}

/// A target's known series, by the text that names them in the exposition
/// (`name{labels}`): a repeat skips label merging, relabeling and sorting, and the
/// entries seen last time but not now are the series to mark stale.
#[derive(Default)]
struct SeriesCache {
    /// Entries by series text, in the order first seen.
    entries: IndexMap<Box<str>, CacheEntry, foldhash::fast::RandomState>,
    /// Entry index of each sample of the previous scrape, in order. Expositions list
    /// their series in the same order every time, so the n-th sample's guess is
    /// confirmed by comparing bytes (in memory order) before anything is hashed.
    order: Vec<u32>,
    generation: u64,
}

impl SeriesCache {
    /// The entry index for the series text of the `n`-th sample of a scrape.
    fn find(&self, n: usize, key: &str) -> Option<usize> {
        if let Some(&guess) = self.order.get(n)
            && let Some((k, _)) = self.entries.get_index(guess as usize)
            && **k == *key
        {
            return Some(guess as usize);
        }
        self.entries.get_index_of(key)
    }

    /// Ends a scrape: returns the series that were in the previous scrape but not in
    /// this one (all of them when `failed`), and forgets them.
    fn finish(&mut self, failed: bool) -> Vec<Labels> {
        let current = self.generation;
        let mut gone = Vec::new();
        self.entries.retain(|_, e| {
            let keep = e.seen == current && !failed;
            if !keep && let Some(l) = &e.labels {
                gone.push(l.clone());
            }
            keep
        });
        if !gone.is_empty() || failed {
            // Indexes moved: the guesses would all miss once; drop them instead.
            self.order.clear();
        }
        gone
    }
}

fn sample_labels(
    t: &Target,
    name: &str,
    pairs: &[(String, String)],
    external: &[(String, String)],
) -> Vec<(String, String)> {
    let mut lb: Vec<(String, String)> = Vec::with_capacity(pairs.len() + t.labels.len() + 1);
    lb.push(("__name__".to_string(), name.to_string()));
    lb.extend(pairs.iter().filter(|(k, _)| k != "__name__").cloned());
    for (n, v) in t.labels.iter() {
        let existing = lb.iter().position(|(k, val)| k == n && !val.is_empty());
        match existing {
            Some(_) if t.honor_labels => {}
            Some(i) => {
                // Prometheus keeps the exposition's value as exported_<name>.
                let mut exported = format!("exported_{n}");
                while lb.iter().any(|(k, _)| *k == exported) {
                    exported = format!("exported_{exported}");
                }
                lb[i].0 = exported;
                lb.push((n.to_string(), v.to_string()));
            }
            None => lb.push((n.to_string(), v.to_string())),
        }
    }
    for (n, v) in external {
        if !lb.iter().any(|(k, _)| k == n) {
            lb.push((n.clone(), v.clone()));
        }
    }
    lb
}

fn convert(
    t: &Target,
    text: &str,
    format: Format,
    now: i64,
    external: &[(String, String)],
    cache: &mut SeriesCache,
) -> Result<Scraped, ScrapeFailure> {
    let generation = cache.generation;
    // Known series are looked up once, here: the parser skips their labels, and their
    // entries queue up in sample order for the loop below.
    let mut known: VecDeque<usize> = VecDeque::new();
    let mut n = 0;
    let exp = exposition::parse_with(text, format, |series| {
        let found = cache.find(n, series);
        n += 1;
        match found.and_then(|i| Some((i, cache.entries.get_index_mut(i)?.1))) {
            Some((i, e)) => {
                e.seen = generation;
                known.push_back(i);
                true
            }
            None => false,
        }
    })
    .map_err(|e| failure("parse", format!("line {}: {}", e.line, e.message)))?;
    let scraped = exp.samples.len();
    let mut out = Scraped {
        samples: Vec::with_capacity(scraped),
        exemplars: Vec::new(),
        metadata: exp
            .metadata
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    MetricMetadata {
                        metric_type: m
                            .metric_type
                            .map(|t| t.as_str())
                            .unwrap_or("unknown")
                            .to_string(),
                        help: m.help.clone().unwrap_or_default(),
                        unit: m.unit.clone().unwrap_or_default(),
                    },
                )
            })
            .collect(),
        scraped,
        added: 0,
    };
    let mut order = Vec::with_capacity(scraped);
    for s in exp.samples {
        // A known series comes back with an empty name (metric names never are).
        let cached = if s.name.is_empty() {
            known.pop_front()
        } else {
            None
        };
        let key = text.get(s.series.clone()).unwrap_or("");
        // Not known at parse time: new, or repeated within this scrape.
        let index = cached.or_else(|| cache.entries.get_index_of(key));
        let (index, labels) = match index.and_then(|i| Some((i, cache.entries.get_index(i)?.1))) {
            Some((i, e)) => (i, e.labels.clone()),
            None => {
                let lb = sample_labels(t, &s.name, &s.labels, external);
                let labels = relabel::process(lb, &t.metric_relabel)
                    .map(Labels::new)
                    .filter(|l| l.name().is_some());
                out.added += usize::from(labels.is_some());
                let (i, _) = cache.entries.insert_full(
                    key.into(),
                    CacheEntry {
                        labels: labels.clone(),
                        seen: generation,
                    },
                );
                (i, labels)
            }
        };
        order.push(index as u32);
        let Some(labels) = labels else { continue };
        let ts = match s.timestamp_ms {
            Some(ts) if t.honor_timestamps => ts,
            _ => now,
        };
        if let Some(e) = s.exemplar {
            out.exemplars.push((
                labels.clone(),
                Exemplar {
                    labels: Labels::new(e.labels),
                    value: e.value,
                    timestamp_ms: e.timestamp_ms.unwrap_or(ts),
                },
            ));
        }
        out.samples.push((labels, ts, s.value));
    }
    cache.order = order;
    if t.sample_limit > 0 && out.samples.len() as u64 > t.sample_limit {
        return Err(failure(
            "sample_limit",
            format!(
                "{} samples exceed sample_limit {}",
                out.samples.len(),
                t.sample_limit
            ),
        ));
    }
    Ok(out)
}

fn report_labels(t: &Target, name: &str) -> Labels {
    let mut pairs = t.labels.to_vec();
    pairs.push(("__name__".into(), name.into()));
    Labels::new(pairs)
}

const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

async fn scrape_loop(
    t: Target,
    store: Arc<MetricStore>,
    metrics: ScrapeMetrics,
    external: Vec<(String, String)>,
    cancel: CancellationToken,
) {
    let job = JobLabel { job: t.job.clone() };
    // Spread targets over the interval, as Prometheus does, by a hash of the target.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.key().hash(&mut h);
    let offset = Duration::from_millis(h.finish() % (t.interval.as_millis().max(1) as u64));
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(offset) => {}
    }
    let mut tick = tokio::time::interval(t.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut cache = SeriesCache::default();
    let mut buffers = Buffers::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = triad_model::now_ns() / 1_000_000;
        let started = Instant::now();
        metrics.scrapes.get_or_create(&job).inc();
        let fetched = match tokio::time::timeout(t.timeout, fetch(&t, &mut buffers)).await {
            Ok(r) => r,
            Err(_) => Err(failure(
                "timeout",
                format!("scrape timed out after {:?}", t.timeout),
            )),
        };
        cache.generation += 1;
        let result = fetched
            .and_then(|(text, format)| convert(&t, text, format, now, &external, &mut cache));
        let duration = started.elapsed().as_secs_f64();
        let mut batch = AppendBatch::default();
        let (up, scraped, post, added) = match result {
            Ok(s) => {
                let post = s.samples.len();
                batch.samples = s.samples;
                batch.exemplars = s.exemplars;
                batch.metadata = s.metadata;
                (1.0, s.scraped, post, s.added)
            }
            Err(f) => {
                metrics
                    .failures
                    .get_or_create(&FailureLabels {
                        job: t.job.clone(),
                        reason: f.reason,
                    })
                    .inc();
                tracing::debug!(target_url = %t.url, job = %t.job, reason = f.reason, error = %f.message, "scrape failed");
                (0.0, 0, 0, 0)
            }
        };
        for gone in cache.finish(up == 0.0) {
            batch.samples.push((gone, now, stale_nan()));
        }
        for (name, v) in
            REPORT_SERIES
                .iter()
                .zip([up, duration, scraped as f64, post as f64, added as f64])
        {
            batch.samples.push((report_labels(&t, name), now, v));
        }
        let stored = post as u64;
        if append(&store, batch).await {
            metrics.samples.get_or_create(&job).inc_by(stored);
        } else {
            metrics
                .failures
                .get_or_create(&FailureLabels {
                    job: t.job.clone(),
                    reason: "store",
                })
                .inc();
        }
    }
    // The target went away (or Triad stops): its series end here.
    let now = triad_model::now_ns() / 1_000_000;
    let mut batch = AppendBatch::default();
    cache.generation += 1;
    for l in cache.finish(true) {
        batch.samples.push((l, now, stale_nan()));
    }
    for name in REPORT_SERIES {
        batch
            .samples
            .push((report_labels(&t, name), now, stale_nan()));
    }
    append(&store, batch).await;
}

async fn append(store: &Arc<MetricStore>, batch: AppendBatch) -> bool {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.append(DEFAULT_TENANT, &batch, false)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storing scraped samples failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "storing scraped samples panicked");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
