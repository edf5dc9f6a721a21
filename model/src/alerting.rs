//! The `alerting` section of `triad.yaml`: rule files, golden-signal rules, webhook
//! receivers and the routing tree that sends alerts to them.
//!
//! Routing follows Alertmanager's model (a tree of routes with label matchers,
//! `group_by`, `group_wait`, `group_interval`, `repeat_interval`), with Triad's unit-named
//! keys (`group_wait_secs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The `alerting` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Prometheus rule files (globs allowed), relative to the directory of `triad.yaml`.
    pub rule_files: Vec<String>,
    /// Interval of rule groups that set none, in seconds (Prometheus'
    /// `evaluation_interval`).
    pub evaluation_interval_secs: u64,
    /// URL under which users reach this Triad; links in notifications start with it.
    /// Empty: `http://<query.listen>` with the host's name.
    pub external_url: String,
    /// Webhook receivers, by name.
    pub receivers: Vec<WebhookReceiver>,
    /// The routing tree; the root route's `receiver` gets every alert no child route takes.
    pub route: Route,
    /// What each alert carries as evidence.
    pub evidence: EvidenceConfig,
    /// Built-in golden-signal rules.
    pub golden_signals: GoldenSignalsConfig,
    /// The tenant whose metrics `rule_files` and `golden_signals` read and whose members
    /// see and silence their alerts (with authentication, a token of that tenant).
    pub tenant: String,
    /// Rules and golden signals of other tenants, by tenant name: evaluated on that
    /// tenant's metrics, seen and silenced by that tenant's tokens only. Their alerts
    /// carry the label `tenant="<name>"`, so routes can send them apart
    /// (`matchers: ['tenant="team-b"']`); receivers and the routing tree are shared.
    pub tenants: BTreeMap<String, TenantAlerting>,
}

/// The alert rules of one tenant under `alerting.tenants`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantAlerting {
    /// Prometheus rule files (globs allowed), relative to the directory of `triad.yaml`.
    pub rule_files: Vec<String>,
    /// Built-in golden-signal rules of this tenant's services.
    pub golden_signals: GoldenSignalsConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            rule_files: Vec::new(),
            tenant: crate::DEFAULT_TENANT.to_string(),
            tenants: BTreeMap::new(),
            evaluation_interval_secs: 60,
            external_url: String::new(),
            receivers: Vec::new(),
            route: Route {
                group_by: Some(vec!["alertname".into()]),
                group_wait_secs: Some(30),
                group_interval_secs: Some(300),
                repeat_interval_secs: Some(4 * 3600),
                ..Route::default()
            },
            evidence: EvidenceConfig::default(),
            golden_signals: GoldenSignalsConfig::default(),
        }
    }
}

/// A webhook that receives Alertmanager's webhook JSON (version 4) plus evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiver {
    /// Name that routes refer to.
    pub name: String,
    /// `http://` or `https://` URL the notifications are POSTed to.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time limit of one attempt, in seconds.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_secs: u64,
    /// Whether resolved alerts are notified too.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Most alerts in one notification (0: all); the rest are counted in
    /// `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
}

fn default_webhook_timeout() -> u64 {
    10
}

fn yes() -> bool {
    true
}

/// A node of the routing tree. Unset fields inherit from the parent route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// Receiver name; inherited when unset.
    pub receiver: Option<String>,
    /// Label matchers in PromQL syntax (`severity="page"`, `service=~"api|web"`); all must
    /// match for an alert to take this route. The root route matches everything.
    pub matchers: Vec<String>,
    /// Labels whose values split alerts into notification groups; `[...]` groups by
    /// every label.
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group, seconds.
    pub group_wait_secs: Option<u64>,
    /// Wait before notifying changes to a group already notified, seconds.
    pub group_interval_secs: Option<u64>,
    /// Wait before notifying an unchanged group again, seconds.
    pub repeat_interval_secs: Option<u64>,
    /// Whether alerts matching this route go on to its later siblings.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Child routes, tried in order.
    pub routes: Vec<Route>,
}

/// How much evidence each notified alert carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Most example traces per alert.
    pub max_traces: usize,
    /// Most log lines per alert.
    pub max_logs: usize,
    /// How far before the alert became active to look, in seconds.
    pub lookback_secs: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            max_traces: 5,
            max_logs: 5,
            lookback_secs: 600,
        }
    }
}

/// Golden-signal rules for services seen in spans (from the `triad_span_*` RED series).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoldenSignalsConfig {
    /// Rules for every service not listed in `services`; off when unset.
    pub default: Option<GoldenSignals>,
    /// Rules per service name; they replace `default` for that service.
    pub services: BTreeMap<String, GoldenSignals>,
}

/// The four golden signals of one service (or of every service); each is off when unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoldenSignals {
    /// p99 latency over a threshold.
    pub latency: Option<LatencySignal>,
    /// Error ratio over a threshold, and burn rates against an SLO.
    pub errors: Option<ErrorSignal>,
    /// Request rate under a floor or fallen against the same window earlier.
    pub traffic: Option<TrafficSignal>,
    /// CPU, memory and disk use of the service's hosts.
    pub saturation: Option<SaturationSignal>,
}

/// Latency: `histogram_quantile(quantile, rate(triad_span_duration_seconds_bucket[window]))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySignal {
    /// Fires when the quantile is above this many seconds.
    pub threshold_seconds: f64,
    /// Quantile, e.g. 0.99.
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// Rate window, seconds.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// How long the condition must hold before firing, seconds.
    #[serde(default = "default_for")]
    pub for_secs: u64,
}

/// Errors: errors / requests over `window_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSignal {
    /// Fires when the error ratio is above this (0.05 = 5 %).
    pub ratio_threshold: f64,
    /// Rate window, seconds.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// How long the condition must hold before firing, seconds.
    #[serde(default = "default_for")]
    pub for_secs: u64,
    /// Availability objective (e.g. 0.999); adds the multi-window burn-rate rules of the
    /// Google SRE workbook (14.4× over 1h and 5m, 6× over 6h and 30m).
    #[serde(default)]
    pub slo: Option<f64>,
}

/// Traffic: request rate under a floor, or fallen by a factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSignal {
    /// Fires when requests per second fall under this.
    #[serde(default)]
    pub min_rps: Option<f64>,
    /// Fires when the rate is this many times lower than `compare_offset_secs` earlier.
    #[serde(default)]
    pub drop_factor: Option<f64>,
    /// How far back the comparison looks, seconds (a day by default).
    #[serde(default = "default_compare_offset")]
    pub compare_offset_secs: u64,
    /// Rate window, seconds.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// How long the condition must hold before firing, seconds.
    #[serde(default = "default_for")]
    pub for_secs: u64,
}

/// Saturation of the hosts a service runs on, from node_exporter-named host metrics
/// (the agent's `/metrics`) joined with `triad_service_host_info{service, host}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaturationSignal {
    /// CPU busy ratio threshold (0.9 = 90 %).
    #[serde(default)]
    pub cpu_ratio: Option<f64>,
    /// Memory used ratio threshold.
    #[serde(default)]
    pub memory_ratio: Option<f64>,
    /// Disk (file system) used ratio threshold.
    #[serde(default)]
    pub disk_ratio: Option<f64>,
    /// Label of the host metrics that holds the host name spans report as `host.name`.
    #[serde(default = "default_host_label")]
    pub host_label: String,
    /// Rate window, seconds.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// How long the condition must hold before firing, seconds.
    #[serde(default = "default_for")]
    pub for_secs: u64,
}

fn default_quantile() -> f64 {
    0.99
}
fn default_window() -> u64 {
    300
}
fn default_for() -> u64 {
    60
}
fn default_compare_offset() -> u64 {
    86_400
}
fn default_host_label() -> String {
    "host".into()
}

fn err(key: String, problem: impl Into<String>, fix: &str) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
        fix: fix.into(),
    }
}

impl AlertingConfig {
    /// Checks the section; errors name the key (`alerting.route.routes[0].receiver`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !crate::auth::valid_tenant(&self.tenant) {
            return Err(err(
                "alerting.tenant".into(),
                format!("{:?} is not a tenant name", self.tenant),
                "use 1-128 letters, digits, `_` or `-`, e.g. default",
            ));
        }
        if self.evaluation_interval_secs == 0 || self.evaluation_interval_secs > 86_400 {
            return Err(err(
                "alerting.evaluation_interval_secs".into(),
                format!(
                    "{} is out of range [1, 86400]",
                    self.evaluation_interval_secs
                ),
                "e.g. 60",
            ));
        }
        let url = &self.external_url;
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(err(
                "alerting.external_url".into(),
                format!("{:?} is not an http(s) URL", self.external_url),
                "e.g. https://triad.example.com, or leave it empty",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = |f: &str| format!("alerting.receivers[{i}].{f}");
            if r.name.is_empty() || !names.insert(r.name.as_str()) {
                return Err(err(
                    key("name"),
                    format!("{:?} is empty or used twice", r.name),
                    "give every receiver its own name",
                ));
            }
            if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                return Err(err(
                    key("url"),
                    format!("{:?} is not an http(s) URL", r.url),
                    "e.g. http://hooks.example.com/alerts",
                ));
            }
            if r.timeout_secs == 0 || r.timeout_secs > 300 {
                return Err(err(
                    key("timeout_secs"),
                    format!("{} is out of range [1, 300]", r.timeout_secs),
                    "e.g. 10",
                ));
            }
        }
        if !self.receivers.is_empty() && self.route.receiver.is_none() {
            return Err(err(
                "alerting.route.receiver".into(),
                "is not set",
                "name the receiver that gets alerts no child route takes",
            ));
        }
        self.route.validate("alerting.route", &names)?;
        let e = &self.evidence;
        if e.max_traces > 100 || e.max_logs > 100 {
            return Err(err(
                "alerting.evidence".into(),
                "max_traces and max_logs must be at most 100",
                "e.g. 5",
            ));
        }
        self.golden_signals.validate("alerting.golden_signals")?;
        for (name, t) in &self.tenants {
            let key = format!("alerting.tenants.{name}");
            if !crate::auth::valid_tenant(name) {
                return Err(err(
                    key,
                    format!("{name:?} is not a tenant name"),
                    "use 1-128 letters, digits, `_` or `-`",
                ));
            }
            if *name == self.tenant {
                return Err(err(
                    key,
                    format!("{name:?} is alerting.tenant already"),
                    "put that tenant's rules under alerting.rule_files and alerting.golden_signals",
                ));
            }
            t.golden_signals
                .validate(&format!("alerting.tenants.{name}.golden_signals"))?;
        }
        Ok(())
    }

    /// Whether `tenant` has alerting here: `alerting.tenant` or one of `alerting.tenants`.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        tenant == self.tenant || self.tenants.contains_key(tenant)
    }
}

impl GoldenSignalsConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if let Some(d) = &self.default {
            d.validate(&format!("{prefix}.default"))?;
        }
        for (name, s) in &self.services {
            s.validate(&format!("{prefix}.services.{name}"))?;
        }
        Ok(())
    }
}

impl Route {
    fn validate(
        &self,
        prefix: &str,
        receivers: &std::collections::BTreeSet<&str>,
    ) -> Result<(), ConfigError> {
        if let Some(r) = &self.receiver
            && !receivers.contains(r.as_str())
        {
            return Err(err(
                format!("{prefix}.receiver"),
                format!("{r:?} is not a receiver"),
                "use a name from alerting.receivers",
            ));
        }
        for (i, m) in self.matchers.iter().enumerate() {
            if let Err(e) = crate::metric::parse_matcher(m) {
                return Err(err(
                    format!("{prefix}.matchers[{i}]"),
                    e,
                    r#"write one PromQL matcher, e.g. severity="page" or service=~"api|web""#,
                ));
            }
        }
        for (key, v) in [
            ("group_interval_secs", self.group_interval_secs),
            ("repeat_interval_secs", self.repeat_interval_secs),
        ] {
            if v == Some(0) {
                return Err(err(
                    format!("{prefix}.{key}"),
                    "must not be 0",
                    "e.g. 300 for group_interval_secs, 14400 for repeat_interval_secs",
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            r.validate(&format!("{prefix}.routes[{i}]"), receivers)?;
        }
        Ok(())
    }
}

fn ratio(key: String, v: f64) -> Result<(), ConfigError> {
    if !(v > 0.0 && v < 1.0) {
        return Err(err(
            key,
            format!("{v} is not a ratio between 0 and 1"),
            "e.g. 0.05 for 5 %",
        ));
    }
    Ok(())
}

impl GoldenSignals {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let windows = [
            self.latency.as_ref().map(|l| ("latency", l.window_secs)),
            self.errors.as_ref().map(|l| ("errors", l.window_secs)),
            self.traffic.as_ref().map(|l| ("traffic", l.window_secs)),
            self.saturation
                .as_ref()
                .map(|l| ("saturation", l.window_secs)),
        ];
        for (name, w) in windows.into_iter().flatten() {
            if !(10..=86_400).contains(&w) {
                return Err(err(
                    format!("{prefix}.{name}.window_secs"),
                    format!("{w} is out of range [10, 86400]"),
                    "e.g. 300; at least a few scrape or flush intervals",
                ));
            }
        }
        if let Some(l) = &self.latency {
            if l.threshold_seconds.is_nan() || l.threshold_seconds <= 0.0 {
                return Err(err(
                    format!("{prefix}.latency.threshold_seconds"),
                    "must be above 0",
                    "e.g. 0.5",
                ));
            }
            ratio(format!("{prefix}.latency.quantile"), l.quantile)?;
        }
        if let Some(e) = &self.errors {
            ratio(
                format!("{prefix}.errors.ratio_threshold"),
                e.ratio_threshold,
            )?;
            if let Some(slo) = e.slo {
                ratio(format!("{prefix}.errors.slo"), slo)?;
            }
        }
        if let Some(t) = &self.traffic {
            if t.min_rps.is_none() && t.drop_factor.is_none() {
                return Err(err(
                    format!("{prefix}.traffic"),
                    "sets neither min_rps nor drop_factor",
                    "set min_rps (e.g. 1) or drop_factor (e.g. 3)",
                ));
            }
            if t.drop_factor.is_some_and(|f| f.is_nan() || f <= 1.0) {
                return Err(err(
                    format!("{prefix}.traffic.drop_factor"),
                    "must be above 1",
                    "e.g. 3: fire when traffic is a third of what it was",
                ));
            }
            if t.min_rps.is_some_and(|f| f.is_nan() || f <= 0.0) {
                return Err(err(
                    format!("{prefix}.traffic.min_rps"),
                    "must be above 0",
                    "e.g. 1",
                ));
            }
        }
        if let Some(s) = &self.saturation {
            for (k, v) in [
                ("cpu_ratio", s.cpu_ratio),
                ("memory_ratio", s.memory_ratio),
                ("disk_ratio", s.disk_ratio),
            ] {
                if let Some(v) = v {
                    ratio(format!("{prefix}.saturation.{k}"), v)?;
                }
            }
            if !crate::metric::is_label_name(&s.host_label) {
                return Err(err(
                    format!("{prefix}.saturation.host_label"),
                    format!("{:?} is not a label name", s.host_label),
                    "e.g. host or instance",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AlertingConfig::default().validate().unwrap();
    }

    #[test]
    fn other_tenants_are_checked_by_their_key() {
        let mut c = AlertingConfig::default();
        c.tenants.insert("team-b".into(), TenantAlerting::default());
        c.validate().unwrap();
        assert!(c.has_tenant("team-b") && c.has_tenant("default") && !c.has_tenant("x"));
        c.tenants
            .insert("default".into(), TenantAlerting::default());
        assert_eq!(c.validate().unwrap_err().key, "alerting.tenants.default");
        c.tenants.remove("default");
        c.tenants
            .insert("no spaces".into(), TenantAlerting::default());
        assert_eq!(c.validate().unwrap_err().key, "alerting.tenants.no spaces");
        c.tenants.remove("no spaces");
        let mut t = TenantAlerting::default();
        t.golden_signals.default = Some(GoldenSignals {
            errors: Some(ErrorSignal {
                ratio_threshold: 2.0,
                window_secs: 60,
                for_secs: 60,
                slo: None,
            }),
            ..Default::default()
        });
        c.tenants.insert("team-b".into(), t);
        let e = c.validate().unwrap_err();
        assert!(
            e.key
                .starts_with("alerting.tenants.team-b.golden_signals.default.errors"),
            "{}",
            e.key
        );
    }

    #[test]
    fn routes_must_name_receivers_and_parse_matchers() {
        let mut c = AlertingConfig::default();
        c.receivers.push(WebhookReceiver {
            name: "ops".into(),
            url: "http://x/".into(),
            bearer_token: None,
            headers: BTreeMap::new(),
            timeout_secs: 10,
            send_resolved: true,
            max_alerts: 0,
        });
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "alerting.route.receiver");
        c.route.receiver = Some("ops".into());
        c.route.routes.push(Route {
            receiver: Some("nope".into()),
            ..Route::default()
        });
        assert_eq!(
            c.validate().unwrap_err().key,
            "alerting.route.routes[0].receiver"
        );
        c.route.routes[0].receiver = None;
        c.route.routes[0].matchers.push("severity page".into());
        assert_eq!(
            c.validate().unwrap_err().key,
            "alerting.route.routes[0].matchers[0]"
        );
        c.route.routes[0].matchers[0] = r#"severity="page""#.into();
        c.validate().unwrap();
    }

    #[test]
    fn golden_signal_thresholds_are_checked() {
        let mut c = AlertingConfig::default();
        c.golden_signals.services.insert(
            "api".into(),
            GoldenSignals {
                errors: Some(ErrorSignal {
                    ratio_threshold: 5.0,
                    window_secs: 300,
                    for_secs: 60,
                    slo: None,
                }),
                ..GoldenSignals::default()
            },
        );
        assert_eq!(
            c.validate().unwrap_err().key,
            "alerting.golden_signals.services.api.errors.ratio_threshold"
        );
    }
}
