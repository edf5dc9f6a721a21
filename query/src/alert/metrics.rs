//! Telemetry of rule evaluation and notifications (`triad_alerting_*`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabel {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    rule_group: String,
}

/// Rule and notification metrics.
#[derive(Clone)]
pub struct AlertMetrics {
    evaluations: Family<GroupLabel, Counter>,
    evaluation_failures: Family<GroupLabel, Counter>,
    group_seconds: Family<GroupLabel, Histogram>,
    notifications: Family<ReceiverLabel, Counter>,
    notifications_failed: Family<ReceiverLabel, Counter>,
    notification_seconds: Family<ReceiverLabel, Histogram>,
    /// Alerts muted by a silence at a flush.
    pub silenced: Counter,
    /// Firing alerts the notifier holds.
    pub notifier_alerts: Gauge,
}

impl AlertMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> AlertMetrics {
        let m = AlertMetrics::unregistered();
        let r = registry.sub_registry_with_prefix("triad_alerting");
        r.register(
            "rule_group_evaluations",
            "Rule group evaluations",
            m.evaluations.clone(),
        );
        r.register(
            "rule_evaluation_failures",
            "Rule evaluations that failed (query error, limit, duplicate labels)",
            m.evaluation_failures.clone(),
        );
        r.register(
            "rule_group_duration_seconds",
            "Time to evaluate a rule group",
            m.group_seconds.clone(),
        );
        r.register(
            "notifications",
            "Notification attempts by receiver",
            m.notifications.clone(),
        );
        r.register(
            "notifications_failed",
            "Notification attempts that failed (each retry counts)",
            m.notifications_failed.clone(),
        );
        r.register(
            "notification_latency_seconds",
            "Time of one notification attempt",
            m.notification_seconds.clone(),
        );
        r.register(
            "silenced",
            "Alerts muted by a silence at a group flush",
            m.silenced.clone(),
        );
        r.register(
            "notifier_alerts",
            "Firing alerts the notifier holds",
            m.notifier_alerts.clone(),
        );
        m
    }

    /// Metrics not exposed anywhere (tests).
    pub fn unregistered() -> AlertMetrics {
        AlertMetrics {
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            group_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.5, 12))
            }),
            notifications: Family::default(),
            notifications_failed: Family::default(),
            notification_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.5, 12))
            }),
            silenced: Counter::default(),
            notifier_alerts: Gauge::default(),
        }
    }

    /// Counts a group evaluation and its failed rules.
    pub fn observe_group(&self, group: &str, failures: u64, took: Duration) {
        let l = GroupLabel {
            rule_group: group.to_string(),
        };
        self.evaluations.get_or_create(&l).inc();
        self.evaluation_failures.get_or_create(&l).inc_by(failures);
        self.group_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    /// Counts a notification attempt.
    pub fn observe_notification(&self, receiver: &str, ok: bool, took: Duration) {
        let l = ReceiverLabel {
            receiver: receiver.to_string(),
        };
        self.notifications.get_or_create(&l).inc();
        if !ok {
            self.notifications_failed.get_or_create(&l).inc();
        }
        self.notification_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }
}
