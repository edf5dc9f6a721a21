//! Per-tenant retention: how long one signal's records are kept for each tenant.
//!
//! The defaults are `collector.{logs,traces,metrics}.retention_secs`; a tenant overrides
//! them under `limits.tenants.<name>` (`logs_retention_secs`, `traces_retention_secs`,
//! `metrics_retention_secs`), as Loki and Mimir take `retention_period` per tenant.
//! Metric blocks belong to one tenant and go at that tenant's retention. Log and trace
//! splits hold several tenants' records and go when the longest retention among their
//! tenants is over; until then a tenant with its own retention does not see its records
//! past it (the query server reads from its [`Retention::horizon_ns`] on).

use std::collections::BTreeMap;

/// How long one signal's records are kept, per tenant; 0 keeps them for ever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Seconds for tenants without their own.
    pub default_secs: u64,
    /// Tenants' own, seconds.
    pub tenants: BTreeMap<String, u64>,
}

/// Seconds → nanoseconds, saturating.
fn ns(secs: u64) -> i64 {
    (secs.min(i64::MAX as u64) as i64).saturating_mul(1_000_000_000)
}

impl Retention {
    /// The same retention for every tenant.
    pub fn uniform(secs: u64) -> Retention {
        Retention {
            default_secs: secs,
            tenants: BTreeMap::new(),
        }
    }

    /// Whether every tenant has the default.
    pub fn is_uniform(&self) -> bool {
        self.tenants.values().all(|s| *s == self.default_secs)
    }

    /// `tenant`'s retention, seconds (0: for ever).
    pub fn of(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .copied()
            .unwrap_or(self.default_secs)
    }

    /// How long a split or block holding records of `tenants` is kept: the longest of
    /// their retentions (0 when one of them keeps for ever); the default for none.
    pub fn of_all<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut longest: Option<u64> = None;
        for t in tenants {
            let s = self.of(t);
            if s == 0 {
                return 0;
            }
            longest = Some(longest.map_or(s, |l| l.max(s)));
        }
        longest.unwrap_or(self.default_secs)
    }

    /// The shortest retention of any tenant (0 when every tenant keeps for ever): nothing
    /// younger than it can have expired.
    pub fn shortest(&self) -> u64 {
        std::iter::once(self.default_secs)
            .chain(self.tenants.values().copied())
            .filter(|s| *s > 0)
            .min()
            .unwrap_or(0)
    }

    /// The longest retention of any tenant (0 when one keeps for ever): anything older
    /// has expired for every tenant.
    pub fn longest(&self) -> u64 {
        let all = || std::iter::once(self.default_secs).chain(self.tenants.values().copied());
        if all().any(|s| s == 0) {
            0
        } else {
            all().max().unwrap_or(0)
        }
    }

    /// The oldest timestamp (ns) `tenant` may read at `now_ns`, for a tenant with its own
    /// retention; `None` for the others (their records are read until their split or
    /// block goes) and for a retention of 0.
    pub fn horizon_ns(&self, tenant: &str, now_ns: i64) -> Option<i64> {
        match self.tenants.get(tenant) {
            Some(&s) if s > 0 => Some(now_ns.saturating_sub(ns(s))),
            _ => None,
        }
    }

    /// The time (ns) before which a split of `tenants` whose newest record is older has
    /// expired at `now_ns`; `None` when it is kept for ever.
    pub fn cutoff_ns<'a>(
        &self,
        tenants: impl IntoIterator<Item = &'a str>,
        now_ns: i64,
    ) -> Option<i64> {
        match self.of_all(tenants) {
            0 => None,
            s => Some(now_ns.saturating_sub(ns(s))),
        }
    }
}

/// Each signal's [`Retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retentions {
    /// Log records.
    pub logs: Retention,
    /// Spans.
    pub traces: Retention,
    /// Metric samples.
    pub metrics: Retention,
}

impl Retentions {
    /// Each signal's retention: `collector.*.retention_secs`, with the tenants' own from
    /// `limits.tenants.<name>.*_retention_secs`.
    pub fn of(collector: &super::CollectorConfig, limits: &super::LimitsConfig) -> Retentions {
        let of = |default_secs: u64, pick: fn(&super::TenantLimits) -> Option<u64>| Retention {
            default_secs,
            tenants: limits
                .tenants
                .iter()
                .filter_map(|(name, t)| pick(t).map(|s| (name.clone(), s)))
                .collect(),
        };
        Retentions {
            logs: of(collector.logs.retention_secs, |t| t.logs_retention_secs),
            traces: of(collector.traces.retention_secs, |t| t.traces_retention_secs),
            metrics: of(collector.metrics.retention_secs, |t| {
                t.metrics_retention_secs
            }),
        }
    }

    /// Whether every tenant has the defaults.
    pub fn is_uniform(&self) -> bool {
        self.logs.is_uniform() && self.traces.is_uniform() && self.metrics.is_uniform()
    }
}

impl super::Config {
    /// Each signal's retention: `collector.*.retention_secs`, with the tenants' own from
    /// `limits.tenants.<name>.*_retention_secs`.
    pub fn retentions(&self) -> Retentions {
        Retentions::of(&self.collector, &self.limits)
    }

    /// A tenant's retention must cover the unit that retention drops whole.
    pub(super) fn validate_retentions(&self) -> Result<(), super::ConfigError> {
        let c = &self.collector;
        for (name, t) in &self.limits.tenants {
            for (key, v, unit, unit_key) in [
                (
                    "logs_retention_secs",
                    t.logs_retention_secs,
                    c.logs.split_max_age_secs,
                    "collector.logs.split_max_age_secs",
                ),
                (
                    "traces_retention_secs",
                    t.traces_retention_secs,
                    c.traces.split_max_age_secs,
                    "collector.traces.split_max_age_secs",
                ),
                (
                    "metrics_retention_secs",
                    t.metrics_retention_secs,
                    c.metrics.block_range_secs,
                    "collector.metrics.block_range_secs",
                ),
            ] {
                if let Some(v) = v
                    && v != 0
                    && v < unit
                {
                    return Err(super::ConfigError {
                        key: format!("limits.tenants.{name}.{key}"),
                        problem: format!("{v} is shorter than {unit_key} ({unit})"),
                        fix: format!(
                            "retention drops whole splits and blocks: make it at least {unit_key}, or 0 to keep for ever"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Retention {
        Retention {
            default_secs: 100,
            tenants: [
                ("short".to_string(), 10),
                ("long".to_string(), 1000),
                ("ever".to_string(), 0),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn a_split_lives_as_long_as_its_longest_tenant() {
        let r = r();
        assert_eq!(r.of("short"), 10);
        assert_eq!(r.of("other"), 100);
        assert_eq!(r.of_all(["short"]), 10);
        assert_eq!(r.of_all(["short", "other"]), 100);
        assert_eq!(r.of_all(["short", "long"]), 1000);
        assert_eq!(r.of_all(["short", "ever"]), 0);
        assert_eq!(r.of_all([]), 100);
        assert_eq!(r.shortest(), 10);
        assert_eq!(r.longest(), 0);
        let mut finite = r.clone();
        finite.tenants.remove("ever");
        assert_eq!(finite.longest(), 1000);
        assert!(!r.is_uniform() && Retention::uniform(5).is_uniform());
        assert_eq!(
            r.cutoff_ns(["short"], 100_000_000_000),
            Some(90_000_000_000)
        );
        assert_eq!(r.cutoff_ns(["ever"], 100_000_000_000), None);
    }

    #[test]
    fn a_tenants_retention_covers_a_split_and_a_block() {
        use crate::config::{Config, TenantLimits};
        let with = |t: TenantLimits| {
            let mut c = Config::default();
            c.limits.tenants.insert("brief".into(), t);
            c
        };
        let c = with(TenantLimits {
            logs_retention_secs: Some(3600),
            metrics_retention_secs: Some(0),
            ..Default::default()
        });
        let r = c.retentions();
        assert_eq!(r.logs.of("brief"), 3600);
        assert_eq!(r.metrics.of("brief"), 0);
        assert_eq!(r.traces.of("brief"), 7 * 86_400);
        assert!(!r.is_uniform());
        c.validate().unwrap();
        for (t, key) in [
            (
                TenantLimits {
                    logs_retention_secs: Some(60),
                    ..Default::default()
                },
                "limits.tenants.brief.logs_retention_secs",
            ),
            (
                TenantLimits {
                    metrics_retention_secs: Some(3600),
                    ..Default::default()
                },
                "limits.tenants.brief.metrics_retention_secs",
            ),
        ] {
            assert_eq!(with(t).validate().unwrap_err().key, key);
        }
    }

    #[test]
    fn only_tenants_with_their_own_retention_have_a_horizon() {
        let r = r();
        let now = 1_000_000_000_000;
        assert_eq!(r.horizon_ns("short", now), Some(now - 10_000_000_000));
        assert_eq!(r.horizon_ns("other", now), None);
        assert_eq!(r.horizon_ns("ever", now), None);
        assert_eq!(Retention::uniform(0).shortest(), 0);
    }
}
