//! Telemetry of rule evaluation and notifications (`triad_alerting_*`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabel {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    tenant: String,
    rule_group: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

triad_model::metric_set! {
    /// Rule and notification metrics.
    pub struct AlertMetrics in "triad_alerting" {
        /// Rule group evaluations.
        evaluations as "rule_group_evaluations": Family<GroupLabel, Counter>,
        /// Rule evaluations that failed (query error, limit, duplicate labels).
        evaluation_failures as "rule_evaluation_failures": Family<GroupLabel, Counter>,
        /// Time to evaluate a rule group.
        group_seconds as "rule_group_duration_seconds": Family<GroupLabel, Histogram> =
            Family::new_with_constructor(latency_histogram),
        /// Notification attempts by receiver.
        notifications: Family<ReceiverLabel, Counter>,
        /// Notification attempts that failed (each retry counts).
        notifications_failed: Family<ReceiverLabel, Counter>,
        /// Time of one notification attempt.
        notification_seconds as "notification_latency_seconds": Family<ReceiverLabel, Histogram> =
            Family::new_with_constructor(latency_histogram),
        /// Alerts muted by a silence at a group flush.
        pub silenced: Counter,
        /// Firing alerts the notifier holds.
        pub notifier_alerts: Gauge,
        /// Alerts posted to `/api/v2/alerts`, by outcome (`accepted`, `invalid`).
        posted_alerts: Family<OutcomeLabel, Counter>,
    }
}

impl AlertMetrics {
    /// Counts a group evaluation and its failed rules.
    pub fn observe_group(&self, tenant: &str, group: &str, failures: u64, took: Duration) {
        let l = GroupLabel {
            tenant: tenant.to_string(),
            rule_group: group.to_string(),
        };
        self.evaluations.get_or_create(&l).inc();
        self.evaluation_failures.get_or_create(&l).inc_by(failures);
        self.group_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    /// Counts alerts posted to the Alertmanager API.
    pub fn observe_posted(&self, accepted: u64, invalid: u64) {
        for (outcome, n) in [("accepted", accepted), ("invalid", invalid)] {
            self.posted_alerts
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n);
        }
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
