//! Alert state across processes. With several collectors, rules are evaluated on the
//! one that leads alerting; query servers show that state (`/api/v1/rules`,
//! `/api/v1/alerts`, the UI's alerts page) by asking every live collector's
//! `/internal/v1/alerting` and taking the leader's answer — the rules as written and
//! every alert's state, in the JSON form below (rule expressions travel as text and are
//! parsed again, so what the query server serves is what the leader evaluates).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use triad_model::metric::Labels;

use super::Alerting;
use super::evidence::EvidenceSource;
use super::rules::{AlertSpec, Rule, RuleGroup};
use super::state::{Alert, AlertState, GroupState};

/// The collector's alert engine once it started (the HTTP receiver starts before it).
pub type AlertingSlot = Arc<OnceLock<Arc<Alerting>>>;

/// How long a query server reuses the leader's answer.
const REUSE: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Whether the answering process leads alerting (only its state is current).
    leading: bool,
    groups: Vec<GroupWire>,
}

#[derive(Serialize, Deserialize)]
struct GroupWire {
    tenant: String,
    name: String,
    file: String,
    interval_ms: i64,
    limit: usize,
    last_evaluation_ms: i64,
    evaluation_secs: f64,
    rules: Vec<RuleWire>,
}

#[derive(Serialize, Deserialize)]
struct RuleWire {
    name: String,
    expr: String,
    labels: Vec<(String, String)>,
    alert: Option<SpecWire>,
    alerts: Vec<AlertWire>,
    last_error: Option<String>,
    last_evaluation_ms: i64,
    evaluation_secs: f64,
}

#[derive(Serialize, Deserialize)]
struct SpecWire {
    for_ms: i64,
    keep_firing_for_ms: i64,
    annotations: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct AlertWire {
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    state: String,
    /// As Rust prints it (`NaN` and infinities included: JSON numbers cannot hold them).
    value: String,
    active_at_ms: i64,
    fired_at_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    keep_firing_since_ms: Option<i64>,
}

fn encode(groups: &[GroupState], leading: bool) -> Snapshot {
    Snapshot {
        leading,
        groups: groups
            .iter()
            .map(|g| GroupWire {
                tenant: g.group.tenant.clone(),
                name: g.group.name.clone(),
                file: g.group.file.clone(),
                interval_ms: g.group.interval_ms,
                limit: g.group.limit,
                last_evaluation_ms: g.last_evaluation_ms,
                evaluation_secs: g.evaluation_secs,
                rules: g
                    .rules
                    .iter()
                    .map(|r| RuleWire {
                        name: r.rule.name.clone(),
                        expr: r.rule.expr_text.clone(),
                        labels: r.rule.labels.clone(),
                        alert: r.rule.alert.as_ref().map(|a| SpecWire {
                            for_ms: a.for_ms,
                            keep_firing_for_ms: a.keep_firing_for_ms,
                            annotations: a.annotations.clone(),
                        }),
                        alerts: r
                            .alerts
                            .values()
                            .map(|a| AlertWire {
                                labels: a.labels.to_vec(),
                                annotations: a.annotations.clone(),
                                state: a.state.as_str().to_string(),
                                value: a.value.to_string(),
                                active_at_ms: a.active_at_ms,
                                fired_at_ms: a.fired_at_ms,
                                resolved_at_ms: a.resolved_at_ms,
                                keep_firing_since_ms: a.keep_firing_since_ms,
                            })
                            .collect(),
                        last_error: r.last_error.clone(),
                        last_evaluation_ms: r.last_evaluation_ms,
                        evaluation_secs: r.evaluation_secs,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn decode(groups: Vec<GroupWire>) -> Result<Vec<GroupState>, String> {
    groups
        .into_iter()
        .map(|g| {
            let rules = g
                .rules
                .iter()
                .map(|r| {
                    Ok(Rule {
                        name: r.name.clone(),
                        expr_text: r.expr.clone(),
                        expr: triad_promql::Engine::parse(&r.expr)
                            .map_err(|e| format!("rule {}: {e}", r.name))?,
                        labels: r.labels.clone(),
                        alert: r.alert.as_ref().map(|a| AlertSpec {
                            for_ms: a.for_ms,
                            keep_firing_for_ms: a.keep_firing_for_ms,
                            annotations: a.annotations.clone(),
                        }),
                    })
                })
                .collect::<Result<Vec<Rule>, String>>()?;
            let mut state = GroupState::new(RuleGroup {
                name: g.name,
                file: g.file,
                interval_ms: g.interval_ms,
                limit: g.limit,
                rules,
                tenant: g.tenant,
            });
            state.last_evaluation_ms = g.last_evaluation_ms;
            state.evaluation_secs = g.evaluation_secs;
            for (rs, wire) in state.rules.iter_mut().zip(g.rules) {
                rs.last_error = wire.last_error;
                rs.last_evaluation_ms = wire.last_evaluation_ms;
                rs.evaluation_secs = wire.evaluation_secs;
                for a in wire.alerts {
                    let labels = Labels::new(a.labels);
                    let state = match a.state.as_str() {
                        "pending" => AlertState::Pending,
                        "firing" => AlertState::Firing,
                        "inactive" => AlertState::Inactive,
                        other => return Err(format!("unknown alert state {other:?}")),
                    };
                    rs.alerts.insert(
                        labels.clone(),
                        Alert {
                            labels,
                            annotations: a.annotations,
                            state,
                            value: a.value.parse().unwrap_or(f64::NAN),
                            active_at_ms: a.active_at_ms,
                            fired_at_ms: a.fired_at_ms,
                            resolved_at_ms: a.resolved_at_ms,
                            keep_firing_since_ms: a.keep_firing_since_ms,
                        },
                    );
                }
            }
            Ok(state)
        })
        .collect()
}

/// The collector's side: `GET /internal/v1/alerting` answers this process's rules and
/// alert states, and whether it leads (503 until the alert engine started). The `read`
/// role; a caller sees its tenant's groups only.
pub fn internal_router(slot: AlertingSlot) -> triad_receiver::auth::Routes {
    use triad_receiver::auth::{Access, Routes};
    Routes::new()
        .route(
            "/internal/v1/alerting",
            Access::Role(triad_model::auth::Role::Read),
            axum::routing::get(snapshot),
        )
        .with_state(slot)
}

async fn snapshot(
    State(slot): State<AlertingSlot>,
    crate::Tenant(tenant): crate::Tenant,
) -> Response {
    match slot.get() {
        None => (StatusCode::SERVICE_UNAVAILABLE, "alerting is starting").into_response(),
        Some(a) => {
            let leading = a.leading.load(Ordering::Acquire);
            let groups: Vec<GroupState> = a
                .groups()
                .into_iter()
                .filter(|g| g.group.tenant == tenant)
                .collect();
            Json(encode(&groups, leading)).into_response()
        }
    }
}

/// A query server's view of the alert engine that runs on the leading collector.
pub struct RemoteAlerting {
    /// The live collectors' base URLs (`http://collector-0:4318`).
    collectors: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    client: reqwest::Client,
    /// The last answer per tenant.
    last: tokio::sync::Mutex<HashMap<String, (Instant, Vec<GroupState>)>>,
    /// Evidence for an alert, gathered from this query server's stores.
    pub evidence: Arc<EvidenceSource>,
}

impl RemoteAlerting {
    /// Asks the collectors `collectors` lists, each within `timeout`.
    pub fn new(
        collectors: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
        timeout: Duration,
        evidence: Arc<EvidenceSource>,
    ) -> Result<RemoteAlerting, String> {
        let client = triad_receiver::client::http_client(timeout)
            .map_err(|e| format!("alerting client: {e}"))?;
        Ok(RemoteAlerting {
            collectors,
            client,
            last: tokio::sync::Mutex::new(HashMap::new()),
            evidence,
        })
    }

    /// The leader's groups of `tenant` (reused for a second); an error when no collector
    /// leads or the leader did not answer.
    pub async fn groups(&self, tenant: &str) -> Result<Vec<GroupState>, String> {
        let mut last = self.last.lock().await;
        last.retain(|_, (at, _)| at.elapsed() < REUSE);
        if let Some((_, groups)) = last.get(tenant) {
            return Ok(groups.clone());
        }
        let urls = (self.collectors)();
        let answers =
            futures_util::future::join_all(urls.iter().map(|u| self.ask(u, tenant))).await;
        let mut failed = Vec::new();
        for (url, answer) in urls.iter().zip(answers) {
            match answer {
                Ok(s) if s.leading => {
                    let groups = decode(s.groups)?;
                    last.insert(tenant.to_string(), (Instant::now(), groups.clone()));
                    return Ok(groups);
                }
                Ok(_) => {}
                Err(e) => failed.push(format!("{url}: {e}")),
            }
        }
        Err(if failed.is_empty() {
            format!(
                "none of the {} live collectors evaluates rules right now (the alerting leadership is being taken over)",
                urls.len()
            )
        } else {
            format!(
                "no collector that answered evaluates rules; not answering: {}",
                failed.join("; ")
            )
        })
    }

    async fn ask(&self, base: &str, tenant: &str) -> Result<Snapshot, String> {
        let url = format!("{}/internal/v1/alerting", base.trim_end_matches('/'));
        let r = self
            .client
            .get(&url)
            .header(triad_receiver::auth::ORG_ID_HEADER, tenant)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("answered {}", r.status()));
        }
        let body = r.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_travel_whole() {
        let text = "groups:\n  - name: g\n    interval: 30s\n    rules:\n      - alert: High\n        expr: sum(rate(x[5m])) > 1\n        for: 1m\n        labels: {severity: page}\n        annotations: {summary: \"{{ $value }}\"}\n      - record: job:x:rate5m\n        expr: rate(x[5m])\n";
        let groups = super::super::rules::parse("r.yml", text, 60_000).unwrap();
        let mut state = GroupState::new(groups[0].clone());
        state.last_evaluation_ms = 1_000;
        state.evaluation_secs = 0.25;
        let labels = Labels::new(vec![("alertname".into(), "High".into())]);
        state.rules[0].alerts.insert(
            labels.clone(),
            Alert {
                labels,
                annotations: vec![("summary".into(), "2".into())],
                state: AlertState::Firing,
                value: f64::NAN,
                active_at_ms: 10,
                fired_at_ms: Some(70),
                resolved_at_ms: None,
                keep_firing_since_ms: None,
            },
        );
        state.rules[1].last_error = Some("boom".into());
        let json = serde_json::to_string(&encode(std::slice::from_ref(&state), true)).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert!(back.leading);
        let got = decode(back.groups).unwrap();
        assert_eq!(got.len(), 1);
        let g = &got[0];
        assert_eq!((g.group.name.as_str(), g.group.interval_ms), ("g", 30_000));
        assert_eq!((g.last_evaluation_ms, g.evaluation_secs), (1_000, 0.25));
        assert_eq!(g.rules[0].rule.expr_text, "sum(rate(x[5m])) > 1");
        assert_eq!(g.rules[0].rule.alert.as_ref().unwrap().for_ms, 60_000);
        let a = g.rules[0].alerts.values().next().unwrap();
        assert_eq!((a.state, a.fired_at_ms), (AlertState::Firing, Some(70)));
        assert!(a.value.is_nan());
        assert_eq!(g.rules[1].last_error.as_deref(), Some("boom"));
        assert!(g.rules[1].rule.alert.is_none());
    }
}
