//! Evaluation of one rule group: recording rules write series, alerting rules move their
//! alerts through inactive → pending → firing → resolved as Prometheus does, and both
//! kinds write `ALERTS` / `ALERTS_FOR_STATE` and staleness markers.
//!
//! The `for` state survives a restart the way Prometheus restores it: from the newest
//! `ALERTS_FOR_STATE` sample of the alert within [`OUTAGE_TOLERANCE_MS`], which holds the
//! time the alert became active.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use triad_model::metric::{Labels, Matcher, stale_nan};
use triad_model::store::MetricRead;

use super::MetricReadWrite;

use super::rules::{Rule, RuleGroup};
use super::template::{self, TemplateData};
use triad_promql::{Engine, Limits, QueryValue};

/// Resolved alerts stay listed (and are notified) this long, as in Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;
/// How old an `ALERTS_FOR_STATE` sample may be and still restore an alert's `for` state
/// (Prometheus' `--rules.alert.for-outage-tolerance`).
pub const OUTAGE_TOLERANCE_MS: i64 = 3_600_000;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition held for the rule's `for` (or is kept by `keep_firing_for`).
    Firing,
    /// The condition no longer holds.
    Inactive,
}

impl AlertState {
    /// The name Prometheus' API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Inactive => "inactive",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Labels: the series' (without `__name__`), the rule's, and `alertname`.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    /// State.
    pub state: AlertState,
    /// Value of the expression at the last evaluation where it held.
    pub value: f64,
    /// When the condition started to hold, ms.
    pub active_at_ms: i64,
    /// When it started firing, ms.
    pub fired_at_ms: Option<i64>,
    /// When it resolved, ms.
    pub resolved_at_ms: Option<i64>,
    /// Since when it is only kept firing by `keep_firing_for`, ms.
    pub keep_firing_since_ms: Option<i64>,
}

/// A rule and what its last evaluation left.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// The rule.
    pub rule: Rule,
    /// Alerts by labels (alerting rules only).
    pub alerts: BTreeMap<Labels, Alert>,
    /// Last error, if the last evaluation failed.
    pub last_error: Option<String>,
    /// When it was last evaluated, ms (0: never).
    pub last_evaluation_ms: i64,
    /// How long that took, seconds.
    pub evaluation_secs: f64,
    /// Series written at the last evaluation (for staleness markers).
    written: BTreeSet<Labels>,
}

/// A group and the state of its rules.
#[derive(Debug, Clone)]
pub struct GroupState {
    /// The group.
    pub group: RuleGroup,
    /// Its rules' states, in order.
    pub rules: Vec<RuleState>,
    /// When it was last evaluated, ms.
    pub last_evaluation_ms: i64,
    /// How long that took, seconds.
    pub evaluation_secs: f64,
    restored: bool,
}

impl GroupState {
    /// A group not evaluated yet.
    pub fn new(group: RuleGroup) -> GroupState {
        GroupState {
            rules: group
                .rules
                .iter()
                .map(|r| RuleState {
                    rule: r.clone(),
                    alerts: BTreeMap::new(),
                    last_error: None,
                    last_evaluation_ms: 0,
                    evaluation_secs: 0.0,
                    written: BTreeSet::new(),
                })
                .collect(),
            group,
            last_evaluation_ms: 0,
            evaluation_secs: 0.0,
            restored: false,
        }
    }

    /// Evaluates every rule at `t` (ms), in order (a recording rule's output is visible to
    /// the rules after it), and writes the resulting series.
    pub fn evaluate(
        &mut self,
        store: &dyn MetricReadWrite,
        tenant: &str,
        limits: &Limits,
        external_url: &str,
        t: i64,
    ) {
        let started = Instant::now();
        let restore = !self.restored;
        self.restored = true;
        for rs in &mut self.rules {
            let rule_started = Instant::now();
            let result = Engine::new(store, tenant, limits.clone()).instant(&rs.rule.expr_text, t);
            let mut out: Vec<(Labels, i64, f64)> = Vec::new();
            rs.last_error = match result {
                Err(e) => Some(e.to_string()),
                Ok(v) => {
                    let samples = match v {
                        QueryValue::Vector(s) => s.into_iter().map(|(l, _, v)| (l, v)).collect(),
                        QueryValue::Scalar(_, v) => vec![(Labels::new(Vec::new()), v)],
                        _ => Vec::new(),
                    };
                    let r = if rs.rule.alert.is_some() {
                        rs.alerting(
                            samples,
                            store,
                            tenant,
                            external_url,
                            t,
                            restore,
                            self.group.limit,
                        )
                    } else {
                        rs.recording(samples, t, self.group.limit)
                    };
                    match r {
                        Ok(series) => {
                            out = series;
                            None
                        }
                        Err(e) => Some(e),
                    }
                }
            };
            // Staleness for what was written last time and not now.
            let now: BTreeSet<Labels> = out.iter().map(|(l, _, _)| l.clone()).collect();
            for gone in rs.written.difference(&now) {
                out.push((gone.clone(), t, stale_nan()));
            }
            rs.written = now;
            if !out.is_empty()
                && let Err(e) = store.append_samples(tenant, out)
            {
                tracing::warn!(rule = %rs.rule.name, error = %e, "cannot write rule results");
            }
            rs.last_evaluation_ms = t;
            rs.evaluation_secs = rule_started.elapsed().as_secs_f64();
        }
        self.last_evaluation_ms = t;
        self.evaluation_secs = started.elapsed().as_secs_f64();
    }
}

fn too_many(limit: usize, n: usize) -> Result<(), String> {
    if limit > 0 && n > limit {
        return Err(format!("exceeded limit of {limit} with {n} series"));
    }
    Ok(())
}

impl RuleState {
    fn recording(
        &self,
        samples: Vec<(Labels, f64)>,
        t: i64,
        limit: usize,
    ) -> Result<Vec<(Labels, i64, f64)>, String> {
        too_many(limit, samples.len())?;
        let mut out = Vec::with_capacity(samples.len());
        let mut seen = BTreeSet::new();
        for (labels, v) in samples {
            let mut pairs: BTreeMap<String, String> = labels.to_vec().into_iter().collect();
            pairs.insert("__name__".into(), self.rule.name.clone());
            for (k, val) in &self.rule.labels {
                if val.is_empty() {
                    pairs.remove(k);
                } else {
                    pairs.insert(k.clone(), val.clone());
                }
            }
            let l = Labels::new(pairs.into_iter().collect());
            if !seen.insert(l.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push((l, t, v));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn alerting(
        &mut self,
        samples: Vec<(Labels, f64)>,
        store: &dyn MetricRead,
        tenant: &str,
        external_url: &str,
        t: i64,
        restore: bool,
        limit: usize,
    ) -> Result<Vec<(Labels, i64, f64)>, String> {
        let Some(spec) = self.rule.alert.clone() else {
            return Ok(Vec::new());
        };
        let mut current: BTreeMap<Labels, (f64, Vec<(String, String)>)> = BTreeMap::new();
        for (series, v) in samples {
            let base: Vec<(String, String)> = series.without(|n| n == "__name__").to_vec();
            let data = TemplateData {
                labels: &base,
                value: v,
                external_url,
            };
            let mut pairs: BTreeMap<String, String> = base.iter().cloned().collect();
            for (k, tpl) in &self.rule.labels {
                let val = template::expand(tpl, &data);
                if val.is_empty() {
                    pairs.remove(k);
                } else {
                    pairs.insert(k.clone(), val);
                }
            }
            pairs.insert("alertname".into(), self.rule.name.clone());
            let labels = Labels::new(pairs.into_iter().collect());
            let annotations = spec
                .annotations
                .iter()
                .map(|(k, tpl)| (k.clone(), template::expand(tpl, &data)))
                .collect();
            if current.insert(labels, (v, annotations)).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
        }
        too_many(limit, current.len())?;
        for (labels, (value, annotations)) in &current {
            match self.alerts.get_mut(labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = *value;
                    a.annotations = annotations.clone();
                    a.keep_firing_since_ms = None;
                }
                _ => {
                    let mut active_at = t;
                    if restore && spec.for_ms > 0 {
                        active_at = restored_active_at(store, tenant, labels, t).unwrap_or(t);
                    }
                    self.alerts.insert(
                        labels.clone(),
                        Alert {
                            labels: labels.clone(),
                            annotations: annotations.clone(),
                            state: AlertState::Pending,
                            value: *value,
                            active_at_ms: active_at,
                            fired_at_ms: None,
                            resolved_at_ms: None,
                            keep_firing_since_ms: None,
                        },
                    );
                }
            }
        }
        let mut series = Vec::new();
        self.alerts.retain(|labels, a| {
            if !current.contains_key(labels) {
                match a.state {
                    AlertState::Pending => return false,
                    AlertState::Inactive => {
                        return a
                            .resolved_at_ms
                            .is_some_and(|r| t - r < RESOLVED_RETENTION_MS);
                    }
                    AlertState::Firing => {
                        let since = *a.keep_firing_since_ms.get_or_insert(t);
                        if t - since >= spec.keep_firing_for_ms {
                            a.state = AlertState::Inactive;
                            a.resolved_at_ms = Some(t);
                            return true;
                        }
                    }
                }
            }
            if a.state == AlertState::Pending && t - a.active_at_ms >= spec.for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(t);
            }
            if a.state != AlertState::Inactive {
                let mut with_state = a.labels.to_vec();
                with_state.push(("__name__".into(), "ALERTS".into()));
                with_state.push(("alertstate".into(), a.state.as_str().into()));
                series.push((Labels::new(with_state), t, 1.0));
                let mut for_state = a.labels.to_vec();
                for_state.push(("__name__".into(), "ALERTS_FOR_STATE".into()));
                series.push((Labels::new(for_state), t, a.active_at_ms as f64 / 1000.0));
            }
            true
        });
        Ok(series)
    }
}

/// The active-since time of an alert before a restart, from `ALERTS_FOR_STATE`.
fn restored_active_at(
    store: &dyn MetricRead,
    tenant: &str,
    labels: &Labels,
    t: i64,
) -> Option<i64> {
    let mut matchers: Vec<Matcher> = labels.iter().map(|(k, v)| Matcher::equal(k, v)).collect();
    matchers.push(Matcher::equal("__name__", "ALERTS_FOR_STATE"));
    let found = store
        .select(tenant, &matchers, t - OUTAGE_TOLERANCE_MS, t)
        .ok()?;
    // The selector's matchers are equalities, so a series with extra labels could match;
    // only the exact label set counts.
    let s = found
        .into_iter()
        .find(|s| s.labels.len() == labels.len() + 1)?;
    let (_, v) = s.samples.iter().rev().find(|(_, v)| v.is_finite())?;
    let ms = (v * 1000.0) as i64;
    (ms > 0 && ms <= t).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::parse;
    use prometheus_client::registry::Registry;
    use triad_model::store::MetricWrite;
    use triad_tsdb::TsdbOptions;
    use triad_tsdb::metric_store::MetricStore;

    const T0: i64 = 1_700_000_000_000;

    fn store(dir: &std::path::Path) -> MetricStore {
        MetricStore::open(dir, TsdbOptions::default(), &mut Registry::default()).unwrap()
    }

    fn write(s: &MetricStore, name: &str, svc: &str, t: i64, v: f64) {
        let l = Labels::new(vec![
            ("__name__".into(), name.into()),
            ("service".into(), svc.into()),
        ]);
        s.append_samples("default", vec![(l, t, v)]).unwrap();
    }

    fn group() -> GroupState {
        let text = r#"
groups:
  - name: g
    rules:
      - record: svc:errors:max
        expr: max by (service) (errors)
      - alert: TooManyErrors
        expr: svc:errors:max > 5
        for: 20s
        labels:
          severity: "{{ if gt $value 10.0 }}page{{ else }}ticket{{ end }}"
        annotations:
          summary: "{{ $labels.service }} has {{ $value }} errors"
"#;
        GroupState::new(parse("r.yml", text, 10_000).unwrap().remove(0))
    }

    fn state(g: &GroupState) -> Vec<(String, AlertState)> {
        g.rules[1]
            .alerts
            .values()
            .map(|a| (a.labels.get("service").unwrap_or("").to_string(), a.state))
            .collect()
    }

    #[test]
    fn pending_firing_resolved_and_series() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let limits = Limits::default();
        let mut g = group();
        for (i, v) in [1.0, 7.0, 7.0, 7.0, 2.0].iter().enumerate() {
            let t = T0 + i as i64 * 10_000;
            write(&s, "errors", "api", t, *v);
            write(&s, "errors", "web", t, 12.0);
            g.evaluate(&s, "default", &limits, "http://triad", t);
            assert!(
                g.rules.iter().all(|r| r.last_error.is_none()),
                "{:?}",
                g.rules[1].last_error
            );
            let want: Vec<(String, AlertState)> = match i {
                0 => vec![("web".into(), AlertState::Pending)],
                1 => vec![
                    ("api".into(), AlertState::Pending),
                    ("web".into(), AlertState::Pending),
                ],
                2 => vec![
                    ("api".into(), AlertState::Pending),
                    ("web".into(), AlertState::Firing),
                ],
                3 => vec![
                    ("api".into(), AlertState::Firing),
                    ("web".into(), AlertState::Firing),
                ],
                _ => vec![
                    ("api".into(), AlertState::Inactive),
                    ("web".into(), AlertState::Firing),
                ],
            };
            assert_eq!(state(&g), want, "step {i}");
        }
        let web = g.rules[1]
            .alerts
            .values()
            .find(|a| a.labels.get("service") == Some("web"))
            .unwrap();
        assert_eq!(web.labels.get("severity"), Some("page"));
        assert_eq!(
            web.annotations,
            vec![("summary".into(), "web has 12 errors".into())]
        );
        let api = g.rules[1]
            .alerts
            .values()
            .find(|a| a.labels.get("service") == Some("api"))
            .unwrap();
        assert_eq!(api.labels.get("severity"), Some("ticket"));
        assert_eq!(api.resolved_at_ms, Some(T0 + 40_000));

        // The recording rule's series and ALERTS are in the store.
        let t = T0 + 40_000;
        let e = Engine::new(&s, "default", limits.clone());
        let QueryValue::Vector(v) = e.instant("svc:errors:max", t).unwrap() else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        let QueryValue::Vector(v) = e.instant("ALERTS", t).unwrap() else {
            panic!()
        };
        let alerts: Vec<(Option<&str>, Option<&str>)> = v
            .iter()
            .map(|(l, _, _)| (l.get("service"), l.get("alertstate")))
            .collect();
        // api resolved at t: its ALERTS series got a staleness marker.
        assert_eq!(alerts, vec![(Some("web"), Some("firing"))]);
        let QueryValue::Vector(v) = e.instant("ALERTS_FOR_STATE", t).unwrap() else {
            panic!()
        };
        assert_eq!(v[0].2, T0 as f64 / 1000.0);
    }

    #[test]
    fn for_state_is_restored_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let limits = Limits::default();
        let mut g = group();
        for i in 0..2 {
            let t = T0 + i * 10_000;
            write(&s, "errors", "web", t, 8.0);
            g.evaluate(&s, "default", &limits, "", t);
        }
        assert_eq!(state(&g), vec![("web".into(), AlertState::Pending)]);
        // A new process: the alert became active at T0, so at T0 + 30 s it fires at once.
        let mut g = group();
        let t = T0 + 30_000;
        write(&s, "errors", "web", t, 8.0);
        g.evaluate(&s, "default", &limits, "", t);
        assert_eq!(state(&g), vec![("web".into(), AlertState::Firing)]);
        assert_eq!(g.rules[1].alerts.values().next().unwrap().active_at_ms, T0);
    }

    #[test]
    fn keep_firing_for_holds_the_alert() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 1\n        keep_firing_for: 15s\n";
        let mut g = GroupState::new(parse("r.yml", text, 10_000).unwrap().remove(0));
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let limits = Limits::default();
        let states: Vec<AlertState> = [5.0, 0.0, 0.0, 0.0]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = T0 + i as i64 * 10_000;
                write(&s, "x", "a", t, *v);
                g.evaluate(&s, "default", &limits, "", t);
                g.rules[0].alerts.values().next().unwrap().state
            })
            .collect();
        // Cleared at +10 s, kept until 15 s have passed: resolved at +30 s.
        assert_eq!(
            states,
            [
                AlertState::Firing,
                AlertState::Firing,
                AlertState::Firing,
                AlertState::Inactive
            ]
        );
    }
}
