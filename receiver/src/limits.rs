//! Per-tenant limits shared by a process's servers: the ingest rate (a token bucket per
//! tenant), concurrent queries and live tails (counted per tenant), the query range and
//! the shape of metric series. Every refusal is counted by limit and tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use triad_model::config::{EffectiveLimits, LimitsConfig};

/// Labels of the refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The configuration key of the limit, e.g. `ingest_rate`.
    pub limit: &'static str,
    /// The tenant refused.
    pub tenant: String,
}

triad_model::metric_set! {
    /// Limit counters.
    pub struct LimitMetrics in "triad_limits" {
        /// Requests (or, for series shape and ingest, items) refused by a limit.
        pub refused: Family<LimitLabels, Counter>,
    }
}

/// Why a request was refused by a limit: the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// For the client.
    pub message: String,
    /// When to try again, for the limits that pass (rate, concurrency).
    pub retry_after: Option<Duration>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A process's limits.
pub struct Limits {
    cfg: LimitsConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
    queries: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    tails: Mutex<HashMap<String, usize>>,
    metrics: LimitMetrics,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("cfg", &self.cfg).finish()
    }
}

/// Holds one of a tenant's live tails; released when dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    tenant: String,
}

/// Holds one of a tenant's concurrent queries; released when dropped.
pub type QuerySlot = tokio::sync::OwnedSemaphorePermit;

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.limits.tails.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.tenant);
            }
        }
    }
}

impl Limits {
    /// Limits from configuration.
    pub fn new(cfg: LimitsConfig, metrics: LimitMetrics) -> Arc<Limits> {
        Arc::new(Limits {
            cfg,
            buckets: Mutex::new(HashMap::new()),
            queries: Mutex::new(HashMap::new()),
            tails: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The defaults, counted nowhere (tests, the agent's own receivers).
    pub fn defaults() -> Arc<Limits> {
        Limits::new(LimitsConfig::default(), LimitMetrics::unregistered())
    }

    /// The limits of `tenant`.
    pub fn of(&self, tenant: &str) -> EffectiveLimits {
        self.cfg.for_tenant(tenant)
    }

    /// The `limits` section these come from.
    pub fn config(&self) -> &LimitsConfig {
        &self.cfg
    }

    /// Counts `n` refusals of `limit` for `tenant`.
    pub fn count(&self, limit: &'static str, tenant: &str, n: u64) {
        self.metrics
            .refused
            .get_or_create(&LimitLabels {
                limit,
                tenant: tenant.to_string(),
            })
            .inc_by(n);
    }

    /// Takes `items` from the tenant's ingest budget. A request larger than the bucket
    /// passes when the bucket is full (and leaves it in debt), so no request is refused
    /// for ever.
    pub fn admit_ingest(&self, tenant: &str, items: u64) -> Result<(), Refused> {
        let l = self.of(tenant);
        if l.ingest_rate == 0 || items == 0 {
            return Ok(());
        }
        let (rate, cap) = (l.ingest_rate as f64, l.ingest_burst.max(1) as f64);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(tenant.to_string()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(cap);
        b.at = now;
        let need = (items as f64).min(cap);
        if b.tokens >= need {
            b.tokens -= items as f64;
            return Ok(());
        }
        let wait = ((need - b.tokens) / rate).max(0.001);
        drop(buckets);
        self.count("ingest_rate", tenant, items);
        Err(Refused {
            message: format!(
                "tenant {tenant:?} sends more than its ingest rate of {} items/s \
                 (limits.ingest_rate, burst {}): retry later",
                l.ingest_rate, l.ingest_burst
            ),
            retry_after: Some(Duration::from_secs_f64(wait)),
        })
    }

    /// Checks a query's time range (ns).
    pub fn check_range(&self, tenant: &str, start_ns: i64, end_ns: i64) -> Result<(), Refused> {
        let max = self.of(tenant).max_query_range_secs;
        let range = end_ns.saturating_sub(start_ns);
        if max == 0 || range <= (max as i64).saturating_mul(1_000_000_000) {
            return Ok(());
        }
        self.count("max_query_range_secs", tenant, 1);
        Err(Refused {
            message: format!(
                "the query covers {}s, more than the {max}s allowed (limits.max_query_range_secs): \
                 narrow the time range",
                range / 1_000_000_000
            ),
            retry_after: None,
        })
    }

    /// One of the tenant's concurrent queries, while the permit lives: waits for one
    /// up to `limits.query_queue_secs`, as Prometheus queues its queries.
    pub async fn query_slot(&self, tenant: &str) -> Result<QuerySlot, Refused> {
        let max = self.of(tenant).max_concurrent_queries;
        let sem = {
            let mut m = self.queries.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(tenant.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max)))
                .clone()
        };
        let wait = Duration::from_secs(self.cfg.query_queue_secs);
        if let Ok(Ok(p)) = tokio::time::timeout(wait, sem.acquire_owned()).await {
            return Ok(p);
        }
        self.count("max_concurrent_queries", tenant, 1);
        Err(Refused {
            message: format!(
                "tenant {tenant:?} had {max} queries running for {}s \
                 (limits.max_concurrent_queries, limits.query_queue_secs)",
                wait.as_secs()
            ),
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    /// One of the tenant's live tails, while the slot lives.
    pub fn tail_slot(self: &Arc<Self>, tenant: &str) -> Result<Slot, Refused> {
        let max = self.of(tenant).max_tail_streams;
        {
            let mut m = self.tails.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(tenant.to_string()).or_default();
            if *n < max {
                *n += 1;
                return Ok(Slot {
                    limits: Arc::clone(self),
                    tenant: tenant.to_string(),
                });
            }
        }
        self.count("max_tail_streams", tenant, 1);
        Err(Refused {
            message: format!(
                "tenant {tenant:?} already has {max} live tails open (limits.max_tail_streams)"
            ),
            retry_after: Some(Duration::from_secs(1)),
        })
    }
}

/// The answer to a request refused by a limit: 429 with `Retry-After` for the limits that
/// pass, 400 for the others; a JSON body in the Prometheus API's error shape.
pub fn refusal(r: &Refused) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let status = if r.retry_after.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = serde_json::json!({"status": "error", "errorType": "limit", "error": r.message});
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(d) = r.retry_after {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(d.as_secs_f64().ceil().max(1.0) as u64),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_model::config::TenantLimits;

    #[test]
    fn ingest_rate_is_a_token_bucket_per_tenant() {
        let mut cfg = LimitsConfig {
            ingest_rate: 100,
            ingest_burst: 200,
            ..Default::default()
        };
        cfg.tenants.insert(
            "big".into(),
            TenantLimits {
                ingest_rate: Some(1_000_000),
                ..Default::default()
            },
        );
        let l = Limits::new(cfg, LimitMetrics::unregistered());
        l.admit_ingest("a", 150).unwrap();
        let e = l.admit_ingest("a", 100).unwrap_err();
        assert!(e.message.contains("limits.ingest_rate"), "{}", e.message);
        let wait = e.retry_after.unwrap();
        assert!(
            wait > Duration::from_millis(400) && wait < Duration::from_millis(600),
            "{wait:?}"
        );
        // Another tenant has its own bucket; an override raises it.
        l.admit_ingest("b", 200).unwrap();
        l.admit_ingest("big", 500_000).unwrap();
        // A request larger than the bucket passes once the bucket is full.
        let fresh = Limits::new(
            LimitsConfig {
                ingest_rate: 10,
                ..Default::default()
            },
            LimitMetrics::unregistered(),
        );
        fresh.admit_ingest("a", 1000).unwrap();
        assert!(fresh.admit_ingest("a", 1).is_err());
    }

    #[tokio::test]
    async fn slots_are_counted_and_released() {
        let l = Limits::new(
            LimitsConfig {
                max_concurrent_queries: 2,
                max_tail_streams: 1,
                query_queue_secs: 0,
                ..Default::default()
            },
            LimitMetrics::unregistered(),
        );
        let a = l.query_slot("t").await.unwrap();
        let _b = l.query_slot("t").await.unwrap();
        assert!(l.query_slot("t").await.is_err());
        assert!(l.query_slot("u").await.is_ok());
        drop(a);
        assert!(l.query_slot("t").await.is_ok());
        let tail = l.tail_slot("t").unwrap();
        assert!(
            l.tail_slot("t")
                .unwrap_err()
                .message
                .contains("limits.max_tail_streams")
        );
        drop(tail);
        l.tail_slot("t").unwrap();
    }

    #[test]
    fn query_range() {
        let l = Limits::new(
            LimitsConfig {
                max_query_range_secs: 3600,
                ..Default::default()
            },
            LimitMetrics::unregistered(),
        );
        l.check_range("t", 0, 3_600_000_000_000).unwrap();
        let e = l.check_range("t", 0, 3_601_000_000_000).unwrap_err();
        assert!(e.retry_after.is_none() && e.message.contains("max_query_range_secs"));
    }
}
