//! The Jaeger query HTTP API (`/api/services`, `/api/traces`, …) with Jaeger's JSON
//! shapes, so that Grafana's Jaeger data source and Jaeger's UI work unchanged.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};
use triad_model::store::{StoreResult, TraceOrder, TraceQuery, TraceRead};
use triad_model::{KeyValue, Span, SpanKind, StatusCode, TraceId, Value};

use crate::error::{ApiError, ApiResult};
use crate::time::parse_go_duration_ns;
use crate::{AppState, Tenant};

/// Jaeger's default and maximum `limit` when none is given.
const DEFAULT_LIMIT: usize = 20;
/// Default search window when neither `start` nor `lookback` is given.
const DEFAULT_LOOKBACK_NS: i64 = 3_600_000_000_000;

fn envelope(data: J, total: usize) -> Response {
    partial_envelope(data, total, Vec::new())
}

/// Jaeger's envelope; when a source did not answer, its warnings go to Jaeger's
/// `errors` (code 503: the source was unavailable) beside the data, and Triad's
/// `partial: true` / `warnings` say the answer is incomplete.
fn partial_envelope(data: J, total: usize, mut warnings: Vec<String>) -> Response {
    warnings.sort();
    warnings.dedup();
    let errors = if warnings.is_empty() {
        J::Null
    } else {
        warnings
            .iter()
            .map(|w| json!({"code": 503, "msg": w}))
            .collect()
    };
    Json(json!({
        "data": data,
        "total": total,
        "limit": 0,
        "offset": 0,
        "errors": errors,
        "partial": !warnings.is_empty(),
        "warnings": warnings,
    }))
    .into_response()
}

fn jaeger<T>(r: ApiResult<T>, f: impl FnOnce(T) -> Response) -> Response {
    match r {
        Ok(v) => f(v),
        Err(e) => e.into_jaeger(),
    }
}

/// Runs a blocking trace-store read off the async runtime.
async fn read<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&dyn TraceRead) -> StoreResult<T> + Send + 'static,
) -> ApiResult<T> {
    let traces = st.traces.clone();
    Ok(tokio::task::spawn_blocking(move || f(traces.as_ref())).await??)
}

fn tag(kv: &KeyValue) -> J {
    let (ty, value) = match &kv.value {
        Value::Bool(b) => ("bool", json!(b)),
        Value::Int(i) => ("int64", json!(i)),
        Value::Double(d) => ("float64", json!(d)),
        Value::Bytes(b) => ("binary", json!(hex::encode(b))),
        other => ("string", json!(other.to_text())),
    };
    json!({"key": kv.key, "type": ty, "value": value})
}

fn str_tag(key: &str, value: &str) -> J {
    json!({"key": key, "type": "string", "value": value})
}

/// Converts the spans of one trace into Jaeger's trace JSON.
pub fn trace_json(trace_id: TraceId, spans: &[Span]) -> J {
    // One process per distinct (service, resource attributes).
    let mut processes: Vec<(String, Vec<KeyValue>)> = Vec::new();
    let mut json_spans = Vec::with_capacity(spans.len());
    for s in spans {
        let idx = match processes
            .iter()
            .position(|(svc, res)| *svc == s.service && *res == s.resource)
        {
            Some(i) => i,
            None => {
                processes.push((s.service.clone(), s.resource.clone()));
                processes.len() - 1
            }
        };
        let mut refs = Vec::new();
        if let Some(p) = s.parent_span_id {
            refs.push(json!({"refType": "CHILD_OF", "traceID": s.trace_id.to_hex(), "spanID": p.to_hex()}));
        }
        for l in &s.links {
            refs.push(json!({"refType": "FOLLOWS_FROM", "traceID": l.trace_id.to_hex(), "spanID": l.span_id.to_hex()}));
        }
        let mut tags: Vec<J> = s.attributes.iter().map(tag).collect();
        if s.kind != SpanKind::Unspecified {
            tags.push(str_tag("span.kind", s.kind.as_str()));
        }
        match s.status_code {
            StatusCode::Error => {
                tags.push(json!({"key": "error", "type": "bool", "value": true}));
                tags.push(str_tag("otel.status_code", "ERROR"));
                if !s.status_message.is_empty() {
                    tags.push(str_tag("otel.status_description", &s.status_message));
                }
            }
            StatusCode::Ok => tags.push(str_tag("otel.status_code", "OK")),
            StatusCode::Unset => {}
        }
        if !s.scope_name.is_empty() {
            tags.push(str_tag("otel.scope.name", &s.scope_name));
            if !s.scope_version.is_empty() {
                tags.push(str_tag("otel.scope.version", &s.scope_version));
            }
        }
        let logs: Vec<J> = s
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![str_tag("event", &e.name)];
                fields.extend(e.attributes.iter().map(tag));
                json!({"timestamp": e.time_ns / 1000, "fields": fields})
            })
            .collect();
        json_spans.push(json!({
            "traceID": s.trace_id.to_hex(),
            "spanID": s.span_id.to_hex(),
            "operationName": s.name,
            "references": refs,
            "startTime": s.start_ns / 1000,
            "duration": s.duration_ns() / 1000,
            "tags": tags,
            "logs": logs,
            "processID": format!("p{}", idx + 1),
            "warnings": null,
            "flags": 1,
        }));
    }
    let procs: serde_json::Map<String, J> = processes
        .iter()
        .enumerate()
        .map(|(i, (svc, res))| {
            (
                format!("p{}", i + 1),
                json!({"serviceName": svc, "tags": res.iter().map(tag).collect::<Vec<_>>()}),
            )
        })
        .collect();
    json!({"traceID": trace_id.to_hex(), "spans": json_spans, "processes": procs, "warnings": null})
}

/// `GET /api/services`
pub async fn services(State(st): State<AppState>, Tenant(tenant): Tenant) -> Response {
    let r = read(&st, move |t| t.services(&tenant)).await;
    jaeger(r, |s| {
        let n = s.len();
        envelope(json!(s), n)
    })
}

/// `GET /api/services/{service}/operations` (legacy shape: a list of names).
pub async fn service_operations(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(service): Path<String>,
) -> Response {
    let r = read(&st, move |t| t.operations(&tenant, &service)).await;
    jaeger(r, |ops| {
        let mut names: Vec<String> = ops.into_iter().map(|o| o.name).collect();
        names.dedup();
        let n = names.len();
        envelope(json!(names), n)
    })
}

/// `GET /api/operations?service=&spanKind=` (the newer shape: `{name, spanKind}`).
pub async fn operations(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(service) = params.get("service").cloned() else {
        return ApiError::BadRequest("parameter 'service' is required".into()).into_jaeger();
    };
    let kind = params.get("spanKind").cloned().unwrap_or_default();
    let r = read(&st, move |t| t.operations(&tenant, &service)).await;
    jaeger(r, |ops| {
        let data: Vec<J> = ops
            .into_iter()
            .filter(|o| kind.is_empty() || o.kind.as_str() == kind)
            .map(|o| json!({"name": o.name, "spanKind": o.kind.as_str()}))
            .collect();
        let n = data.len();
        envelope(json!(data), n)
    })
}

/// `GET /api/traces/{traceID}`. `start`/`end` (Grafana sends them, in µs or ms) are
/// accepted and ignored: a trace is found at any age within retention.
pub async fn trace(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    // Tempo's clients ask the same path for protobuf: both data sources on one port.
    if crate::tempo::wants_protobuf(&headers) {
        return crate::tempo::trace_v1_protobuf(&st, &tenant, &id).await;
    }
    let trace_id = match TraceId::from_hex(&id) {
        Ok(t) => t,
        Err(e) => return ApiError::BadRequest(format!("invalid trace ID: {e}")).into_jaeger(),
    };
    let r = read(&st, move |t| t.trace_partial(&tenant, trace_id)).await;
    jaeger(r, |(spans, warnings)| {
        if spans.is_empty() && warnings.is_empty() {
            ApiError::NotFound("trace not found".into()).into_jaeger()
        } else if spans.is_empty() {
            // Not found where it could be looked for: not the same as not existing.
            partial_envelope(json!([]), 0, warnings)
        } else {
            partial_envelope(json!([trace_json(trace_id, &spans)]), 1, warnings)
        }
    })
}

/// Parses `tags` (JSON object) and legacy `tag=key:value` parameters.
fn parse_tags(params: &[(String, String)]) -> ApiResult<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "tags" if !v.trim().is_empty() => {
                let obj: serde_json::Map<String, J> = serde_json::from_str(v).map_err(|e| {
                    ApiError::BadRequest(format!(
                        "malformed 'tags' parameter (want a JSON object): {e}"
                    ))
                })?;
                for (tk, tv) in obj {
                    let text = match tv {
                        J::String(s) => s,
                        other => other.to_string(),
                    };
                    tags.push((tk, text));
                }
            }
            "tag" => {
                let (tk, tv) = v.split_once(':').ok_or_else(|| {
                    ApiError::BadRequest(format!("malformed 'tag' parameter {v:?}: want key:value"))
                })?;
                tags.push((tk.to_string(), tv.to_string()));
            }
            _ => {}
        }
    }
    Ok(tags)
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn parse_micros(params: &[(String, String)], key: &str) -> ApiResult<Option<i64>> {
    get(params, key)
        .map(|v| {
            v.parse::<i64>()
                .map(|us| us.saturating_mul(1000))
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "malformed '{key}': want Unix microseconds, got {v:?}"
                    ))
                })
        })
        .transpose()
}

/// Builds the store query from Jaeger's search parameters.
pub fn trace_query(
    tenant: &str,
    params: &[(String, String)],
    max_limit: usize,
    now_ns: i64,
) -> ApiResult<TraceQuery> {
    // Jaeger requires a service; Triad also searches across services without one.
    let service = get(params, "service").unwrap_or_default().to_string();
    let order = match get(params, "order") {
        None | Some("recent") => TraceOrder::Recent,
        Some("slowest") => TraceOrder::Slowest,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "malformed 'order': {other:?}, want recent or slowest"
            )));
        }
    };
    let end_ns = parse_micros(params, "end")?.unwrap_or(now_ns);
    let start_ns = match parse_micros(params, "start")? {
        Some(s) => s,
        None => {
            let lookback = get(params, "lookback")
                .filter(|l| *l != "custom")
                .map(parse_go_duration_ns)
                .transpose()
                .map_err(ApiError::BadRequest)?
                .unwrap_or(DEFAULT_LOOKBACK_NS);
            end_ns.saturating_sub(lookback)
        }
    };
    let dur = |key: &str| -> ApiResult<Option<i64>> {
        get(params, key)
            .map(parse_go_duration_ns)
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("{key}: {e}")))
    };
    let limit = match get(params, "limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("malformed 'limit': {l:?}")))?,
        None => DEFAULT_LIMIT,
    };
    Ok(TraceQuery {
        tenant: tenant.to_string(),
        service,
        operation: get(params, "operation")
            .filter(|o| *o != "all")
            .map(str::to_string),
        tags: parse_tags(params)?,
        start_ns,
        end_ns,
        min_duration_ns: dur("minDuration")?,
        max_duration_ns: dur("maxDuration")?,
        limit: limit.clamp(1, max_limit),
        order,
    })
}

/// `GET /api/traces?service=&operation=&tags=&start=&end=&minDuration=&maxDuration=&limit=&order=`
/// (`service` optional and `order=recent|slowest` are Triad's additions)
pub async fn search(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let q = match trace_query(&tenant, &params, st.cfg.max_traces, triad_model::now_ns()) {
        Ok(q) => q,
        Err(e) => return e.into_jaeger(),
    };
    if let Err(r) = st.limits.check_range(&tenant, q.start_ns, q.end_ns) {
        return ApiError::BadRequest(r.message).into_jaeger();
    }
    let r = read(&st, move |t| {
        let (ids, mut warnings) = t.find_trace_ids_partial(&q)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let (spans, w) = t.trace_partial(&q.tenant, id)?;
            warnings.extend(w);
            if !spans.is_empty() {
                let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
                let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
                found.push((end - start, trace_json(id, &spans)));
            }
        }
        if q.order == TraceOrder::Slowest {
            // Several sources each gave their slowest: keep the slowest overall.
            found.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
            found.truncate(q.limit);
        }
        Ok((
            found.into_iter().map(|(_, j)| j).collect::<Vec<_>>(),
            warnings,
        ))
    })
    .await;
    jaeger(r, |(traces, warnings)| {
        let n = traces.len();
        partial_envelope(J::Array(traces), n, warnings)
    })
}

/// `GET /api/dependencies?endTs=&lookback=` (both in ms).
pub async fn dependencies(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let ms = |key: &str, default: i64| -> ApiResult<i64> {
        match get(&params, key) {
            Some(v) => v.parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!("malformed '{key}': want milliseconds, got {v:?}"))
            }),
            None => Ok(default),
        }
    };
    let end_ms = match ms("endTs", triad_model::now_ns() / 1_000_000) {
        Ok(v) => v,
        Err(e) => return e.into_jaeger(),
    };
    let lookback_ms = match ms("lookback", 86_400_000) {
        Ok(v) => v,
        Err(e) => return e.into_jaeger(),
    };
    let end_ns = end_ms.saturating_mul(1_000_000);
    let start_ns = end_ns.saturating_sub(lookback_ms.saturating_mul(1_000_000));
    let r = read(&st, move |t| t.dependencies(&tenant, start_ns, end_ns)).await;
    jaeger(r, |links| {
        let data: Vec<J> = links
            .iter()
            .map(|l| json!({"parent": l.parent, "child": l.child, "callCount": l.call_count}))
            .collect();
        let n = data.len();
        envelope(J::Array(data), n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn search_params() {
        let q = trace_query(
            "default",
            &p(&[
                ("service", "api"),
                ("operation", "GET /x"),
                ("tags", r#"{"http.status_code":"500","error":true}"#),
                ("tag", "region:eu"),
                ("start", "1000"),
                ("end", "2000"),
                ("minDuration", "1.5ms"),
                ("limit", "5000"),
            ]),
            100,
            0,
        )
        .unwrap();
        assert_eq!(q.service, "api");
        assert_eq!(q.operation.as_deref(), Some("GET /x"));
        assert_eq!(q.start_ns, 1_000_000);
        assert_eq!(q.end_ns, 2_000_000);
        assert_eq!(q.min_duration_ns, Some(1_500_000));
        assert_eq!(q.limit, 100);
        assert!(q.tags.contains(&("error".into(), "true".into())));
        assert!(q.tags.contains(&("region".into(), "eu".into())));
    }

    #[test]
    fn search_param_errors_are_clear() {
        let any = trace_query("default", &p(&[]), 10, 0).unwrap();
        assert_eq!(
            (any.service.as_str(), any.order),
            ("", TraceOrder::Recent),
            "any service"
        );
        let slow = trace_query("default", &p(&[("order", "slowest")]), 10, 0).unwrap();
        assert_eq!(slow.order, TraceOrder::Slowest);
        let e = trace_query("default", &p(&[("order", "fastest")]), 10, 0).unwrap_err();
        assert!(e.to_string().contains("order"), "{e}");
        let e = trace_query(
            "default",
            &p(&[("service", "a"), ("minDuration", "fast")]),
            10,
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("minDuration"), "{e}");
        let e =
            trace_query("default", &p(&[("service", "a"), ("tags", "{oops")]), 10, 0).unwrap_err();
        assert!(e.to_string().contains("tags"), "{e}");
        let q = trace_query(
            "default",
            &p(&[("service", "a"), ("lookback", "2h"), ("end", "7200000000")]),
            10,
            0,
        )
        .unwrap();
        assert_eq!(q.start_ns, 0);
    }
}
