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
use triad_model::config::QueryConfig;
use triad_model::store::{LogRead, MetricRead, TraceRead};

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

/// The query server's router.
pub fn app(state: AppState, metrics: metrics::QueryMetrics) -> Router {
    Router::new()
        .route("/api/services", get(jaeger::services))
        .route(
            "/api/services/{service}/operations",
            get(jaeger::service_operations),
        )
        .route("/api/operations", get(jaeger::operations))
        .route("/api/traces", get(jaeger::search))
        .route("/api/traces/{id}", get(jaeger::trace))
        .route("/api/traces/{id}/rows", get(trace_view::rows))
        .route("/api/traces/{id}/spans/{span}", get(trace_view::span))
        .route("/api/traces/{id}/find", get(trace_view::find))
        .route("/api/v2/traces/{id}", get(tempo::trace_v2))
        .route("/api/echo", get(tempo::echo))
        .route("/api/search", get(tempo::search))
        .route("/api/search/tags", get(tempo::search_tags))
        .route("/api/v2/search/tags", get(tempo::search_tags_v2))
        .route("/api/search/tag/{tag}/values", get(tempo::tag_values))
        .route("/api/v2/search/tag/{tag}/values", get(tempo::tag_values_v2))
        .route("/api/status/buildinfo", get(tempo::buildinfo))
        .route("/api/dependencies", get(jaeger::dependencies))
        .route("/api/logs/search", get(logs::search))
        .route("/api/v1/query", get(prom_api::query).post(prom_api::query))
        .route(
            "/api/v1/query_range",
            get(prom_api::query_range).post(prom_api::query_range),
        )
        .route(
            "/api/v1/series",
            get(prom_api::series).post(prom_api::series),
        )
        .route(
            "/api/v1/labels",
            get(prom_api::labels).post(prom_api::labels),
        )
        .route("/api/v1/label/{name}/values", get(prom_api::label_values))
        .route("/api/v1/metadata", get(prom_api::metadata))
        .route(
            "/api/v1/query_exemplars",
            get(prom_api::query_exemplars).post(prom_api::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(prom_api::buildinfo))
        .route(
            "/api/v1/rules",
            get(alert::api::rules).post(alert::api::rules),
        )
        .route("/api/v1/alerts", get(alert::api::alerts))
        .route(
            "/api/v2/alerts",
            get(alert::am::get_alerts).post(alert::am::post_alerts),
        )
        .route("/api/v2/alerts/groups", get(alert::am::get_groups))
        .route("/api/v2/receivers", get(alert::am::get_receivers))
        .route("/api/v2/status", get(alert::am::get_status))
        .route(
            "/api/v2/silences",
            get(alert::api::list_silences).post(alert::api::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alert::api::get_silence).delete(alert::api::delete_silence),
        )
        .route("/api/correlate/{trace_id}", get(correlate::correlate))
        .route("/api/alerts", get(alert::api::active_alerts))
        .route(
            "/api/alerts/{fingerprint}/evidence",
            get(alert::api::alert_evidence),
        )
        .route("/api/logs/tail", get(logs::tail))
        .route("/loki/api/v1/query", get(loki::query).post(loki::query))
        .route(
            "/loki/api/v1/query_range",
            get(loki::query_range).post(loki::query_range),
        )
        .route("/loki/api/v1/labels", get(loki::labels).post(loki::labels))
        .route("/loki/api/v1/label/{name}/values", get(loki::label_values))
        .route("/loki/api/v1/series", get(loki::series).post(loki::series))
        .route("/loki/api/v1/index/stats", get(loki::index_stats))
        .route("/loki/api/v1/index/volume", get(loki::index_volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(loki::index_volume_range),
        )
        .route("/loki/api/v1/detected_fields", get(loki::detected_fields))
        .route("/loki/api/v1/detected_labels", get(loki::detected_labels))
        .route("/loki/api/v1/tail", get(loki::tail))
        .route("/loki/api/v1/status/buildinfo", get(loki::buildinfo))
        .route("/api/logs/context", get(logs::context))
        .route(
            "/metrics",
            get(
                |axum::extract::State(s): axum::extract::State<AppState>| async move {
                    render_metrics(&s.registry)
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
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
        .fallback(ui::serve)
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .with_state(state)
}
