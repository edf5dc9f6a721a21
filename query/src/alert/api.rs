//! HTTP handlers: Prometheus' `/api/v1/rules` and `/api/v1/alerts`, and Alertmanager's v2
//! silence API (`/api/v2/silences`, `/api/v2/silence/{id}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json_, json};

use super::silence::{Silence, SilenceError, SilenceRequest};
use super::state::{Alert, AlertState, GroupState, RuleState};
use crate::prom_api::{ErrorType, Params, PromError, success};
use crate::time::format_rfc3339;
use crate::{AppState, Tenant};
use triad_promql::format::labels_json;

fn rfc3339_ms(ms: i64) -> String {
    format_rfc3339(ms * 1_000_000)
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, the format of alert values in Prometheus'
/// API (`1e+00`, `2.5e-01`).
pub fn go_exp(v: f64) -> String {
    if !v.is_finite() {
        return triad_promql::format_value(v);
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn alert_json(a: &Alert) -> Json_ {
    json!({
        "labels": labels_json(&a.labels),
        "annotations": a.annotations.iter().map(|(k, v)| (k.clone(), Json_::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        "state": a.state.as_str(),
        "activeAt": rfc3339_ms(a.active_at_ms),
        "value": go_exp(a.value),
    })
}

fn active(r: &RuleState) -> impl Iterator<Item = &Alert> {
    r.alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
}

fn rule_json(r: &RuleState) -> Json_ {
    let health = match (&r.last_error, r.last_evaluation_ms) {
        (Some(_), _) => "err",
        (None, 0) => "unknown",
        (None, _) => "ok",
    };
    let last_eval = if r.last_evaluation_ms == 0 {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        rfc3339_ms(r.last_evaluation_ms)
    };
    let labels: serde_json::Map<String, Json_> = r
        .rule
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Json_::from(v.as_str())))
        .collect();
    match &r.rule.alert {
        Some(spec) => {
            let state = if active(r).any(|a| a.state == AlertState::Firing) {
                "firing"
            } else if active(r).next().is_some() {
                "pending"
            } else {
                "inactive"
            };
            json!({
                "state": state,
                "name": r.rule.name,
                "query": r.rule.expr_text,
                "duration": spec.for_ms as f64 / 1000.0,
                "keepFiringFor": spec.keep_firing_for_ms as f64 / 1000.0,
                "labels": labels,
                "annotations": spec.annotations.iter().map(|(k, v)| (k.clone(), Json_::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
                "alerts": active(r).map(alert_json).collect::<Vec<_>>(),
                "health": health,
                "lastError": r.last_error.clone().unwrap_or_default(),
                "evaluationTime": r.evaluation_secs,
                "lastEvaluation": last_eval,
                "type": "alerting",
            })
        }
        None => json!({
            "name": r.rule.name,
            "query": r.rule.expr_text,
            "labels": labels,
            "health": health,
            "lastError": r.last_error.clone().unwrap_or_default(),
            "evaluationTime": r.evaluation_secs,
            "lastEvaluation": last_eval,
            "type": "recording",
        }),
    }
}

/// The rule groups and alert states of `tenant` the API shows: this process's engine
/// while it leads (or when it is the only one), otherwise the one evaluating rules on
/// another process; none where neither runs.
pub(crate) async fn groups_of(st: &AppState, tenant: &str) -> Result<Vec<GroupState>, String> {
    if !st.alert_tenants.contains(tenant) {
        return Ok(Vec::new());
    }
    if let Some(a) = &st.alerting
        && (st.remote_alerting.is_none() || a.leading.load(std::sync::atomic::Ordering::Acquire))
    {
        let mut groups = a.groups();
        groups.retain(|g| g.group.tenant == tenant);
        return Ok(groups);
    }
    if let Some(r) = &st.remote_alerting {
        return r.groups(tenant).await;
    }
    Ok(Vec::new())
}

/// `GET /api/v1/rules?type=alert|record&rule_name[]=&rule_group[]=&file[]=`.
pub async fn rules(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    let want_alert = match p.get("type") {
        None => None,
        Some("alert") => Some(true),
        Some("record") => Some(false),
        Some(other) => {
            return PromError::bad_data(format!("invalid type {other:?}: use alert or record"))
                .into_response();
        }
    };
    let (names, group_names, files) =
        (p.all("rule_name[]"), p.all("rule_group[]"), p.all("file[]"));
    let groups = match groups_of(&st, &tenant).await {
        Ok(g) => g,
        Err(e) => return PromError::new(ErrorType::Unavailable, e).into_response(),
    };
    let out: Vec<Json_> = groups
        .iter()
        .filter(|g| group_names.is_empty() || group_names.contains(&g.group.name.as_str()))
        .filter(|g| files.is_empty() || files.contains(&g.group.file.as_str()))
        .filter_map(|g| {
            let rules: Vec<Json_> = g
                .rules
                .iter()
                .filter(|r| want_alert.is_none_or(|w| w == r.rule.alert.is_some()))
                .filter(|r| names.is_empty() || names.contains(&r.rule.name.as_str()))
                .map(rule_json)
                .collect();
            if rules.is_empty() && (want_alert.is_some() || !names.is_empty()) {
                return None;
            }
            Some(json!({
                "name": g.group.name,
                "file": g.group.file,
                "rules": rules,
                "interval": g.group.interval_ms as f64 / 1000.0,
                "limit": g.group.limit,
                "evaluationTime": g.evaluation_secs,
                "lastEvaluation": if g.last_evaluation_ms == 0 { "0001-01-01T00:00:00Z".to_string() } else { rfc3339_ms(g.last_evaluation_ms) },
            }))
        })
        .collect();
    success(json!({"groups": out}))
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(st): State<AppState>, Tenant(tenant): Tenant) -> Response {
    let groups = match groups_of(&st, &tenant).await {
        Ok(g) => g,
        Err(e) => return PromError::new(ErrorType::Unavailable, e).into_response(),
    };
    let list: Vec<Json_> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .flat_map(active)
        .map(alert_json)
        .collect();
    success(json!({"alerts": list}))
}

/// `GET /api/alerts`: Triad's view of every pending and firing alert — Prometheus'
/// fields plus the fingerprint, the rule and the silences muting it.
pub async fn active_alerts(State(st): State<AppState>, Tenant(tenant): Tenant) -> Response {
    let groups = match groups_of(&st, &tenant).await {
        Ok(g) => g,
        Err(e) => {
            return crate::error::json_error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    let now = now_ms();
    let mut out = Vec::new();
    for g in groups {
        for r in &g.rules {
            for alert in active(r) {
                let mut j = alert_json(alert);
                j["fingerprint"] = json!(format!(
                    "{:016x}",
                    super::notifier::fingerprint(&alert.labels)
                ));
                j["rule"] = json!({"group": g.group.name, "file": g.group.file, "name": r.rule.name, "query": r.rule.expr_text});
                j["silencedBy"] = json!(
                    st.silences
                        .as_ref()
                        .map(|s| s.muting(&tenant, &alert.labels, now))
                        .unwrap_or_default()
                );
                out.push(j);
            }
        }
    }
    Json(out).into_response()
}

/// `GET /api/alerts/{fingerprint}/evidence`: the evidence a notification of this alert
/// would carry now.
pub async fn alert_evidence(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(fp): Path<String>,
) -> Response {
    let ev = match (&st.alerting, &st.remote_alerting) {
        (_, Some(r)) => r.evidence.clone(),
        (Some(a), None) => a.evidence.clone(),
        (None, None) => return no_alerting(),
    };
    let groups = match groups_of(&st, &tenant).await {
        Ok(g) => g,
        Err(e) => {
            return crate::error::json_error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    let found = groups.into_iter().find_map(|g| {
        g.rules.iter().find_map(|r| {
            r.alerts
                .values()
                .find(|al| format!("{:016x}", super::notifier::fingerprint(&al.labels)) == fp)
                .map(|al| (al.clone(), r.rule.expr_text.clone()))
        })
    });
    let Some((alert, expr)) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no active alert {fp}")})),
        )
            .into_response();
    };
    let now = now_ms();
    match tokio::task::spawn_blocking(move || {
        ev.collect(&super::evidence::AlertRef {
            tenant: &tenant,
            labels: &alert.labels,
            expr: &expr,
            active_at_ms: alert.active_at_ms,
            end_ms: alert.resolved_at_ms.unwrap_or(now),
        })
    })
    .await
    {
        Ok(j) => Json(j).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn silence_json(s: &Silence, now_ms: i64) -> Json_ {
    json!({
        "id": s.id,
        "status": {"state": s.state(now_ms)},
        "updatedAt": rfc3339_ms(s.updated_at_ms),
        "comment": s.comment,
        "createdBy": s.created_by,
        "startsAt": rfc3339_ms(s.starts_at_ms),
        "endsAt": rfc3339_ms(s.ends_at_ms),
        "matchers": s.matchers,
    })
}

/// Changing alerting state (silences, posted alerts) is for the members of a tenant
/// alerting works for.
pub(crate) fn alert_tenant_only(st: &AppState, tenant: &str) -> Result<(), Box<Response>> {
    if st.alert_tenants.contains(tenant) {
        return Ok(());
    }
    Err(Box::new(crate::error::json_error(
        StatusCode::FORBIDDEN,
        // Other tenants' names are not told.
        format!(
            "tenant {tenant:?} has no alerting here: add it under alerting.tenants in the configuration"
        ),
    )))
}

fn no_alerting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "no alert engine here: rules run in triad up or triad collector",
    )
        .into_response()
}

fn silence_error(e: SilenceError) -> Response {
    let code = match e {
        SilenceError::Invalid(_) => StatusCode::BAD_REQUEST,
        SilenceError::NotFound(_) => StatusCode::NOT_FOUND,
        SilenceError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, e.to_string()).into_response()
}

fn now_ms() -> i64 {
    triad_model::now_ns() / 1_000_000
}

/// `GET /api/v2/silences?filter=`: every silence, or those whose matchers satisfy the
/// `filter` matchers.
pub async fn list_silences(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(silences) = &st.silences else {
        return no_alerting();
    };
    let filters = match super::am::filter_matchers(q.as_deref()) {
        Ok(f) => f,
        Err(e) => return silence_error(SilenceError::Invalid(e)),
    };
    if let Err(e) = silences.refresh().await {
        return silence_error(e);
    }
    let now = now_ms();
    Json(
        silences
            .list(&tenant)
            .iter()
            .filter(|s| super::am::silence_matches(s, &filters))
            .map(|s| silence_json(s, now))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Response {
    let Some(silences) = &st.silences else {
        return no_alerting();
    };
    if let Err(e) = silences.refresh().await {
        return silence_error(e);
    }
    match silences.list(&tenant).iter().find(|s| s.id == id) {
        Some(s) => Json(silence_json(s, now_ms())).into_response(),
        None => silence_error(SilenceError::NotFound(id)),
    }
}

/// `POST /api/v2/silences` with Alertmanager's body; answers `{"silenceID": …}`.
pub async fn post_silence(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Response {
    let Some(silences) = &st.silences else {
        return no_alerting();
    };
    if let Err(r) = alert_tenant_only(&st, &tenant) {
        return *r;
    }
    let req: SilenceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return silence_error(SilenceError::Invalid(format!("invalid silence: {e}"))),
    };
    match silences.upsert(&tenant, req, now_ms()).await {
        Ok(id) => Json(json!({"silenceID": id})).into_response(),
        Err(e) => silence_error(e),
    }
}

/// `DELETE /api/v2/silence/{id}`: expires the silence now.
pub async fn delete_silence(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Response {
    let Some(silences) = &st.silences else {
        return no_alerting();
    };
    match silences.expire(&tenant, &id, now_ms()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => silence_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::go_exp;

    #[test]
    fn values_are_formatted_as_go() {
        assert_eq!(go_exp(1.0), "1e+00");
        assert_eq!(go_exp(0.25), "2.5e-01");
        assert_eq!(go_exp(1234.5), "1.2345e+03");
        assert_eq!(go_exp(f64::NAN), "NaN");
    }
}
