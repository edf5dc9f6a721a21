//! The alert engine: Prometheus rule groups (from files and from `golden_signals`)
//! evaluated on their interval, `ALERTS` series, and notifications to webhooks with
//! evidence.
//!
//! ```text
//! rule files ─┐                      ┌─ recording series, ALERTS, ALERTS_FOR_STATE → TSDB
//!             ├─ group tasks (eval) ─┤
//! golden ─────┘                      └─ Update ─→ notifier ─→ route, group, silence,
//!                                                 nlog dedup, evidence ─→ webhook POST
//! ```
//!
//! | file | what |
//! |---|---|
//! | `rules.rs` | rule-file parsing and checks (`file:line: reason`) |
//! | `template.rs` | `{{ $labels.x }}` / `{{ $value }}` templates |
//! | `golden.rs` | golden-signal config → rule groups |
//! | `state.rs` | one group's evaluation and alert states |
//! | `route.rs` | routing tree and grouping |
//! | `notifier.rs` | grouping, dedup, delivery with retries, payload |
//! | `nlog.rs` | persistent notification log |
//! | `silence.rs` | silences (Alertmanager v2 shapes) |
//! | `evidence.rs` | example traces and log lines per alert |
//! | `remote.rs` | the leader's state for query servers apart from it |
//! | `api.rs` | `/api/v1/rules`, `/api/v1/alerts`, `/api/v2/silences` |
//! | `am.rs` | Alertmanager's `/api/v2/alerts` (GET, POST), groups, receivers, status |

pub mod am;
pub mod api;
pub mod evidence;
pub mod golden;
mod metrics;
pub mod nlog;
pub mod notifier;
pub mod remote;
pub mod route;
pub mod rules;
pub mod silence;
pub mod state;
pub mod template;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::alerting::AlertingConfig;
use triad_model::store::{LogRead, MetricRead, MetricWrite, TraceRead};

pub use metrics::AlertMetrics;
use notifier::{NotifyAlert, Update};
use rules::RuleGroup;
use state::{AlertState, GroupState};

use triad_promql::Limits;

/// A metric store the engine can read and write.
pub trait MetricReadWrite: MetricRead + MetricWrite {}
impl<T: MetricRead + MetricWrite + ?Sized> MetricReadWrite for T {}

/// Why the alert engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A rule file is broken.
    #[error(transparent)]
    Rule(#[from] rules::RuleError),
    /// Configuration that validation could not catch.
    #[error("alerting: {0}")]
    Config(String),
    /// State files could not be read or written.
    #[error("alerting state in {path}: {message}")]
    State {
        /// The file or directory.
        path: String,
        /// What failed.
        message: String,
    },
}

/// Where silences and the notification log are kept.
#[derive(Debug, Clone)]
pub enum StateStore {
    /// JSON files in this directory: one process evaluates rules and notifies.
    Files(PathBuf),
    /// The metastore every process shares: silences added through any process's API
    /// mute alerts, and whichever process leads alerting knows what was notified.
    Metastore(triad_metastore::Metastore),
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The label that names the tenant of an alert of `alerting.tenants`.
pub const TENANT_LABEL: &str = "tenant";

/// Reads the configured rule files (relative to `config_dir`) and compiles the golden
/// signals: every group the engine will run, `alerting.tenant`'s first, then those of
/// `alerting.tenants` by name. `triad check-config` calls this too.
pub fn load_groups(cfg: &AlertingConfig, config_dir: &Path) -> Result<Vec<RuleGroup>, AlertError> {
    let interval_ms = cfg.evaluation_interval_secs as i64 * 1000;
    let tenant_groups = |files: &[String], golden_cfg, tenant: &str| {
        let files = rules::expand_patterns(config_dir, files)?;
        let mut groups = rules::load_files(&files, interval_ms)?;
        groups.extend(golden::compile(golden_cfg, interval_ms)?);
        for g in &mut groups {
            g.tenant = tenant.to_string();
        }
        Ok::<_, AlertError>(groups)
    };
    let mut groups = tenant_groups(&cfg.rule_files, &cfg.golden_signals, &cfg.tenant)?;
    for (name, t) in &cfg.tenants {
        let mut more = tenant_groups(&t.rule_files, &t.golden_signals, name)?;
        // Their alerts say whose they are, wherever they are sent; the label also keeps
        // two tenants' alerts of the same rule apart in the notifier.
        for rule in more.iter_mut().flat_map(|g| g.rules.iter_mut()) {
            if rule.alert.is_some() {
                rule.labels.retain(|(k, _)| k != TENANT_LABEL);
                rule.labels.push((TENANT_LABEL.to_string(), name.clone()));
            }
        }
        groups.append(&mut more);
    }
    Ok(groups)
}

/// What the engine reads and writes.
pub struct Stores {
    /// Metrics (rules read them; recording rules and `ALERTS` write them).
    pub metrics: Arc<dyn MetricReadWrite>,
    /// Traces (evidence).
    pub traces: Arc<dyn TraceRead>,
    /// Logs (evidence).
    pub logs: Arc<dyn LogRead>,
}

/// The running engine, as the API sees it.
pub struct Alerting {
    groups: Vec<Arc<Mutex<GroupState>>>,
    /// Silences (API and notifier).
    pub silences: Arc<silence::Silences>,
    /// This Triad's URL, as links are written.
    pub external_url: String,
    /// Evidence lookup (the UI asks for an alert's evidence on demand).
    pub evidence: Arc<evidence::EvidenceSource>,
    /// Set while this process evaluates rules and notifies.
    pub leading: Arc<std::sync::atomic::AtomicBool>,
    /// Alerts posted to Alertmanager's API (by a Prometheus).
    pub posted: Arc<am::PostedAlerts>,
    /// The routing tree (receivers of an alert, groups).
    pub route: route::Route,
    /// Receiver names, in configuration order.
    pub receivers: Vec<String>,
    /// The `alerting` section as JSON, secrets masked (Alertmanager's status shows it).
    pub config_text: String,
    /// `alerting.tenant`.
    pub primary_tenant: String,
    /// When the engine started, ms.
    pub started_at_ms: i64,
    /// Telemetry.
    pub metrics: AlertMetrics,
}

/// The `alerting` section as JSON (valid YAML) with webhook credentials masked, as
/// Alertmanager shows `<secret>`.
fn masked_config(cfg: &AlertingConfig) -> String {
    let mut v = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(receivers) = v.get_mut("receivers").and_then(|r| r.as_array_mut()) {
        for r in receivers {
            if let Some(t) = r.get_mut("bearer_token")
                && !t.is_null()
            {
                *t = serde_json::Value::from("<secret>");
            }
            if let Some(h) = r.get_mut("headers").and_then(|h| h.as_object_mut()) {
                for value in h.values_mut() {
                    *value = serde_json::Value::from("<secret>");
                }
            }
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

impl Alerting {
    /// Snapshots of every group's state, in configuration order.
    pub fn groups(&self) -> Vec<GroupState> {
        self.groups
            .iter()
            .map(|g| g.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Starts one evaluation task per group and the notifier. Silences and the
    /// notification log are kept in `state`; rules are evaluated and notifications sent
    /// only while `leading` is set (see [`notifier`] for a takeover).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        groups: Vec<RuleGroup>,
        cfg: &AlertingConfig,
        external_url: String,
        stores: Stores,
        limits: Limits,
        state: StateStore,
        metrics: AlertMetrics,
        leading: Arc<std::sync::atomic::AtomicBool>,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<Result<(), String>>,
    ) -> Result<Arc<Alerting>, AlertError> {
        let where_ = match &state {
            StateStore::Files(dir) => dir.display().to_string(),
            StateStore::Metastore(_) => "the metastore".to_string(),
        };
        let state_err = |e: &dyn std::fmt::Display| AlertError::State {
            path: where_.clone(),
            message: e.to_string(),
        };
        if let StateStore::Files(dir) = &state {
            std::fs::create_dir_all(dir).map_err(|e| state_err(&e))?;
        }
        let silences = Arc::new(
            silence::Silences::open(state.clone(), &cfg.tenant)
                .await
                .map_err(|e| state_err(&e))?,
        );
        let nlog = nlog::NotificationLog::open(state)
            .await
            .map_err(|e| state_err(&e))?;
        let route = route::Route::new(&cfg.route).map_err(AlertError::Config)?;
        let posted = Arc::new(am::PostedAlerts::new(&cfg.tenant));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AlertError::Config(format!("webhook client: {e}")))?;
        let evidence = Arc::new(evidence::EvidenceSource {
            metrics: stores.metrics.clone(),
            traces: stores.traces.clone(),
            logs: stores.logs.clone(),
            external_url: external_url.clone(),
            cfg: cfg.evidence.clone(),
        });
        let (tx, rx) = mpsc::channel(notifier::UPDATE_QUEUE);
        let parts = notifier::NotifierParts {
            route: route.clone(),
            receivers: cfg
                .receivers
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect::<HashMap<_, _>>(),
            nlog,
            silences: silences.clone(),
            evidence: evidence.clone(),
            external_url: external_url.clone(),
            client,
            metrics: metrics.clone(),
            leading: leading.clone(),
            // Every alerting rule, and the alerts posted to the API.
            rules: 1 + groups
                .iter()
                .map(|g| g.rules.iter().filter(|r| r.alert.is_some()).count())
                .sum::<usize>(),
            primary_tenant: cfg.tenant.clone(),
        };
        let ncancel = cancel.child_token();
        tasks.spawn(async move {
            notifier::run(parts, rx, ncancel).await;
            Ok(())
        });
        {
            // Posted alerts reach the notifier every second, as a rule's would.
            let (posted, tx, cancel) = (posted.clone(), tx.clone(), cancel.child_token());
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tick.tick() => {}
                    }
                    let u = posted.update(triad_model::now_ns() / 1_000_000);
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        r = tx.send(u) => if r.is_err() { return Ok(()) },
                    }
                }
            });
        }
        let shared: Vec<Arc<Mutex<GroupState>>> = groups
            .into_iter()
            .map(|g| Arc::new(Mutex::new(GroupState::new(g))))
            .collect();
        for g in &shared {
            let g = g.clone();
            let tx = tx.clone();
            let store = stores.metrics.clone();
            let limits = limits.clone();
            let url = external_url.clone();
            let cancel = cancel.child_token();
            let metrics = metrics.clone();
            let leading = leading.clone();
            tasks.spawn(async move {
                run_group(g, store, limits, url, tx, metrics, leading, cancel).await;
                Ok(())
            });
        }
        Ok(Arc::new(Alerting {
            groups: shared,
            silences,
            external_url,
            evidence,
            leading,
            posted,
            route,
            receivers: cfg.receivers.iter().map(|r| r.name.clone()).collect(),
            config_text: masked_config(cfg),
            primary_tenant: cfg.tenant.clone(),
            started_at_ms: triad_model::now_ns() / 1_000_000,
            metrics,
        }))
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_group(
    group: Arc<Mutex<GroupState>>,
    store: Arc<dyn MetricReadWrite>,
    limits: Limits,
    external_url: String,
    tx: mpsc::Sender<Update>,
    metrics: AlertMetrics,
    leading: Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
) {
    let mut led = false;
    let (interval_ms, name, tenant) = {
        let g = group.lock().unwrap_or_else(|p| p.into_inner());
        (
            g.group.interval_ms,
            g.group.name.clone(),
            g.group.tenant.clone(),
        )
    };
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        // One evaluator at a time: while another process leads, this one waits; when
        // it takes over, it starts afresh and restores `for` from ALERTS_FOR_STATE.
        let leads = leading.load(std::sync::atomic::Ordering::Acquire);
        if leads && !led {
            let mut g = group.lock().unwrap_or_else(|p| p.into_inner());
            *g = GroupState::new(g.group.clone());
        }
        led = leads;
        if !leads {
            continue;
        }
        let g = group.clone();
        let store = store.clone();
        let limits = limits.clone();
        let url = external_url.clone();
        let group_tenant = tenant.clone();
        let started = std::time::Instant::now();
        let updates = tokio::task::spawn_blocking(move || {
            let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
            let t = triad_model::now_ns() / 1_000_000;
            g.evaluate(store.as_ref(), &group_tenant, &limits, &url, t);
            let failures = g.rules.iter().filter(|r| r.last_error.is_some()).count() as u64;
            (updates_of(&g, &url), failures)
        })
        .await;
        let (updates, failures) = match updates {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(group = %name, error = %e, "rule evaluation task failed");
                continue;
            }
        };
        metrics.observe_group(&tenant, &name, failures, started.elapsed());
        for u in updates {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = tx.send(u) => if r.is_err() { return },
            }
        }
    }
}

/// What the notifier needs from a group's evaluation: per alerting rule, its firing
/// alerts, the resolved ones that had fired, and the pending ones.
fn updates_of(g: &GroupState, external_url: &str) -> Vec<Update> {
    g.rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rule.alert.is_some())
        .map(|(i, r)| Update {
            rule_key: format!(
                "{}\u{0}{}\u{0}{}\u{0}{i}",
                g.group.tenant, g.group.file, g.group.name
            ),
            pending: r
                .alerts
                .values()
                .filter(|a| a.state == AlertState::Pending)
                .map(|a| notifier::fingerprint(&a.labels))
                .collect(),
            alerts: r
                .alerts
                .values()
                .filter(|a| {
                    a.state == AlertState::Firing
                        || (a.state == AlertState::Inactive && a.fired_at_ms.is_some())
                })
                .map(|a| NotifyAlert {
                    tenant: g.group.tenant.clone(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                    active_at_ms: a.active_at_ms,
                    ends_at_ms: a.resolved_at_ms,
                    expr: r.rule.expr_text.clone(),
                    generator_url: generator_url(external_url, &r.rule.expr_text),
                })
                .collect(),
        })
        .collect()
}

/// Prometheus' link to an expression in its graph page.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{external_url}/graph?g0.expr={}&g0.tab=1",
        form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenant_gets_its_groups_and_others_alerts_say_whose() {
        let dir = tempfile::tempdir().unwrap();
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: High\n        expr: up == 0\n        labels: {tenant: spoofed, severity: page}\n      - record: job:up\n        expr: sum(up)\n";
        std::fs::write(dir.path().join("ops.yml"), rules).unwrap();
        std::fs::write(dir.path().join("b.yml"), rules).unwrap();
        let cfg: AlertingConfig = serde_json::from_value(serde_json::json!({
            "tenant": "ops",
            "rule_files": ["ops.yml"],
            "tenants": {"team-b": {
                "rule_files": ["b.yml"],
                "golden_signals": {"default": {"errors": {"ratio_threshold": 0.1}}},
            }},
        }))
        .unwrap();
        let groups = load_groups(&cfg, dir.path()).unwrap();
        let of = |t: &str| groups.iter().filter(|g| g.tenant == t).collect::<Vec<_>>();
        assert_eq!(of("ops").len(), 1);
        assert!(of("team-b").len() >= 2, "its file and its golden signals");
        let label = |g: &RuleGroup, i: usize, k: &str| {
            g.rules[i]
                .labels
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        // The primary tenant's rules are as written.
        assert_eq!(label(of("ops")[0], 0, "tenant"), ["spoofed"]);
        // Another tenant's alerts carry its name, whatever the file says; recording
        // rules (whose series stay in the tenant's own store) do not.
        for g in of("team-b") {
            for (i, r) in g.rules.iter().enumerate() {
                let want: &[&str] = if r.alert.is_some() { &["team-b"] } else { &[] };
                assert_eq!(label(g, i, "tenant"), want, "{}", r.name);
            }
        }
    }
}
