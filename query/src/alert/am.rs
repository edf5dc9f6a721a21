//! Alertmanager's API v2 beside the silences: `/api/v2/status`, `/api/v2/alerts` (GET
//! with Alertmanager's filters; POST, so a Prometheus can send its alerts here as to its
//! Alertmanager), `/api/v2/alerts/groups` and `/api/v2/receivers`, in Alertmanager's
//! OpenAPI shapes, so `amtool` and Grafana's Alertmanager data source work unchanged.
//!
//! Alerts posted here are routed, grouped, silenced and notified like the ones Triad's
//! rules produce: every second they reach the notifier as one more "rule" whose alerts
//! are the posted ones still active. As in Alertmanager, an alert without `endsAt`
//! resolves [`RESOLVE_TIMEOUT_MS`] after it was last posted, and one whose `endsAt`
//! passed is resolved.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as Json_, json};
use triad_model::metric::{Labels, Matcher, parse_matcher};

use super::notifier::{NotifyAlert, Update, fingerprint};
use super::state::{AlertState, GroupState, RESOLVED_RETENTION_MS};
use crate::error::json_error as error;
use crate::time::{format_rfc3339, parse_time_ns};
use crate::{AppState, Tenant};

/// How long a posted alert without `endsAt` stays active after it was last posted
/// (Alertmanager's `resolve_timeout`).
pub const RESOLVE_TIMEOUT_MS: i64 = 5 * 60_000;
/// The notifier's rule key of posted alerts.
pub const RULE_KEY: &str = "\u{0}api/v2/alerts";

/// An alert as Prometheus posts it (`postableAlert`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Identifying labels (at least one).
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339; now when absent.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339; absent: active until [`RESOLVE_TIMEOUT_MS`] after the last post.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Link back to the source.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
}

#[derive(Debug, Clone)]
struct Posted {
    tenant: String,
    labels: Labels,
    annotations: Vec<(String, String)>,
    starts_at_ms: i64,
    ends_at_ms: i64,
    generator_url: String,
    updated_at_ms: i64,
}

/// The alerts posted to `/api/v2/alerts`, by tenant and fingerprint.
pub struct PostedAlerts {
    /// `alerting.tenant`: its alerts keep their labels; other tenants' get `tenant`.
    primary_tenant: String,
    items: Mutex<HashMap<(String, u64), Posted>>,
}

impl PostedAlerts {
    /// None yet; `primary_tenant` is `alerting.tenant`.
    pub fn new(primary_tenant: &str) -> PostedAlerts {
        PostedAlerts {
            primary_tenant: primary_tenant.to_string(),
            items: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Posted>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes alerts `tenant` posted at `now_ms`: every valid one is kept (an alert
    /// already there keeps its start while it is active); the invalid ones are named in
    /// the error. The alerts of a tenant of `alerting.tenants` get the label `tenant`, as
    /// its rules' alerts do.
    pub fn post(
        &self,
        tenant: &str,
        alerts: Vec<PostableAlert>,
        now_ms: i64,
    ) -> Result<usize, String> {
        let mut errors = Vec::new();
        let mut valid = Vec::new();
        for (i, mut a) in alerts.into_iter().enumerate() {
            if tenant != self.primary_tenant {
                a.labels
                    .insert(super::TENANT_LABEL.to_string(), tenant.to_string());
            }
            match validate(tenant, a, now_ms) {
                Ok(p) => valid.push(p),
                Err(e) => errors.push(format!("alert {i}: {e}")),
            }
        }
        let n = valid.len();
        let mut items = self.lock();
        for mut p in valid {
            let fp = (tenant.to_string(), fingerprint(&p.labels));
            if let Some(old) = items.get(&fp)
                && old.ends_at_ms > now_ms
                && old.starts_at_ms < p.starts_at_ms
            {
                p.starts_at_ms = old.starts_at_ms;
            }
            items.insert(fp, p);
        }
        if errors.is_empty() {
            Ok(n)
        } else {
            Err(errors.join("; "))
        }
    }

    /// The notifier's view at `now_ms`: active alerts firing, ended ones resolved (kept
    /// [`RESOLVED_RETENTION_MS`], then forgotten).
    pub fn update(&self, now_ms: i64) -> Update {
        let mut items = self.lock();
        items.retain(|_, p| now_ms - p.ends_at_ms < RESOLVED_RETENTION_MS);
        Update {
            rule_key: RULE_KEY.to_string(),
            alerts: items
                .values()
                .map(|p| NotifyAlert {
                    tenant: p.tenant.clone(),
                    labels: p.labels.clone(),
                    annotations: p.annotations.clone(),
                    starts_at_ms: p.starts_at_ms,
                    active_at_ms: p.starts_at_ms,
                    ends_at_ms: (p.ends_at_ms <= now_ms).then_some(p.ends_at_ms),
                    expr: String::new(),
                    generator_url: p.generator_url.clone(),
                })
                .collect(),
            pending: Vec::new(),
        }
    }

    fn active(&self, tenant: &str, now_ms: i64) -> Vec<Posted> {
        self.lock()
            .values()
            .filter(|p| p.tenant == tenant && p.ends_at_ms > now_ms)
            .cloned()
            .collect()
    }
}

fn validate(tenant: &str, a: PostableAlert, now_ms: i64) -> Result<Posted, String> {
    if a.labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    for (k, v) in &a.labels {
        if !triad_model::metric::is_label_name(k) {
            return Err(format!("invalid label name {k:?}"));
        }
        if v.is_empty() {
            return Err(format!("label {k:?} has an empty value"));
        }
    }
    let time = |s: &Option<String>, key: &str| -> Result<Option<i64>, String> {
        match s.as_deref() {
            None | Some("") | Some("0001-01-01T00:00:00Z") | Some("0001-01-01T00:00:00.000Z") => {
                Ok(None)
            }
            Some(t) => parse_time_ns(t)
                .map(|ns| Some(ns / 1_000_000))
                .map_err(|e| format!("{key}: {e}")),
        }
    };
    let starts = time(&a.starts_at, "startsAt")?.unwrap_or(now_ms);
    let ends = time(&a.ends_at, "endsAt")?.unwrap_or(now_ms + RESOLVE_TIMEOUT_MS);
    if ends < starts {
        return Err("endsAt is before startsAt".into());
    }
    Ok(Posted {
        tenant: tenant.to_string(),
        labels: Labels::new(a.labels.into_iter().collect()),
        annotations: a.annotations.into_iter().collect(),
        starts_at_ms: starts,
        ends_at_ms: ends,
        generator_url: a.generator_url,
        updated_at_ms: now_ms,
    })
}

fn now_ms() -> i64 {
    triad_model::now_ns() / 1_000_000
}

fn rfc3339_ms(ms: i64) -> String {
    format_rfc3339(ms * 1_000_000)
}

fn no_engine() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no alert engine here: alerts are received where rules run (triad up)",
    )
}

/// `POST /api/v2/alerts`: Prometheus' alerts (a JSON array of `postableAlert`).
pub async fn post_alerts(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Response {
    let Some(a) = &st.alerting else {
        return no_engine();
    };
    if let Err(r) = super::api::alert_tenant_only(&st, &tenant) {
        return *r;
    }
    let alerts: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            a.metrics.observe_posted(0, 1);
            return error(StatusCode::BAD_REQUEST, format!("invalid alerts: {e}"));
        }
    };
    let total = alerts.len() as u64;
    match a.posted.post(&tenant, alerts, now_ms()) {
        Ok(n) => {
            a.metrics.observe_posted(n as u64, 0);
            StatusCode::OK.into_response()
        }
        Err(e) => {
            a.metrics.observe_posted(total, 0);
            error(StatusCode::BAD_REQUEST, e)
        }
    }
}

/// One alert as `GET /api/v2/alerts` lists it.
struct Listed {
    labels: Labels,
    annotations: Vec<(String, String)>,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    updated_at_ms: i64,
    generator_url: String,
}

/// Every alert the API lists: the firing alerts of Triad's rules (as Prometheus would
/// have sent them) and the active posted ones.
async fn listed(st: &AppState, tenant: &str, now: i64) -> Result<Vec<Listed>, String> {
    let groups: Vec<GroupState> = super::api::groups_of(st, tenant).await?;
    let mut out = Vec::new();
    for g in &groups {
        for r in &g.rules {
            for a in r.alerts.values().filter(|a| a.state == AlertState::Firing) {
                out.push(Listed {
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                    // What Prometheus sends: valid for four evaluation intervals.
                    ends_at_ms: Some(r.last_evaluation_ms + 4 * g.group.interval_ms),
                    updated_at_ms: r.last_evaluation_ms,
                    generator_url: super::generator_url(&st.external_url, &r.rule.expr_text),
                });
            }
        }
    }
    if let Some(a) = &st.alerting {
        out.extend(a.posted.active(tenant, now).into_iter().map(|p| Listed {
            labels: p.labels,
            annotations: p.annotations,
            starts_at_ms: p.starts_at_ms,
            ends_at_ms: Some(p.ends_at_ms),
            updated_at_ms: p.updated_at_ms,
            generator_url: p.generator_url,
        }));
    }
    Ok(out)
}

/// Query parameters: booleans and the repeated `filter` matchers.
struct Filters {
    active: bool,
    silenced: bool,
    inhibited: bool,
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

fn filters(raw: Option<&str>) -> Result<Filters, String> {
    let mut f = Filters {
        active: true,
        silenced: true,
        inhibited: true,
        matchers: Vec::new(),
        receiver: None,
    };
    let flag = |v: &str, key: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{key}: {v:?} is not true or false")),
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "active" => f.active = flag(&v, "active")?,
            "silenced" => f.silenced = flag(&v, "silenced")?,
            "inhibited" => f.inhibited = flag(&v, "inhibited")?,
            "unprocessed" => {
                flag(&v, "unprocessed")?;
            }
            "filter" => f.matchers.push(parse_matcher(&v)?),
            "receiver" => {
                f.receiver = Some(
                    regex::Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| format!("receiver: {e}"))?,
                )
            }
            _ => {}
        }
    }
    Ok(f)
}

fn labels_object(l: &Labels) -> serde_json::Map<String, Json_> {
    l.iter()
        .map(|(k, v)| (k.to_string(), Json_::from(v)))
        .collect()
}

/// The receivers an alert goes to, by the routing tree.
fn receivers_of(st: &AppState, labels: &Labels) -> Vec<String> {
    st.alerting
        .as_ref()
        .map(|a| {
            a.route
                .matching(labels)
                .into_iter()
                .filter(|r| !r.receiver.is_empty())
                .map(|r| r.receiver.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `gettableAlert` of an alert of `tenant`, or `None` when the filters leave it out.
fn gettable(st: &AppState, tenant: &str, l: &Listed, f: &Filters, now: i64) -> Option<Json_> {
    if !f
        .matchers
        .iter()
        .all(|m| m.matches(l.labels.get(&m.name).unwrap_or("")))
    {
        return None;
    }
    let receivers = receivers_of(st, &l.labels);
    if let Some(re) = &f.receiver
        && !receivers.iter().any(|r| re.is_match(r))
    {
        return None;
    }
    let silenced_by = st
        .silences
        .as_ref()
        .map(|s| s.muting(tenant, &l.labels, now))
        .unwrap_or_default();
    let suppressed = !silenced_by.is_empty();
    if (suppressed && !f.silenced) || (!suppressed && !f.active) {
        return None;
    }
    Some(json!({
        "labels": labels_object(&l.labels),
        "annotations": l.annotations.iter().map(|(k, v)| (k.clone(), Json_::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        "startsAt": rfc3339_ms(l.starts_at_ms),
        "endsAt": l.ends_at_ms.map_or_else(|| "0001-01-01T00:00:00.000Z".to_string(), rfc3339_ms),
        "updatedAt": rfc3339_ms(l.updated_at_ms),
        "generatorURL": l.generator_url,
        "fingerprint": format!("{:016x}", fingerprint(&l.labels)),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "status": {
            "state": if suppressed { "suppressed" } else { "active" },
            "silencedBy": silenced_by,
            "inhibitedBy": [],
        },
    }))
}

/// `GET /api/v2/alerts?active=&silenced=&inhibited=&unprocessed=&filter=&receiver=`.
pub async fn get_alerts(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
) -> Response {
    let f = match filters(q.as_deref()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let now = now_ms();
    match listed(&st, &tenant, now).await {
        Ok(all) => Json(
            all.iter()
                .filter_map(|l| gettable(&st, &tenant, l, &f, now))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// `GET /api/v2/alerts/groups`: alerts grouped as the routing tree groups them.
pub async fn get_groups(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
) -> Response {
    let f = match filters(q.as_deref()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(a) = st.alerting.clone() else {
        return no_engine();
    };
    let now = now_ms();
    let all = match listed(&st, &tenant, now).await {
        Ok(all) => all,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let mut groups: BTreeMap<(String, String), (Labels, Vec<Json_>)> = BTreeMap::new();
    for l in &all {
        let Some(j) = gettable(&st, &tenant, l, &f, now) else {
            continue;
        };
        for route in a.route.matching(&l.labels) {
            let group_labels = route.group_labels(&l.labels);
            groups
                .entry((
                    route.receiver.clone(),
                    format!("{}:{group_labels}", route.key),
                ))
                .or_insert_with(|| (group_labels, Vec::new()))
                .1
                .push(j.clone());
        }
    }
    Json(
        groups
            .into_iter()
            .map(|((receiver, _), (labels, alerts))| {
                json!({"labels": labels_object(&labels), "receiver": {"name": receiver}, "alerts": alerts})
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /api/v2/receivers`.
pub async fn get_receivers(State(st): State<AppState>, Tenant(tenant): Tenant) -> Response {
    let Some(a) = &st.alerting else {
        return no_engine();
    };
    if !st.alert_tenants.contains(&tenant) {
        return Json(json!([])).into_response();
    }
    Json(
        a.receivers
            .iter()
            .map(|r| json!({"name": r}))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /api/v2/status`: Alertmanager's `alertmanagerStatus` (one instance, no
/// cluster; the configuration as Triad's `alerting` section, shown to the admins of
/// `alerting.tenant` only: it names every tenant's rule files and receivers).
pub async fn get_status(State(st): State<AppState>, Tenant(tenant): Tenant) -> Response {
    let (config, started) = match &st.alerting {
        Some(a) if a.primary_tenant == tenant => (a.config_text.clone(), a.started_at_ms),
        Some(a) => (String::new(), a.started_at_ms),
        None => (String::new(), now_ms()),
    };
    Json(json!({
        "cluster": {"name": "", "status": "disabled", "peers": []},
        "versionInfo": crate::prom_api::build_info(),
        "config": {"original": config},
        "uptime": rfc3339_ms(started),
    }))
    .into_response()
}

/// Whether a silence's matchers satisfy every `filter` matcher (Alertmanager reads a
/// silence's equality matchers as a label set and matches the filters against it).
pub fn silence_matches(silence: &super::silence::Silence, filters: &[Matcher]) -> bool {
    let set: HashMap<&str, &str> = silence
        .matchers
        .iter()
        .map(|m| (m.name.as_str(), m.value.as_str()))
        .collect();
    filters
        .iter()
        .all(|f| f.matches(set.get(f.name.as_str()).copied().unwrap_or("")))
}

/// The `filter` matchers of a query string.
pub fn filter_matchers(raw: Option<&str>) -> Result<Vec<Matcher>, String> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| parse_matcher(&v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], ends: Option<&str>) -> PostableAlert {
        PostableAlert {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: Some("2023-11-14T22:13:20Z".into()),
            ends_at: ends.map(str::to_string),
            generator_url: "http://prometheus/graph".into(),
        }
    }

    #[test]
    fn posted_alerts_fire_resolve_and_time_out() {
        let p = PostedAlerts::new("default");
        let now = 1_700_000_000_000;
        assert_eq!(
            p.post(
                "default",
                vec![
                    alert(&[("alertname", "A")], None),
                    alert(&[("alertname", "B")], Some("2023-11-14T22:13:30Z")),
                ],
                now
            ),
            Ok(2)
        );
        let u = p.update(now + 1);
        let state = |u: &Update, name: &str| {
            u.alerts
                .iter()
                .find(|a| a.labels.get("alertname") == Some(name))
                .map(|a| a.ends_at_ms)
        };
        assert_eq!(state(&u, "A"), Some(None), "firing");
        assert_eq!(state(&u, "B"), Some(None), "firing until its endsAt");
        let later = now + 20_000;
        assert_eq!(
            state(&p.update(later), "B"),
            Some(Some(now + 10_000)),
            "resolved at endsAt"
        );
        // A is posted again: it keeps its start; without posts it times out.
        p.post("default", vec![alert(&[("alertname", "A")], None)], later)
            .unwrap();
        let timeout = later + RESOLVE_TIMEOUT_MS;
        assert_eq!(state(&p.update(timeout), "A"), Some(Some(timeout)));
        assert_eq!(
            p.update(timeout + RESOLVED_RETENTION_MS).alerts.len(),
            0,
            "forgotten"
        );
    }

    #[test]
    fn invalid_alerts_are_named_and_the_valid_ones_kept() {
        let p = PostedAlerts::new("default");
        let now = 1_700_000_000_000;
        let e = p
            .post(
                "default",
                vec![
                    alert(&[], None),
                    alert(&[("alertname", "ok")], None),
                    alert(&[("bad-name", "x")], None),
                    alert(&[("alertname", "late")], Some("2020-01-01T00:00:00Z")),
                    PostableAlert {
                        starts_at: Some("yesterday".into()),
                        ..alert(&[("alertname", "t")], None)
                    },
                ],
                now,
            )
            .unwrap_err();
        for part in ["alert 0", "alert 2", "alert 3", "alert 4"] {
            assert!(e.contains(part), "{e}");
        }
        assert!(!e.contains("alert 1"), "{e}");
        assert_eq!(p.active("default", now).len(), 1);
        assert!(p.active("team-b", now).is_empty());
    }

    #[test]
    fn filters_parse_as_alertmanager_writes_them() {
        let f = filters(Some(
            "active=true&silenced=false&filter=alertname%3D%22A%22&filter=severity%3D~%22page%7Cwarn%22&receiver=hook",
        ))
        .unwrap();
        assert!(f.active && !f.silenced);
        assert_eq!(f.matchers.len(), 2);
        assert!(f.matchers[1].matches("warn"));
        assert!(f.receiver.unwrap().is_match("hook"));
        assert!(filters(Some("active=maybe")).is_err());
        assert!(filters(Some("filter=%3D%3D")).is_err());
    }
}
