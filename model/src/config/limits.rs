//! The `limits` section: what one tenant may cost, and what one request may hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, range};

/// Limits. The per-tenant ones are defaults here, overridden for a tenant under
/// `tenants`; each refusal is counted in `triad_limits_refused_total{limit, tenant}` and
/// answered with an error naming the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Items (spans, log records, metric samples) a tenant may send per second; 0: no
    /// limit. Above it, senders get 429 with `Retry-After` (gRPC RESOURCE_EXHAUSTED with
    /// RetryInfo) and retry; the agent loses nothing.
    pub ingest_rate: u64,
    /// Items a tenant may send at once above the rate (the bucket's size); 0: one
    /// second's worth of `ingest_rate`.
    pub ingest_burst: u64,
    /// Labels a metric series may carry, its name included; a series with more is
    /// refused (the rest of the request is stored).
    pub max_labels_per_series: usize,
    /// Bytes of a label's name or value; a series with a longer one is refused.
    pub max_label_bytes: usize,
    /// Series a tenant may have in the metric store's head (those with samples since
    /// the last block cut, about two hours); 0: no limit. Samples of new series past it
    /// are refused, those of existing series stored.
    pub max_series: usize,
    /// Longest time range a query may cover (PromQL ranges, log and trace searches,
    /// LogQL), in seconds; 0: no limit. Longer: 400.
    pub max_query_range_secs: u64,
    /// Queries a tenant may run at once on a query server; more wait for a slot (as in
    /// Prometheus), up to `query_queue_secs`, then get 429.
    pub max_concurrent_queries: usize,
    /// How long a query waits for one of its tenant's slots before 429.
    pub query_queue_secs: u64,
    /// Live tails (the UI's and Loki's) a tenant may hold open at once; more: 429.
    pub max_tail_streams: usize,
    /// Bytes of a request's headers, on every HTTP server; more: 431.
    pub max_header_bytes: usize,
    /// Seconds a client may take to send a request's headers (slow clients holding
    /// connections, "slowloris"); the connection is then closed.
    pub header_read_timeout_secs: u64,
    /// Overrides for some tenants: any of the per-tenant keys above.
    pub tenants: BTreeMap<String, TenantLimits>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            ingest_rate: 0,
            ingest_burst: 0,
            max_labels_per_series: 64,
            max_label_bytes: 4096,
            max_series: 1_000_000,
            max_query_range_secs: 0,
            max_concurrent_queries: 32,
            query_queue_secs: 10,
            max_tail_streams: 16,
            max_header_bytes: 65_536,
            header_read_timeout_secs: 10,
            tenants: BTreeMap::new(),
        }
    }
}

/// A tenant's own limits; what is not set comes from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// As `limits.ingest_rate`.
    pub ingest_rate: Option<u64>,
    /// As `limits.ingest_burst`.
    pub ingest_burst: Option<u64>,
    /// As `limits.max_labels_per_series`.
    pub max_labels_per_series: Option<usize>,
    /// As `limits.max_label_bytes`.
    pub max_label_bytes: Option<usize>,
    /// As `limits.max_series`.
    pub max_series: Option<usize>,
    /// As `limits.max_query_range_secs`.
    pub max_query_range_secs: Option<u64>,
    /// As `limits.max_concurrent_queries`.
    pub max_concurrent_queries: Option<usize>,
    /// As `limits.max_tail_streams`.
    pub max_tail_streams: Option<usize>,
    /// Instead of `query.max_samples` for this tenant: most samples a PromQL or LogQL
    /// metric query may hold.
    pub max_query_samples: Option<usize>,
    /// Instead of `query.query_timeout_secs` for this tenant.
    pub query_timeout_secs: Option<u64>,
    /// Instead of `collector.logs.retention_secs` for this tenant's log records (0: for
    /// ever). Splits hold several tenants' records and go when the longest retention of
    /// theirs is over; the tenant does not see its records past this one meanwhile.
    pub logs_retention_secs: Option<u64>,
    /// Instead of `collector.traces.retention_secs` for this tenant's spans (as logs).
    pub traces_retention_secs: Option<u64>,
    /// Instead of `collector.metrics.retention_secs` for this tenant's samples (its
    /// blocks are its own: they go at this retention).
    pub metrics_retention_secs: Option<u64>,
}

/// The limits that apply to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// Items per second (0: none).
    pub ingest_rate: u64,
    /// Bucket size.
    pub ingest_burst: u64,
    /// Labels per series.
    pub max_labels_per_series: usize,
    /// Bytes per label name or value.
    pub max_label_bytes: usize,
    /// Series in the head (0: none).
    pub max_series: usize,
    /// Query range, seconds (0: none).
    pub max_query_range_secs: u64,
    /// Concurrent queries.
    pub max_concurrent_queries: usize,
    /// Open live tails.
    pub max_tail_streams: usize,
    /// Samples per query, where the tenant overrides `query.max_samples`.
    pub max_query_samples: Option<usize>,
    /// Query timeout, where the tenant overrides `query.query_timeout_secs`.
    pub query_timeout_secs: Option<u64>,
}

impl LimitsConfig {
    /// The limits of `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> Effective {
        let t = self.tenants.get(tenant).cloned().unwrap_or_default();
        let rate = t.ingest_rate.unwrap_or(self.ingest_rate);
        let burst = t.ingest_burst.unwrap_or(self.ingest_burst);
        Effective {
            ingest_rate: rate,
            ingest_burst: if burst == 0 { rate } else { burst },
            max_labels_per_series: t
                .max_labels_per_series
                .unwrap_or(self.max_labels_per_series),
            max_label_bytes: t.max_label_bytes.unwrap_or(self.max_label_bytes),
            max_series: t.max_series.unwrap_or(self.max_series),
            max_query_range_secs: t.max_query_range_secs.unwrap_or(self.max_query_range_secs),
            max_concurrent_queries: t
                .max_concurrent_queries
                .unwrap_or(self.max_concurrent_queries),
            max_tail_streams: t.max_tail_streams.unwrap_or(self.max_tail_streams),
            max_query_samples: t.max_query_samples,
            query_timeout_secs: t.query_timeout_secs,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = |prefix: &str, e: &Effective| -> Result<(), ConfigError> {
            let k = |f: &str| format!("{prefix}{f}");
            range(
                &k("max_labels_per_series"),
                e.max_labels_per_series,
                1,
                10_000,
                "e.g. 64",
            )?;
            range(
                &k("max_label_bytes"),
                e.max_label_bytes,
                16,
                1 << 20,
                "e.g. 4096",
            )?;
            range(
                &k("max_concurrent_queries"),
                e.max_concurrent_queries,
                1,
                100_000,
                "e.g. 32",
            )?;
            range(
                &k("max_tail_streams"),
                e.max_tail_streams,
                1,
                100_000,
                "e.g. 16",
            )
        };
        check("limits.", &self.for_tenant(""))?;
        for name in self.tenants.keys() {
            if !crate::auth::valid_tenant(name) {
                return Err(ConfigError {
                    key: format!("limits.tenants.{name}"),
                    problem: "is not a tenant name".into(),
                    fix: "use 1-128 letters, digits, `_` or `-`".into(),
                });
            }
            check(&format!("limits.tenants.{name}."), &self.for_tenant(name))?;
            let t = &self.tenants[name];
            if let Some(n) = t.max_query_samples {
                range(
                    &format!("limits.tenants.{name}.max_query_samples"),
                    n,
                    1_000,
                    1_000_000_000,
                    "e.g. 50000000",
                )?;
            }
            if let Some(s) = t.query_timeout_secs {
                range(
                    &format!("limits.tenants.{name}.query_timeout_secs"),
                    s,
                    1,
                    3_600,
                    "e.g. 120",
                )?;
            }
        }
        range(
            "limits.max_header_bytes",
            self.max_header_bytes,
            8192,
            16 << 20,
            "e.g. 65536 (hyper needs at least 8192)",
        )?;
        range(
            "limits.query_queue_secs",
            self.query_queue_secs,
            0,
            3600,
            "e.g. 10 (0: refuse at once)",
        )?;
        range(
            "limits.header_read_timeout_secs",
            self.header_read_timeout_secs,
            1,
            3600,
            "e.g. 10",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_override_the_defaults() {
        let mut l = LimitsConfig {
            ingest_rate: 100,
            ..Default::default()
        };
        l.tenants.insert(
            "big".into(),
            TenantLimits {
                ingest_rate: Some(1000),
                ingest_burst: Some(5000),
                ..Default::default()
            },
        );
        assert_eq!(l.for_tenant("x").ingest_burst, 100);
        let big = l.for_tenant("big");
        assert_eq!((big.ingest_rate, big.ingest_burst), (1000, 5000));
        assert_eq!(big.max_tail_streams, 16);
        l.validate().unwrap();
        l.tenants.get_mut("big").unwrap().max_tail_streams = Some(0);
        assert_eq!(
            l.validate().unwrap_err().key,
            "limits.tenants.big.max_tail_streams"
        );
    }
}
