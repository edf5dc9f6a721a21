//! The Triad query server: Jaeger-compatible trace API, log search and live tail,
//! `/metrics`, `/healthz`, `/readyz`.
//!
//! It reads storage only through `triad_model::store` traits, so the same router serves
//! stores in the same process (all-in-one) or opened read-only beside a collector.
//! [`app`] builds the router; tests call it with `oneshot` and no network.

pub mod alert;
pub mod correlate;
pub mod error;
pub mod jaeger;
pub mod logql;
pub mod logs;
pub mod loki;
pub mod metrics;
pub mod prom_api;
pub mod session;
pub mod tempo;
pub mod time;
pub mod trace_view;
pub mod traceql;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use triad_model::auth::Role;
use triad_model::config::QueryConfig;
use triad_model::store::{LogRead, MetricRead, TraceRead};
use triad_receiver::auth::{Access, Routes};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Log storage.
    pub logs: Arc<dyn LogRead>,
    /// Trace storage.
    pub traces: Arc<dyn TraceRead>,
    /// Metric storage; `None` where this server has none (the Prometheus API then
    /// answers `unavailable`).
    pub metrics: Option<Arc<dyn MetricRead>>,
    /// The alert engine, where this server runs one (the all-in-one server).
    pub alerting: Option<Arc<alert::Alerting>>,
    /// With several processes sharing a metastore: the alert state of the one that
    /// evaluates rules (`None` where this process is the only one, or there is none).
    pub remote_alerting: Option<Arc<alert::remote::RemoteAlerting>>,
    /// Silences (Alertmanager's API): the alert engine's, or on a query server apart
    /// from it the ones in the shared metastore; `None` where there are none.
    pub silences: Option<Arc<alert::silence::Silences>>,
    /// URL users reach the UI under; links in API answers start with it.
    pub external_url: String,
    /// Query server settings.
    pub cfg: QueryConfig,
    /// Registry rendered on `/metrics` (the whole process's metrics).
    pub registry: Arc<Registry>,
    /// Readiness of the storage behind the server.
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Fires at shutdown; ends live tails so the server can drain.
    pub cancel: CancellationToken,
    /// The web UI's files ([`ui::no_ui`] for none).
    pub ui: ui::UiAssets,
    /// Traces the trace page read recently ([`trace_view`]).
    pub trace_cache: Arc<trace_view::TraceCache>,
    /// The tenants alerting works for (`alerting.tenant` and `alerting.tenants`): each
    /// sees its own rules, alerts and silences.
    pub alert_tenants: Arc<std::collections::BTreeSet<String>>,
    /// The authentication gate of the server's routes (the UI signs in through it).
    pub gate: triad_receiver::auth::Gate,
    /// The tenants' limits: query range, concurrent queries, live tails.
    pub limits: Arc<triad_receiver::limits::Limits>,
}

impl AppState {
    /// The PromQL engine's limits for `tenant`: `query.max_samples` and
    /// `query.query_timeout_secs`, or the tenant's own in `limits.tenants`.
    pub fn query_limits(&self, tenant: &str) -> triad_promql::Limits {
        let mut l = triad_promql::Limits::from_config(&self.cfg);
        let t = self.limits.of(tenant);
        if let Some(n) = t.max_query_samples {
            l.max_samples = n;
        }
        if let Some(secs) = t.query_timeout_secs {
            l.timeout = std::time::Duration::from_secs(secs);
        }
        l
    }
}

/// The tenant of a request: the one the gate authenticated (the token's, or the one a
/// trusted token named); without authentication, the default tenant. Every store read
/// of a handler goes through it.
pub struct Tenant(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Tenant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<triad_model::auth::Principal>() {
            Some(p) => Ok(Tenant(p.tenant.clone())),
            // A route declared open that reads data: a bug, refused rather than served
            // from some tenant.
            None => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "no tenant for this route",
            )
                .into_response()),
        }
    }
}

/// The state of a request scoped to its tenant: the handlers that pass state on to
/// helpers pass this, so the tenant cannot be left behind.
#[derive(Clone)]
pub struct Scoped {
    /// The shared state.
    pub st: AppState,
    /// The request's tenant.
    pub tenant: String,
}

impl std::ops::Deref for Scoped {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.st
    }
}

impl axum::extract::FromRequestParts<AppState> for Scoped {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Tenant(tenant) = Tenant::from_request_parts(parts, state).await?;
        Ok(Scoped {
            st: state.clone(),
            tenant,
        })
    }
}

fn render_metrics(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The query server's router: every route with its access rule behind the gate, the
/// web UI's files as the (open) fallback, request metrics around everything.
pub fn app(state: AppState, metrics: metrics::QueryMetrics) -> Router {
    let gate = state.gate.clone();
    let ui_state = state.clone();
    let limits = state.limits.clone();
    routes()
        // Inside the gate: the caller is known.
        .map_router(|r| {
            r.route_layer(axum::middleware::from_fn_with_state(
                limits,
                concurrent_queries,
            ))
        })
        .with_state(state)
        .into_router(gate)
        .fallback(move |uri: axum::http::Uri| ui::serve(axum::extract::State(ui_state), uri))
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
}

/// Holds one of the caller's concurrent queries while a request runs, waiting for one
/// when all are taken (`limits.max_concurrent_queries`, `limits.query_queue_secs`);
/// live tails have their own limit.
async fn concurrent_queries(
    axum::extract::State(limits): axum::extract::State<Arc<triad_receiver::limits::Limits>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let tail = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|p| p.as_str().ends_with("/tail"));
    let tenant = req
        .extensions()
        .get::<triad_model::auth::Principal>()
        .map(|p| p.tenant.clone());
    let Some(tenant) = tenant.filter(|_| !tail) else {
        return next.run(req).await;
    };
    match limits.query_slot(&tenant).await {
        Ok(_slot) => next.run(req).await,
        Err(r) => triad_receiver::limits::refusal(&r),
    }
}

/// Every route of the query server with who may use it: `read` for queries and the UI's
/// APIs, `admin` for what changes alerting or shows its configuration.
pub fn routes() -> Routes<AppState> {
    use axum::http::Method;
    let read = Access::Role(Role::Read);
    let admin = Access::Role(Role::Admin);
    Routes::new()
        .route("/api/services", read, get(jaeger::services))
        .route(
            "/api/services/{service}/operations",
            read,
            get(jaeger::service_operations),
        )
        .route("/api/operations", read, get(jaeger::operations))
        .route("/api/traces", read, get(jaeger::search))
        .route("/api/traces/{id}", read, get(jaeger::trace))
        .route("/api/traces/{id}/rows", read, get(trace_view::rows))
        .route("/api/traces/{id}/spans/{span}", read, get(trace_view::span))
        .route("/api/traces/{id}/find", read, get(trace_view::find))
        .route("/api/v2/traces/{id}", read, get(tempo::trace_v2))
        .route("/api/echo", read, get(tempo::echo))
        .route("/api/search", read, get(tempo::search))
        .route("/api/search/tags", read, get(tempo::search_tags))
        .route("/api/v2/search/tags", read, get(tempo::search_tags_v2))
        .route("/api/search/tag/{tag}/values", read, get(tempo::tag_values))
        .route(
            "/api/v2/search/tag/{tag}/values",
            read,
            get(tempo::tag_values_v2),
        )
        .route("/api/status/buildinfo", read, get(tempo::buildinfo))
        .route("/api/dependencies", read, get(jaeger::dependencies))
        .route("/api/logs/search", read, get(logs::search))
        .route(
            "/api/v1/query",
            read,
            get(prom_api::query).post(prom_api::query),
        )
        .route(
            "/api/v1/query_range",
            read,
            get(prom_api::query_range).post(prom_api::query_range),
        )
        .route(
            "/api/v1/series",
            read,
            get(prom_api::series).post(prom_api::series),
        )
        .route(
            "/api/v1/labels",
            read,
            get(prom_api::labels).post(prom_api::labels),
        )
        .route(
            "/api/v1/label/{name}/values",
            read,
            get(prom_api::label_values),
        )
        .route("/api/v1/metadata", read, get(prom_api::metadata))
        .route(
            "/api/v1/query_exemplars",
            read,
            get(prom_api::query_exemplars).post(prom_api::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", read, get(prom_api::buildinfo))
        .route(
            "/api/v1/rules",
            read,
            get(alert::api::rules).post(alert::api::rules),
        )
        .route("/api/v1/alerts", read, get(alert::api::alerts))
        .route_methods(
            "/api/v2/alerts",
            &[Method::GET],
            read,
            get(alert::am::get_alerts),
        )
        .route_methods(
            "/api/v2/alerts",
            &[Method::POST],
            admin,
            axum::routing::post(alert::am::post_alerts),
        )
        .route("/api/v2/alerts/groups", read, get(alert::am::get_groups))
        .route("/api/v2/receivers", read, get(alert::am::get_receivers))
        // Holds the alerting configuration (receivers' URLs).
        .route("/api/v2/status", admin, get(alert::am::get_status))
        .route_methods(
            "/api/v2/silences",
            &[Method::GET],
            read,
            get(alert::api::list_silences),
        )
        .route_methods(
            "/api/v2/silences",
            &[Method::POST],
            admin,
            axum::routing::post(alert::api::post_silence),
        )
        .route_methods(
            "/api/v2/silence/{id}",
            &[Method::GET],
            read,
            get(alert::api::get_silence),
        )
        .route_methods(
            "/api/v2/silence/{id}",
            &[Method::DELETE],
            admin,
            axum::routing::delete(alert::api::delete_silence),
        )
        .route("/api/correlate/{trace_id}", read, get(correlate::correlate))
        .route("/api/alerts", read, get(alert::api::active_alerts))
        .route(
            "/api/alerts/{fingerprint}/evidence",
            read,
            get(alert::api::alert_evidence),
        )
        .route("/api/logs/tail", read, get(logs::tail))
        .route(
            "/loki/api/v1/query",
            read,
            get(loki::query).post(loki::query),
        )
        .route(
            "/loki/api/v1/query_range",
            read,
            get(loki::query_range).post(loki::query_range),
        )
        .route(
            "/loki/api/v1/labels",
            read,
            get(loki::labels).post(loki::labels),
        )
        .route(
            "/loki/api/v1/label/{name}/values",
            read,
            get(loki::label_values),
        )
        .route(
            "/loki/api/v1/series",
            read,
            get(loki::series).post(loki::series),
        )
        .route("/loki/api/v1/index/stats", read, get(loki::index_stats))
        .route("/loki/api/v1/index/volume", read, get(loki::index_volume))
        .route(
            "/loki/api/v1/index/volume_range",
            read,
            get(loki::index_volume_range),
        )
        .route(
            "/loki/api/v1/detected_fields",
            read,
            get(loki::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_labels",
            read,
            get(loki::detected_labels),
        )
        .route("/loki/api/v1/tail", read, get(loki::tail))
        .route("/loki/api/v1/status/buildinfo", read, get(loki::buildinfo))
        .route("/api/logs/context", read, get(logs::context))
        .route_methods("/api/session", &[Method::GET], read, get(session::current))
        .route_methods(
            "/api/session",
            &[Method::POST, Method::DELETE],
            Access::Open,
            axum::routing::post(session::sign_in).delete(session::sign_out),
        )
        .route(
            "/metrics",
            Access::Metrics,
            get(
                |axum::extract::State(s): axum::extract::State<AppState>| async move {
                    render_metrics(&s.registry)
                },
            ),
        )
        .route("/healthz", Access::Open, get(|| async { "ok" }))
        .route(
            "/readyz",
            Access::Open,
            get(
                |axum::extract::State(s): axum::extract::State<AppState>| async move {
                    if (s.ready)() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                },
            ),
        )
}
