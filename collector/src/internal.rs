//! The collector's internal read API, for query servers in object-storage mode: what
//! they cannot find in object storage yet — the active split, splits being uploaded,
//! and published splits they have not listed yet.
//!
//! Every request names the published splits the query server already reads
//! (`exclude`, IDs `node/split`), so the collector searches only its other splits and
//! each record is counted once. Requests are JSON `POST`s under `/internal/v1/` on the
//! collector's HTTP port; [`CollectorReader`] is the query server's side, a
//! `LogRead` + `TraceRead` that [`MergedLogs`](triad_model::store::MergedLogs) and
//! [`MergedTraces`](triad_model::store::MergedTraces) combine with the published view.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use triad_model::auth::{Principal, Role};
use triad_model::store::{
    DependencyLink, LogQuery, LogRead, LogSearchResult, Operation, StoreError, StoreResult,
    TailBatch, TraceQuery, TraceRead,
};
use triad_model::{Span, TraceId};
use triad_receiver::auth::{Access, ORG_ID_HEADER, Routes};
use triad_splits::log_index::{LogSignal, LogStore};
use triad_splits::metrics::StoreMetrics;
use triad_splits::split::Split;
use triad_splits::store::{Signal, Store};
use triad_splits::trace_store::{SpanSignal, TraceStore};

/// A request with the splits the asking query server already reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Excluding<T> {
    /// The request proper.
    pub request: T,
    /// What the asking query server reads already.
    #[serde(flatten)]
    pub listed: Listed,
}

/// What a query server reads already, as it tells a collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// Published split IDs (`node/split`) not to search: those published recently.
    pub exclude: Vec<String>,
    /// Per node, the latest publication time (ms, the node's clock) among the splits
    /// its last listing found. A node publishes its splits one after another, so every
    /// split it published up to then is read by the query server (or replaced by a
    /// merged split it reads): a collector skips its local copies published by then,
    /// whatever the exclusions say — which keeps a copy held past the grace period
    /// (the metastore away) from being counted twice.
    #[serde(default)]
    pub published_through: std::collections::BTreeMap<String, i64>,
}

/// A live tail request (tail reads new data, never excluded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TailRequest {
    /// Tenant.
    pub tenant: String,
    /// Query text.
    pub query: String,
    /// Where the last batch ended.
    pub cursor: Option<u64>,
    /// Most records.
    pub limit: usize,
}

/// A request for the values of an indexed log field (duplicates across sources are
/// harmless, so nothing is excluded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldValuesRequest {
    /// Tenant.
    pub tenant: String,
    /// One of `triad_model::store::LOG_VALUE_FIELDS`.
    pub field: String,
    /// Inclusive start, ns.
    pub start_ns: i64,
    /// Exclusive end, ns.
    pub end_ns: i64,
    /// Most values.
    pub limit: usize,
}

/// What the trace requests carry besides the exclusions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TraceRequest {
    /// Services of a tenant.
    Services {
        /// Tenant.
        tenant: String,
    },
    /// Operations of a service.
    Operations {
        /// Tenant.
        tenant: String,
        /// Service.
        service: String,
    },
    /// The spans of a trace.
    Trace {
        /// Tenant.
        tenant: String,
        /// Trace.
        trace_id: TraceId,
    },
    /// Trace search.
    Find(TraceQuery),
    /// Attribute keys, or one key's values.
    Tags {
        /// Tenant.
        tenant: String,
        /// The key whose values are asked; `None` for the keys.
        key: Option<String>,
        /// Window start, ns.
        start_ns: i64,
        /// Window end, ns.
        end_ns: i64,
        /// At most this many.
        limit: usize,
    },
    /// Call counts between services.
    Dependencies {
        /// Tenant.
        tenant: String,
        /// Window start, ns.
        start_ns: i64,
        /// Window end, ns.
        end_ns: i64,
    },
}

impl TraceRequest {
    /// The tenant asked for.
    pub fn tenant(&self) -> &str {
        match self {
            TraceRequest::Services { tenant }
            | TraceRequest::Operations { tenant, .. }
            | TraceRequest::Trace { tenant, .. }
            | TraceRequest::Tags { tenant, .. }
            | TraceRequest::Dependencies { tenant, .. } => tenant,
            TraceRequest::Find(q) => &q.tenant,
        }
    }

    fn set_tenant(&mut self, t: String) {
        match self {
            TraceRequest::Services { tenant }
            | TraceRequest::Operations { tenant, .. }
            | TraceRequest::Trace { tenant, .. }
            | TraceRequest::Tags { tenant, .. }
            | TraceRequest::Dependencies { tenant, .. } => *tenant = t,
            TraceRequest::Find(q) => q.tenant = t,
        }
    }
}

/// Answers to [`TraceRequest`]s, in the same order of variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TraceAnswer {
    /// Services.
    Services(Vec<String>),
    /// Operations.
    Operations(Vec<Operation>),
    /// Spans.
    Trace(Vec<Span>),
    /// Trace IDs, most recent first.
    Find(Vec<TraceId>),
    /// Call counts.
    Dependencies(Vec<DependencyLink>),
    /// Attribute keys or values, sorted.
    Tags(Vec<String>),
}

/// What the handlers read.
#[derive(Clone)]
pub struct InternalState {
    /// The collector's log store.
    pub logs: Arc<LogStore>,
    /// The collector's trace store.
    pub traces: Arc<TraceStore>,
    /// The collector's node ID.
    pub node_id: String,
}

impl InternalState {
    fn splits<S: Signal>(&self, store: &Store<S>, listed: &Listed) -> Vec<Arc<Split>> {
        let prefix = format!("{}/", self.node_id);
        let through = listed.published_through.get(&self.node_id).copied();
        store
            .splits()
            .into_iter()
            .filter(|s| {
                let excluded = listed
                    .exclude
                    .iter()
                    .any(|e| e.strip_prefix(&prefix) == Some(&s.id));
                let listed_already = through.is_some_and(|through| {
                    s.local_dir()
                        .and_then(triad_storage::bundle::published_at)
                        .is_some_and(|at| at <= through)
                });
                !excluded && !listed_already
            })
            .collect()
    }
}

fn answer<T: Serialize>(r: StoreResult<T>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(StoreError::InvalidQuery(e)) => (StatusCode::BAD_REQUEST, e).into_response(),
        Err(StoreError::Internal(e)) => {
            tracing::error!(error = %e, "internal read failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "storage error").into_response()
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Internal(format!("read task: {e}"))))
}

// Every handler reads for the caller's tenant — the token's, or the one a trusted
// token (a query server's) names in `X-Scope-OrgID` — whatever the body says.

async fn log_search(
    State(st): State<InternalState>,
    Extension(caller): Extension<Principal>,
    Json(mut req): Json<Excluding<LogQuery>>,
) -> Response {
    req.request.tenant = caller.tenant;
    answer(
        blocking(move || {
            let splits = st.splits(st.logs.store(), &req.listed);
            let view = Store::from_splits(
                LogSignal::new(),
                Default::default(),
                StoreMetrics::unregistered(),
                splits,
            );
            LogStore::new(view).search(&req.request)
        })
        .await,
    )
}

async fn log_tail(
    State(st): State<InternalState>,
    Extension(caller): Extension<Principal>,
    Json(mut req): Json<TailRequest>,
) -> Response {
    req.tenant = caller.tenant;
    answer(blocking(move || st.logs.tail(&req.tenant, &req.query, req.cursor, req.limit)).await)
}

async fn log_field_values(
    State(st): State<InternalState>,
    Extension(caller): Extension<Principal>,
    Json(mut req): Json<FieldValuesRequest>,
) -> Response {
    req.tenant = caller.tenant;
    answer(
        blocking(move || {
            st.logs
                .field_values(&req.tenant, &req.field, req.start_ns, req.end_ns, req.limit)
        })
        .await,
    )
}

async fn traces(
    State(st): State<InternalState>,
    Extension(caller): Extension<Principal>,
    Json(mut req): Json<Excluding<TraceRequest>>,
) -> Response {
    req.request.set_tenant(caller.tenant);
    answer(
        blocking(move || {
            // The catalog (services, operations) is the collector's own; the rest reads
            // only the splits the query server does not.
            let view = || {
                TraceStore::without_catalog(Store::from_splits(
                    SpanSignal::new(),
                    Default::default(),
                    StoreMetrics::unregistered(),
                    st.splits(st.traces.store(), &req.listed),
                ))
            };
            Ok(match req.request {
                TraceRequest::Services { tenant } => {
                    TraceAnswer::Services(st.traces.services(&tenant)?)
                }
                TraceRequest::Operations { tenant, service } => {
                    TraceAnswer::Operations(st.traces.operations(&tenant, &service)?)
                }
                TraceRequest::Trace { tenant, trace_id } => {
                    TraceAnswer::Trace(view().trace(&tenant, trace_id)?)
                }
                TraceRequest::Find(q) => TraceAnswer::Find(view().find_trace_ids(&q)?),
                TraceRequest::Tags {
                    tenant,
                    key,
                    start_ns,
                    end_ns,
                    limit,
                } => TraceAnswer::Tags(view().tag_values(
                    &tenant,
                    key.as_deref(),
                    start_ns,
                    end_ns,
                    limit,
                )?),
                TraceRequest::Dependencies {
                    tenant,
                    start_ns,
                    end_ns,
                } => TraceAnswer::Dependencies(view().dependencies(&tenant, start_ns, end_ns)?),
            })
        })
        .await,
    )
}

/// The routes under `/internal/v1/` (the `read` role; a query server's token is a
/// trusted one, naming the tenant of each call).
pub fn router(state: InternalState) -> Routes {
    use axum::routing::post;
    let read = Access::Role(Role::Read);
    Routes::new()
        .route("/internal/v1/logs/search", read, post(log_search))
        .route("/internal/v1/logs/tail", read, post(log_tail))
        .route("/internal/v1/logs/values", read, post(log_field_values))
        .route("/internal/v1/traces", read, post(traces))
        .with_state(state)
}

/// What a query server already reads, asked for at each request.
pub type Exclusions = Arc<dyn Fn() -> Listed + Send + Sync>;

/// A collector's unpublished data, read over its internal API (the query server's
/// side). Calls block on the runtime, as the query engine's store calls do.
pub struct CollectorReader {
    base: String,
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
    exclude: Exclusions,
}

impl CollectorReader {
    /// A reader of the collector at `base` (`http://collector:4318`); must be created
    /// inside the Tokio runtime it will use.
    pub fn new(
        base: &str,
        timeout: std::time::Duration,
        exclude: Exclusions,
    ) -> Result<CollectorReader, String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "a collector reader needs the Tokio runtime".to_string())?;
        let client = triad_receiver::client::http_client(timeout)?;
        Ok(CollectorReader {
            base: base.trim_end_matches('/').to_string(),
            client,
            handle,
            exclude,
        })
    }

    /// Where it reads.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        tenant: &str,
        body: &B,
    ) -> StoreResult<T> {
        let url = format!("{}{path}", self.base);
        let body = serde_json::to_vec(body)
            .map_err(|e| StoreError::Internal(format!("{url}: request: {e}")))?;
        let send = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ORG_ID_HEADER, tenant)
            .body(body)
            .send();
        let fetched = async {
            let resp = send
                .await
                .map_err(|e| StoreError::Internal(format!("{url}: {e}")))?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| StoreError::Internal(format!("{url}: {e}")))?;
            if status == reqwest::StatusCode::BAD_REQUEST {
                return Err(StoreError::InvalidQuery(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
            if !status.is_success() {
                return Err(StoreError::Internal(format!(
                    "{url}: HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                )));
            }
            serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Internal(format!("{url}: answer: {e}")))
        };
        crate::wait(&self.handle, fetched)
    }

    fn traces(&self, request: TraceRequest) -> StoreResult<TraceAnswer> {
        let tenant = request.tenant().to_string();
        self.post(
            "/internal/v1/traces",
            &tenant,
            &Excluding {
                request,
                listed: (self.exclude)(),
            },
        )
    }
}

fn unexpected<T>(a: TraceAnswer) -> StoreResult<T> {
    Err(StoreError::Internal(format!(
        "collector answered another question: {a:?}"
    )))
}

impl LogRead for CollectorReader {
    fn field_values(
        &self,
        tenant: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.post(
            "/internal/v1/logs/values",
            tenant,
            &FieldValuesRequest {
                tenant: tenant.to_string(),
                field: field.to_string(),
                start_ns,
                end_ns,
                limit,
            },
        )
    }

    fn search(&self, q: &LogQuery) -> StoreResult<LogSearchResult> {
        self.post(
            "/internal/v1/logs/search",
            &q.tenant,
            &Excluding {
                request: q.clone(),
                listed: (self.exclude)(),
            },
        )
    }

    fn tail(
        &self,
        tenant: &str,
        query: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<TailBatch> {
        self.post(
            "/internal/v1/logs/tail",
            tenant,
            &TailRequest {
                tenant: tenant.to_string(),
                query: query.to_string(),
                cursor,
                limit,
            },
        )
    }
}

impl TraceRead for CollectorReader {
    fn tag_values(
        &self,
        tenant: &str,
        key: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        match self.traces(TraceRequest::Tags {
            tenant: tenant.to_string(),
            key: key.map(str::to_string),
            start_ns,
            end_ns,
            limit,
        })? {
            TraceAnswer::Tags(v) => Ok(v),
            a => unexpected(a),
        }
    }

    fn services(&self, tenant: &str) -> StoreResult<Vec<String>> {
        match self.traces(TraceRequest::Services {
            tenant: tenant.to_string(),
        })? {
            TraceAnswer::Services(v) => Ok(v),
            a => unexpected(a),
        }
    }

    fn operations(&self, tenant: &str, service: &str) -> StoreResult<Vec<Operation>> {
        match self.traces(TraceRequest::Operations {
            tenant: tenant.to_string(),
            service: service.to_string(),
        })? {
            TraceAnswer::Operations(v) => Ok(v),
            a => unexpected(a),
        }
    }

    fn trace(&self, tenant: &str, trace_id: TraceId) -> StoreResult<Vec<Span>> {
        match self.traces(TraceRequest::Trace {
            tenant: tenant.to_string(),
            trace_id,
        })? {
            TraceAnswer::Trace(v) => Ok(v),
            a => unexpected(a),
        }
    }

    fn find_trace_ids(&self, q: &TraceQuery) -> StoreResult<Vec<TraceId>> {
        match self.traces(TraceRequest::Find(q.clone()))? {
            TraceAnswer::Find(v) => Ok(v),
            a => unexpected(a),
        }
    }

    fn dependencies(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> StoreResult<Vec<DependencyLink>> {
        match self.traces(TraceRequest::Dependencies {
            tenant: tenant.to_string(),
            start_ns,
            end_ns,
        })? {
            TraceAnswer::Dependencies(v) => Ok(v),
            a => unexpected(a),
        }
    }
}
