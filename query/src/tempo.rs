//! Tempo's trace-by-ID API beside Jaeger's, so Grafana's Tempo data source works on the
//! same port: `GET /api/v2/traces/{id}` (OTLP JSON, or Tempo's `TraceByIDResponse`
//! protobuf on `Accept: application/protobuf`; 404 when not found), and
//! `GET /api/traces/{id}` answering Tempo's `Trace` protobuf to clients that accept
//! only it (Jaeger JSON otherwise, see [`crate::jaeger::trace`]). Plus `/api/echo` and
//! `/api/status/buildinfo`, which Grafana's "Save & test" asks, and `/api/search` with
//! logfmt `tags` or a TraceQL subset (`q`, see [`crate::traceql`]).
//!
//! Tempo's `Trace` message (`repeated ResourceSpans resourceSpans = 1`) has the wire form
//! of OTLP's `TracesData`; `TraceByIDResponse` wraps it as field 1, with a
//! `PartialStatus` (0 complete, 1 partial) as field 3 and a message as field 4.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde_json::json;
use triad_model::TraceId;

use crate::error::json_error as error;
use crate::{AppState, Tenant};

/// The media type of Tempo's protobuf answers.
pub const PROTOBUF: &str = "application/protobuf";

/// Whether the client asks for protobuf (Tempo's clients send `Accept:
/// application/protobuf`).
pub fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().map(str::trim) == Some(PROTOBUF))
}

/// The trace's spans and the warnings of sources that did not answer.
async fn fetch(
    st: &AppState,
    tenant: &str,
    id: &str,
) -> Result<(Vec<triad_model::Span>, Vec<String>), Response> {
    let trace_id = TraceId::from_hex(id)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid trace ID: {e}")))?;
    let (traces, tenant) = (st.traces.clone(), tenant.to_string());
    tokio::task::spawn_blocking(move || traces.trace_partial(&tenant, trace_id))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], bytes).into_response()
}

/// `GET /api/traces/{id}` for a client that accepts only protobuf: Tempo's `Trace`.
pub async fn trace_v1_protobuf(st: &AppState, tenant: &str, id: &str) -> Response {
    match fetch(st, tenant, id).await {
        Err(r) => r,
        Ok((spans, _)) if spans.is_empty() => error(StatusCode::NOT_FOUND, "trace not found"),
        Ok((spans, _)) => protobuf(triad_model::otlp::spans_to_otlp(spans).encode_to_vec()),
    }
}

/// `GET /api/v2/traces/{id}`.
pub async fn trace_v2(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (spans, warnings) = match fetch(&st, &tenant, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if spans.is_empty() {
        let message = if warnings.is_empty() {
            "trace not found".to_string()
        } else {
            format!("trace not found; {}", warnings.join("; "))
        };
        return error(StatusCode::NOT_FOUND, message);
    }
    let trace = triad_model::otlp::spans_to_otlp(spans);
    let partial = !warnings.is_empty();
    if wants_protobuf(&headers) {
        let mut out = Vec::new();
        // TraceByIDResponse: trace = 1, status = 3, message = 4.
        prost::encoding::message::encode(1, &trace, &mut out);
        if partial {
            prost::encoding::int32::encode(3, &1, &mut out);
            prost::encoding::string::encode(4, &warnings.join("; "), &mut out);
        }
        return protobuf(out);
    }
    let mut body = json!({"trace": trace});
    if partial {
        body["status"] = json!("PARTIAL");
        body["message"] = json!(warnings.join("; "));
    }
    Json(body).into_response()
}

/// `GET /api/echo`: what Grafana's Tempo data source checks the connection with.
pub async fn echo() -> &'static str {
    "echo"
}

/// `GET /api/status/buildinfo`: Tempo's build information.
pub async fn buildinfo() -> Response {
    Json(crate::prom_api::build_info()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_tags_and_traceql_make_the_index_query() {
        assert_eq!(
            logfmt(r#"service.name=api http.status_code=500 name="GET /x""#).unwrap(),
            [
                ("service.name".to_string(), "api".to_string()),
                ("http.status_code".to_string(), "500".to_string()),
                ("name".to_string(), "GET /x".to_string())
            ]
        );
        assert!(logfmt("novalue").is_err());
        assert!(logfmt(r#"a="open"#).is_err());
        let p = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let plan = search_query(
            "default",
            &p(&[
                (
                    "q",
                    r#"{ resource.service.name = "checkout" && duration > 1s }"#,
                ),
                ("maxDuration", "5s"),
                ("start", "100"),
                ("end", "200"),
                ("limit", "5"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(plan.index.service, "checkout");
        assert_eq!(plan.index.min_duration_ns, Some(1_000_000_000));
        assert_eq!(plan.index.max_duration_ns, Some(5_000_000_000));
        assert_eq!(
            (plan.index.start_ns, plan.index.end_ns),
            (100_000_000_000, 200_000_000_000)
        );
        assert_eq!((plan.limit, plan.index.limit), (5, 50));
        let plan = search_query(
            "default",
            &p(&[("tags", "service.name=api name=x k=v")]),
            7_200_000_000_000,
        )
        .unwrap();
        assert_eq!(plan.index.service, "api");
        assert_eq!(plan.index.operation.as_deref(), Some("x"));
        assert_eq!(plan.index.start_ns, 3_600_000_000_000, "the last hour");
        assert!(plan.traceql.is_none());
        assert!(
            search_query("default", &p(&[("q", "{ nope }")]), 0)
                .unwrap_err()
                .contains("invalid TraceQL")
        );
    }

    #[test]
    fn protobuf_is_chosen_by_the_accept_header() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            wants_protobuf(&h)
        };
        assert!(with("application/protobuf"));
        assert!(with("application/json;q=0.5, application/protobuf"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!wants_protobuf(&HeaderMap::new()));
    }
}

/// Traces `/api/search` returns by default.
const SEARCH_LIMIT: usize = 20;
/// Spans listed per matching trace by default (Tempo's `spss`).
const SPANS_PER_SPANSET: usize = 3;
/// With TraceQL, how many candidate traces (newest first) are read per trace asked
/// for, and at most: the index finds candidates by what the query pins
/// ([`crate::traceql::Query::prefilter`]), the spans are then checked exactly.
const CANDIDATES_PER_RESULT: usize = 10;
const MAX_CANDIDATES: usize = 2000;

/// Parses Tempo's logfmt `tags` (`service.name=api http.status_code=500 name="GET /"`).
fn logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("tags: {rest:?} is not key=value"))?;
        let key = rest[..eq].trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("tags: bad key before {:?}", &rest[eq..]));
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("tags: unterminated value of {key:?}"))?;
            value = quoted[..end].to_string();
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = rest[end..].trim_start();
        }
        out.push((key, value));
    }
    Ok(out)
}

/// `GET /api/search?q=<TraceQL>&tags=&minDuration=&maxDuration=&limit=&start=&end=&spss=`:
/// Tempo's search. Times are Unix seconds (the last hour by default).
pub async fn search(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    match search_query(&tenant, &params, triad_model::now_ns()) {
        Err(e) => error(StatusCode::BAD_REQUEST, e),
        Ok(plan) => {
            if let Err(r) = st
                .limits
                .check_range(&tenant, plan.index.start_ns, plan.index.end_ns)
            {
                return error(StatusCode::BAD_REQUEST, r.message);
            }
            let traces = st.traces.clone();
            match tokio::task::spawn_blocking(move || run_search(traces.as_ref(), plan)).await {
                Ok(Ok(body)) => Json(body).into_response(),
                Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    }
}

/// A search to run: the candidates' index query, the exact check, and how much to say.
#[derive(Debug)]
struct SearchPlan {
    index: triad_model::store::TraceQuery,
    traceql: Option<crate::traceql::Query>,
    limit: usize,
    spss: usize,
}

fn search_query(
    tenant: &str,
    params: &[(String, String)],
    now_ns: i64,
) -> Result<SearchPlan, String> {
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let number = |k: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{k}: {v:?} is not a number"))
            })
            .transpose()
    };
    let duration = |k: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| crate::time::parse_go_duration_ns(v).map_err(|e| format!("{k}: {e}")))
            .transpose()
    };
    let end_ns = number("end")?.map_or(now_ns, |s| s.saturating_mul(1_000_000_000));
    let start_ns = number("start")?.map_or(end_ns - 3_600_000_000_000, |s| {
        s.saturating_mul(1_000_000_000)
    });
    let limit = number("limit")?.map_or(SEARCH_LIMIT, |l| l.clamp(1, 1000) as usize);
    let spss = number("spss")?.map_or(SPANS_PER_SPANSET, |l| l.clamp(1, 1000) as usize);
    let mut index = triad_model::store::TraceQuery {
        tenant: tenant.to_string(),
        service: String::new(),
        operation: None,
        tags: Vec::new(),
        start_ns,
        end_ns,
        min_duration_ns: duration("minDuration")?,
        max_duration_ns: duration("maxDuration")?,
        limit,
        order: Default::default(),
    };
    for (k, v) in logfmt(get("tags").unwrap_or(""))? {
        match k.as_str() {
            "service.name" => index.service = v,
            "name" => index.operation = Some(v),
            _ => index.tags.push((k, v)),
        }
    }
    let traceql = match get("q").filter(|q| !q.trim().is_empty()) {
        None => None,
        Some(q) => {
            let parsed = crate::traceql::parse(q).map_err(|e| format!("invalid TraceQL: {e}"))?;
            let p = parsed.prefilter();
            if let Some(s) = p.service {
                index.service = s;
            }
            if p.name.is_some() {
                index.operation = p.name;
            }
            index.tags.extend(p.tags);
            index.min_duration_ns = index.min_duration_ns.max(p.min_duration_ns);
            index.max_duration_ns = match (index.max_duration_ns, p.max_duration_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            index.limit = (limit * CANDIDATES_PER_RESULT).min(MAX_CANDIDATES);
            Some(parsed)
        }
    };
    Ok(SearchPlan {
        index,
        traceql,
        limit,
        spss,
    })
}

fn otlp_attribute(kv: &triad_model::KeyValue) -> serde_json::Value {
    use triad_model::Value;
    let value = match &kv.value {
        Value::Str(s) => json!({"stringValue": s}),
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Double(d) => json!({"doubleValue": d}),
        Value::Bool(b) => json!({"boolValue": b}),
        other => json!({"stringValue": other.to_text()}),
    };
    json!({"key": kv.key, "value": value})
}

fn run_search(
    traces: &dyn triad_model::store::TraceRead,
    plan: SearchPlan,
) -> Result<serde_json::Value, String> {
    let (ids, mut warnings) = traces
        .find_trace_ids_partial(&plan.index)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut inspected = 0u64;
    for id in ids {
        if out.len() >= plan.limit {
            break;
        }
        let (spans, w) = traces
            .trace_partial(&plan.index.tenant, id)
            .map_err(|e| e.to_string())?;
        warnings.extend(w);
        if spans.is_empty() {
            continue;
        }
        inspected += 1;
        let matched: Vec<usize> = match &plan.traceql {
            Some(q) => q.matches(&spans),
            None => (0..spans.len()).collect(),
        };
        if matched.is_empty() {
            continue;
        }
        let root = crate::traceql::root(&spans);
        let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        let listed: Vec<serde_json::Value> = matched
            .iter()
            .take(plan.spss)
            .map(|&i| {
                let s = &spans[i];
                let mut attributes = vec![otlp_attribute(&triad_model::KeyValue {
                    key: "service.name".into(),
                    value: triad_model::Value::Str(s.service.clone()),
                })];
                if let Some(q) = &plan.traceql {
                    for a in &q.select {
                        let found = s
                            .attributes
                            .iter()
                            .chain(s.resource.iter())
                            .find(|kv| kv.key == a.name);
                        if let Some(kv) = found {
                            attributes.push(otlp_attribute(kv));
                        }
                    }
                }
                json!({
                    "spanID": s.span_id.to_hex(),
                    "name": s.name,
                    "startTimeUnixNano": s.start_ns.to_string(),
                    "durationNanos": s.duration_ns().to_string(),
                    "attributes": attributes,
                })
            })
            .collect();
        let spanset = json!({"spans": listed, "matched": matched.len()});
        out.push(json!({
            "traceID": id.to_hex(),
            "rootServiceName": root.map_or("<root span not yet received>", |s| s.service.as_str()),
            "rootTraceName": root.map_or("", |s| s.name.as_str()),
            "startTimeUnixNano": start.to_string(),
            "durationMs": (end - start) / 1_000_000,
            "spanSet": spanset,
            "spanSets": [spanset],
        }));
    }
    let mut body = json!({
        "traces": out,
        "metrics": {"inspectedTraces": inspected, "completedJobs": 1, "totalJobs": 1},
    });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Ok(body)
}

/// Tag names or values answered at most.
const TAG_LIMIT: usize = 1000;

/// The TraceQL intrinsics Tempo lists in the `intrinsic` scope.
const INTRINSICS: &[&str] = &[
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

/// Prefixes of OpenTelemetry's resource semantic conventions: keys under them are
/// listed in the `resource` scope, others in `span` (the tag index does not record
/// which a key came from; unscoped `.key` matches either).
const RESOURCE_PREFIXES: &[&str] = &[
    "service.",
    "host.",
    "k8s.",
    "container.",
    "cloud.",
    "process.",
    "os.",
    "telemetry.",
    "deployment.",
    "faas.",
    "device.",
    "browser.",
];

/// Keys of the tag index that are not attributes (Jaeger's view of kind and status,
/// which TraceQL reads as intrinsics).
const SYNTHETIC: &[&str] = &["span.kind", "otel.status_code"];

/// The window of a tags request: `start`/`end` in Unix seconds, the last hour by
/// default.
fn tag_window(params: &[(String, String)], now_ns: i64) -> Result<(i64, i64), String> {
    let get = |k: &str| -> Result<Option<i64>, String> {
        params
            .iter()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| {
                v.parse::<i64>()
                    .map(|s| s.saturating_mul(1_000_000_000))
                    .map_err(|_| format!("{k}: {v:?} is not Unix seconds"))
            })
            .transpose()
    };
    let end = get("end")?.unwrap_or(now_ns);
    let start = get("start")?.unwrap_or(end - 3_600_000_000_000);
    Ok((start, end))
}

fn query_params(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Attribute keys of the window, `service.name` included, sorted.
fn tag_keys(
    traces: &dyn triad_model::store::TraceRead,
    tenant: &str,
    (start, end): (i64, i64),
) -> Result<Vec<String>, String> {
    let mut keys = traces
        .tag_values(tenant, None, start, end, TAG_LIMIT)
        .map_err(|e| e.to_string())?;
    keys.push("service.name".into());
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Values of attribute `key` in the window (`service.name` from the services catalog).
fn tag_key_values(
    traces: &dyn triad_model::store::TraceRead,
    tenant: &str,
    key: &str,
    (start, end): (i64, i64),
) -> Result<Vec<String>, String> {
    if key == "service.name" {
        return traces.services(tenant).map_err(|e| e.to_string());
    }
    traces
        .tag_values(tenant, Some(key), start, end, TAG_LIMIT)
        .map_err(|e| e.to_string())
}

async fn blocking_json<F>(st: &AppState, f: F) -> Response
where
    F: FnOnce(&dyn triad_model::store::TraceRead) -> Result<serde_json::Value, String>
        + Send
        + 'static,
{
    let traces = st.traces.clone();
    match tokio::task::spawn_blocking(move || f(traces.as_ref())).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/search/tags?start=&end=`: `{"tagNames": [...]}`.
pub async fn search_tags(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let window = match tag_window(&query_params(raw), triad_model::now_ns()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    blocking_json(&st, move |t| {
        let keys: Vec<String> = tag_keys(t, &tenant, window)?
            .into_iter()
            .filter(|k| !SYNTHETIC.contains(&k.as_str()))
            .collect();
        Ok(json!({"tagNames": keys}))
    })
    .await
}

/// `GET /api/v2/search/tags?scope=&start=&end=`: tag names by scope (`resource`,
/// `span`, `intrinsic`).
pub async fn search_tags_v2(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let params = query_params(raw);
    let window = match tag_window(&params, triad_model::now_ns()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let scope = params
        .iter()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if !matches!(
        scope.as_str(),
        "" | "all" | "resource" | "span" | "intrinsic"
    ) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("scope {scope:?}: use resource, span, intrinsic or all"),
        );
    }
    blocking_json(&st, move |t| {
        let (mut resource, mut span) = (Vec::new(), Vec::new());
        for k in tag_keys(t, &tenant, window)? {
            if SYNTHETIC.contains(&k.as_str()) {
                continue;
            }
            if RESOURCE_PREFIXES.iter().any(|p| k.starts_with(p)) {
                resource.push(k);
            } else {
                span.push(k);
            }
        }
        let scopes: Vec<serde_json::Value> = [
            ("resource", resource),
            ("span", span),
            (
                "intrinsic",
                INTRINSICS.iter().map(|s| s.to_string()).collect(),
            ),
        ]
        .into_iter()
        .filter(|(name, _)| scope.is_empty() || scope == "all" || scope == *name)
        .map(|(name, tags)| json!({"name": name, "tags": tags}))
        .collect();
        Ok(json!({"scopes": scopes}))
    })
    .await
}

/// `GET /api/search/tag/{tag}/values`: `{"tagValues": [...]}`.
pub async fn tag_values(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(tag): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let window = match tag_window(&query_params(raw), triad_model::now_ns()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    blocking_json(&st, move |t| {
        Ok(json!({"tagValues": tag_key_values(t, &tenant, &tag, window)?}))
    })
    .await
}

/// The type Tempo reports for a value read back from its text.
fn value_type(v: &str) -> &'static str {
    if v.parse::<i64>().is_ok() {
        "int"
    } else if v.parse::<f64>().is_ok() {
        "float"
    } else if v == "true" || v == "false" {
        "bool"
    } else {
        "string"
    }
}

/// `GET /api/v2/search/tag/{tag}/values`: values of a TraceQL attribute
/// (`resource.service.name`, `span.http.route`, `.x`) or intrinsic (`name`, `status`,
/// `kind`, `rootServiceName`), typed.
pub async fn tag_values_v2(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(tag): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let window = match tag_window(&query_params(raw), triad_model::now_ns()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let keyword = |vals: &[&str]| {
        Json(json!({"tagValues": vals.iter().map(|v| json!({"type": "keyword", "value": v})).collect::<Vec<_>>()}))
            .into_response()
    };
    match tag.as_str() {
        "status" => return keyword(&["error", "ok", "unset"]),
        "kind" => {
            return keyword(&[
                "unspecified",
                "internal",
                "server",
                "client",
                "producer",
                "consumer",
            ]);
        }
        _ => {}
    }
    blocking_json(&st, move |t| {
        let values: Vec<String> = match tag.as_str() {
            "rootServiceName" => t.services(&tenant).map_err(|e| e.to_string())?,
            "name" | "rootName" => {
                let mut names = Vec::new();
                for s in t.services(&tenant).map_err(|e| e.to_string())? {
                    names.extend(
                        t.operations(&tenant, &s)
                            .map_err(|e| e.to_string())?
                            .into_iter()
                            .map(|o| o.name),
                    );
                }
                names.sort();
                names.dedup();
                names.truncate(TAG_LIMIT);
                names
            }
            other => {
                let key = other
                    .strip_prefix("resource.")
                    .or_else(|| other.strip_prefix("span."))
                    .or_else(|| other.strip_prefix('.'))
                    .unwrap_or(other);
                tag_key_values(t, &tenant, key, window)?
            }
        };
        Ok(json!({"tagValues": values.iter().map(|v| json!({"type": value_type(v), "value": v})).collect::<Vec<_>>()}))
    })
    .await
}
