//! The query server's own telemetry.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Labels of HTTP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route pattern, e.g. `/api/traces/{id}`.
    pub route: String,
    /// HTTP status code.
    pub code: u16,
}

triad_model::metric_set! {
    /// HTTP request metrics of the query server.
    pub struct QueryMetrics in "triad_query" {
        /// HTTP requests by route and status.
        pub requests as "http_requests": Family<RouteLabels, Counter>,
        /// HTTP request latency by route and status.
        pub seconds as "http_request_seconds": Family<RouteLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.5, 14))),
    }
}

/// Middleware that counts and times every request.
pub async fn track(State(m): State<QueryMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    let labels = RouteLabels {
        route,
        code: resp.status().as_u16(),
    };
    m.requests.get_or_create(&labels).inc();
    m.seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    resp
}
