//! The Prometheus HTTP API (`/api/v1/*`) with Prometheus' envelope:
//! `{"status": "success", "data": …, "warnings": […]}` or
//! `{"status": "error", "errorType": …, "error": …}`.
//!
//! Parameters come from the query string and, for POST, from an
//! `application/x-www-form-urlencoded` body, merged as Go's `r.FormValue` does (Grafana
//! posts its queries as forms).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use promql_parser::parser::Expr;
use serde_json::{Value as Json, json};
use triad_model::metric::Matcher;
use triad_model::store::MetricRead;

use crate::{AppState, Tenant};
use triad_promql::format::{ResultJson, labels_json, time_json};
use triad_promql::{Engine, EvalError, Limits, QueryValue};

/// Earliest and latest times the API accepts when `start`/`end` are left out.
const MIN_TIME_MS: i64 = i64::MIN / 2;
const MAX_TIME_MS: i64 = i64::MAX / 2;

/// Prometheus' `errorType` values, each with its HTTP status (as Prometheus'
/// `web/api/v1` maps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// A malformed parameter or query: 400.
    BadData,
    /// The query failed while running (a many-to-many match, too many samples): 422.
    Execution,
    /// The query ran out of time: 503.
    Timeout,
    /// The query was canceled: 503.
    Canceled,
    /// This server cannot answer (no metric store): 503.
    Unavailable,
    /// Nothing there: 404.
    NotFound,
    /// Something failed inside Triad: 500, with a generic message (the detail is logged).
    Internal,
}

impl ErrorType {
    /// The `errorType` string of Prometheus' envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::Internal => "internal",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled | ErrorType::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API error with Prometheus' `errorType`: the one error path of the Prometheus API
/// (and of the rules and alerts endpoints).
#[derive(Debug)]
pub struct PromError {
    kind: ErrorType,
    message: String,
}

impl PromError {
    /// An error of this type with this message (sent to the client, except for
    /// [`ErrorType::Internal`], whose message is only logged).
    pub fn new(kind: ErrorType, message: impl Into<String>) -> PromError {
        PromError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_data(message: impl Into<String>) -> PromError {
        PromError::new(ErrorType::BadData, message)
    }

    fn internal(message: impl Into<String>) -> PromError {
        PromError::new(ErrorType::Internal, message)
    }

    /// The error's type.
    pub fn kind(&self) -> ErrorType {
        self.kind
    }
}

impl From<EvalError> for PromError {
    fn from(e: EvalError) -> Self {
        let kind = match &e {
            EvalError::BadData(_) => ErrorType::BadData,
            EvalError::Execution(_) | EvalError::TooManySamples(_) => ErrorType::Execution,
            EvalError::Timeout(_) => ErrorType::Timeout,
            EvalError::Storage(_) => ErrorType::Internal,
        };
        PromError::new(kind, e.to_string())
    }
}

impl From<triad_model::store::StoreError> for PromError {
    fn from(e: triad_model::store::StoreError) -> Self {
        EvalError::from(e).into()
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let message = if self.kind == ErrorType::Internal {
            // Storage paths, task failures: for the log, not for the client.
            tracing::error!(error = %self.message, "prometheus api failed");
            "internal error; see the server's log".to_string()
        } else {
            self.message
        };
        (
            self.kind.status(),
            axum::Json(
                json!({"status": "error", "errorType": self.kind.as_str(), "error": message}),
            ),
        )
            .into_response()
    }
}

pub(crate) fn success(data: Json) -> Response {
    success_with(data)
}

/// `limit` of the series and label endpoints (Prometheus 2.49+; Grafana sends one):
/// `None` for none or 0.
fn result_limit(p: &Params) -> Result<Option<usize>, PromError> {
    match p.get("limit") {
        None | Some("") => Ok(None),
        Some(l) => match l.parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(PromError::bad_data(
                "invalid parameter \"limit\": cannot parse as a non-negative number",
            )),
        },
    }
}

/// A list cut to `limit`, with Prometheus' warning when something was cut.
fn limited<T: serde::Serialize>(mut items: Vec<T>, limit: Option<usize>) -> Response {
    let mut warnings = Vec::new();
    if let Some(n) = limit
        && items.len() > n
    {
        items.truncate(n);
        warnings.push("results truncated due to limit".to_string());
    }
    success_warning(items, warnings)
}

/// A label name as Prometheus 2.x accepts it: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The success envelope around anything serializable, written without a JSON tree.
pub(crate) fn success_with<T: serde::Serialize>(data: T) -> Response {
    success_warning(data, Vec::new())
}

/// The success envelope with Prometheus' `warnings` (left out when there are none).
fn success_warning<T: serde::Serialize>(data: T, warnings: Vec<String>) -> Response {
    #[derive(serde::Serialize)]
    struct Envelope<T> {
        status: &'static str,
        data: T,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    }
    axum::Json(Envelope {
        status: "success",
        data,
        warnings,
    })
    .into_response()
}

/// Request parameters: query string plus a form body, in that order.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn new(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut pairs: Vec<(String, String)> = query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            // Go's FormValue prefers the body's value over the query string's.
            let body_pairs: Vec<(String, String)> =
                form_urlencoded::parse(body).into_owned().collect();
            pairs.splice(0..0, body_pairs);
        }
        Params(pairs)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A parameter that must be present, parsed; errors name it.
    fn required(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<i64, String>,
    ) -> Result<i64, PromError> {
        let v = self
            .get(name)
            .ok_or_else(|| PromError::bad_data(format!("invalid parameter \"{name}\": missing")))?;
        parse(v).map_err(|e| PromError::bad_data(format!("invalid parameter \"{name}\": {e}")))
    }

    fn time(&self, name: &str, default: i64) -> Result<i64, PromError> {
        match self.get(name) {
            None => Ok(default),
            Some(s) => parse_time_ms(s)
                .map_err(|e| PromError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }
}

/// A time as Prometheus accepts it: Unix seconds (fraction allowed) or RFC 3339; ms.
///
/// Unix seconds are rounded to the millisecond as Prometheus does (whole seconds and
/// the fraction apart, so `1795339849.073` stays exact).
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e12 {
            return Err(format!("time {s:?} is out of range"));
        }
        let whole = secs.trunc();
        return Ok(whole as i64 * 1000 + ((secs - whole) * 1000.0).round() as i64);
    }
    crate::time::parse_time_ns(s).map(|ns| ns.div_euclid(1_000_000))
}

pub use triad_model::promconfig::parse_duration_ms;

fn now_ms() -> i64 {
    triad_model::now_ns() / 1_000_000
}

fn store(s: &AppState) -> Result<Arc<dyn MetricRead>, PromError> {
    s.metrics.clone().ok_or_else(|| PromError {
        kind: ErrorType::Unavailable,
        message: "this query server has no metric store: metrics are served by `triad up` or by the collector's query server".into(),
    })
}

/// The query limits of the configuration, shortened by a `timeout` parameter.
pub(crate) fn limits(
    s: &AppState,
    tenant: &str,
    timeout: Option<&str>,
) -> Result<Limits, PromError> {
    let mut l = s.query_limits(tenant);
    if let Some(t) = timeout {
        let ms = parse_duration_ms(t)
            .map_err(|e| PromError::bad_data(format!("invalid parameter \"timeout\": {e}")))?;
        l.timeout = l.timeout.min(Duration::from_millis(ms.max(0) as u64));
    }
    Ok(l)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PromError> + Send + 'static,
) -> Result<T, PromError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PromError::internal(format!("query task failed: {e}")))?
}

/// `GET|POST /api/v1/query`.
pub async fn query(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = Params::new(q, &headers, &body);
    let query = p
        .get("query")
        .ok_or_else(|| PromError::bad_data("invalid parameter \"query\": query must not be empty"))?
        .to_string();
    let t = p.time("time", now_ms())?;
    let limits = limits(&s, &tenant, p.get("timeout"))?;
    let store = store(&s)?;
    let (value, warnings) = blocking(move || {
        let engine = Engine::new(store.as_ref(), &tenant, limits);
        let value = engine.instant(&query, t).map_err(invalid_query)?;
        Ok((value, engine.warnings()))
    })
    .await?;
    Ok(success_warning(ResultJson(&value), warnings))
}

/// Parse errors name the parameter, as Prometheus does.
fn invalid_query(e: EvalError) -> PromError {
    match e {
        EvalError::BadData(m) if m.starts_with("parse error") => {
            PromError::bad_data(format!("invalid parameter \"query\": {m}"))
        }
        other => other.into(),
    }
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = Params::new(q, &headers, &body);
    let query = p
        .get("query")
        .ok_or_else(|| PromError::bad_data("invalid parameter \"query\": query must not be empty"))?
        .to_string();
    let start = p.required("start", parse_time_ms)?;
    let end = p.required("end", parse_time_ms)?;
    let step = p.required("step", parse_duration_ms)?;
    s.limits
        .check_range(
            &tenant,
            start.saturating_mul(1_000_000),
            end.saturating_mul(1_000_000),
        )
        .map_err(|r| PromError::bad_data(r.message))?;
    let limits = limits(&s, &tenant, p.get("timeout"))?;
    let store = store(&s)?;
    let (matrix, warnings) = blocking(move || {
        let engine = Engine::new(store.as_ref(), &tenant, limits);
        let matrix = engine
            .range(&query, start, end, step)
            .map_err(invalid_query)?;
        Ok((matrix, engine.warnings()))
    })
    .await?;
    Ok(success_warning(
        ResultJson(&QueryValue::Matrix(matrix)),
        warnings,
    ))
}

/// Parses `match[]` selectors into matcher sets.
fn matcher_sets(p: &Params, required: bool) -> Result<Vec<Vec<Matcher>>, PromError> {
    let raw = p.all("match[]");
    if raw.is_empty() && required {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let mut sets = Vec::new();
    for m in raw {
        let expr = Engine::parse(m)
            .map_err(|e| PromError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        match expr {
            Expr::VectorSelector(vs) => {
                sets.extend(triad_promql::selector_matchers(&vs).map_err(PromError::from)?)
            }
            _ => {
                return Err(PromError::bad_data(format!(
                    "invalid parameter \"match[]\": {m:?} is not a series selector"
                )));
            }
        }
    }
    Ok(sets)
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = Params::new(q, &headers, &body);
    let sets = matcher_sets(&p, true)?;
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let limit = result_limit(&p)?;
    let store = store(&s)?;
    let series = blocking(move || Ok(store.series(&tenant, &sets, start, end)?)).await?;
    Ok(limited(series.iter().map(labels_json).collect(), limit))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = Params::new(q, &headers, &body);
    let sets = matcher_sets(&p, false)?;
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let limit = result_limit(&p)?;
    let store = store(&s)?;
    let names = blocking(move || Ok(store.label_names(&tenant, &sets, start, end)?)).await?;
    Ok(limited(names, limit))
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PromError> {
    let p = Params::new(q, &headers, &Bytes::new());
    if !valid_label_name(&name) {
        return Err(PromError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = matcher_sets(&p, false)?;
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let limit = result_limit(&p)?;
    let store = store(&s)?;
    let values =
        blocking(move || Ok(store.label_values(&tenant, &name, &sets, start, end)?)).await?;
    Ok(limited(values, limit))
}

/// `GET /api/v1/metadata?metric=&limit=`.
pub async fn metadata(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
) -> Result<Response, PromError> {
    let p = Params::new(q, &HeaderMap::new(), &Bytes::new());
    let metric = p.get("metric").map(str::to_string);
    let limit = match p.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| PromError::bad_data("invalid parameter \"limit\": not a number"))?,
        None => -1,
    };
    let store = store(&s)?;
    let meta = blocking(move || Ok(store.metadata(&tenant, metric.as_deref())?)).await?;
    let mut out = serde_json::Map::new();
    for (name, entries) in meta {
        if limit >= 0 && out.len() as i64 >= limit {
            break;
        }
        out.insert(
            name,
            Json::Array(
                entries
                    .iter()
                    .map(|m| json!({"type": m.metric_type, "help": m.help, "unit": m.unit}))
                    .collect(),
            ),
        );
    }
    Ok(success(Json::Object(out)))
}

/// Every selector's matchers in an expression.
fn selectors(expr: &Expr, out: &mut Vec<Vec<Matcher>>) -> Result<(), PromError> {
    match expr {
        Expr::VectorSelector(vs) => out.extend(triad_promql::selector_matchers(vs)?),
        Expr::MatrixSelector(ms) => out.extend(triad_promql::selector_matchers(&ms.vs)?),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out)?;
            if let Some(p) = &a.param {
                selectors(p, out)?;
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out)?,
        Expr::Binary(b) => {
            selectors(&b.lhs, out)?;
            selectors(&b.rhs, out)?;
        }
        Expr::Paren(p) => selectors(&p.expr, out)?,
        Expr::Subquery(s) => selectors(&s.expr, out)?,
        Expr::Call(c) => {
            for a in &c.args.args {
                selectors(a, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `GET|POST /api/v1/query_exemplars?query=&start=&end=`.
pub async fn query_exemplars(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = Params::new(q, &headers, &body);
    let query = p.get("query").ok_or_else(|| {
        PromError::bad_data("invalid parameter \"query\": query must not be empty")
    })?;
    let expr = Engine::parse(query).map_err(invalid_query)?;
    let mut sets = Vec::new();
    selectors(&expr, &mut sets)?;
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let store = store(&s)?;
    let found = blocking(move || Ok(store.exemplars(&tenant, &sets, start, end)?)).await?;
    Ok(success(Json::Array(
        found
            .iter()
            .map(|s| {
                json!({
                    "seriesLabels": labels_json(&s.labels),
                    "exemplars": s.exemplars.iter().map(|e| json!({
                        "labels": labels_json(&e.labels),
                        "value": triad_promql::format_value(e.value),
                        "timestamp": time_json(e.timestamp_ms),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )))
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    let mut info = build_info();
    info["application"] = json!("triad");
    info["features"] = json!({});
    success(info)
}

/// The build information Prometheus, Tempo and Alertmanager report, in their shared
/// field names.
pub fn build_info() -> Json {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_errors_are_logged_not_sent() {
        let resp = PromError::from(triad_model::store::StoreError::Internal(
            "open /var/lib/triad/metrics/default/wal: permission denied".into(),
        ))
        .into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errorType"], "internal");
        assert!(
            !body["error"].as_str().unwrap().contains("/var/lib"),
            "{body}"
        );
        // Other types keep their message: it is about the request.
        let e = PromError::bad_data("invalid parameter \"step\"");
        assert_eq!(e.kind(), ErrorType::BadData);
    }

    #[test]
    fn times_round_to_the_millisecond() {
        assert_eq!(parse_time_ms("1795339849.073"), Ok(1_795_339_849_073));
        assert_eq!(parse_time_ms("-1.5"), Ok(-1_500));
        assert_eq!(
            parse_time_ms("2026-11-22T10:00:00.5Z"),
            Ok(1_795_341_600_500)
        );
    }

    #[test]
    fn durations_as_prometheus() {
        assert_eq!(parse_duration_ms("15s"), Ok(15_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("0.5"), Ok(500));
        assert_eq!(parse_duration_ms("100ms"), Ok(100));
        assert_eq!(parse_duration_ms("1w"), Ok(604_800_000));
        assert!(parse_duration_ms("5 m").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("m").is_err());
    }
}
