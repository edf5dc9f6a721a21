//! Golden-signal rules compiled from `alerting.golden_signals` into ordinary alerting
//! rules over the RED series the collector derives from spans (`triad_span_*`) and the
//! node_exporter-named host metrics of the agents, so `/api/v1/rules` lists them and they
//! behave like any rule from a file.

use triad_model::alerting::{GoldenSignals, GoldenSignalsConfig};

use super::rules::{AlertSpec, Rule, RuleError, RuleGroup};
use triad_promql::Engine;

/// Pseudo file name of the compiled groups.
pub const GOLDEN_FILE: &str = "<golden_signals>";

/// A number as a person writes it in a rule: rounded to 12 significant digits, then
/// the shortest form that reads back the same (`0.06`, not `0.06000000000000005`, for
/// 1 − 0.94; `14.4 × 0.001` is `0.0144`).
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let rounded: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    format!("{rounded}")
}

/// Burn-rate windows of the Google SRE workbook's multi-window, multi-burn-rate alerts:
/// (factor, long window, short window, `for`).
const BURN_RATES: [(f64, &str, &str, i64); 2] =
    [(14.4, "1h", "5m", 120_000), (6.0, "6h", "30m", 900_000)];

/// One group per configured service, and one for `default` covering every other service.
pub fn compile(cfg: &GoldenSignalsConfig, interval_ms: i64) -> Result<Vec<RuleGroup>, RuleError> {
    let mut groups = Vec::new();
    for (service, signals) in &cfg.services {
        let sel = format!("service=\"{}\"", escape(service));
        groups.push(group(
            &format!("golden_signals/{service}"),
            &sel,
            signals,
            interval_ms,
        )?);
    }
    if let Some(d) = &cfg.default {
        let sel = if cfg.services.is_empty() {
            "service=~\".+\"".to_string()
        } else {
            let names: Vec<String> = cfg
                .services
                .keys()
                .map(|s| escape(&regex::escape(s)))
                .collect();
            format!("service=~\".+\",service!~\"{}\"", names.join("|"))
        };
        groups.push(group("golden_signals/default", &sel, d, interval_ms)?);
    }
    Ok(groups)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn secs(s: u64) -> String {
    format!("{s}s")
}

struct Builder {
    rules: Vec<Rule>,
    group: String,
}

impl Builder {
    fn alert(
        &mut self,
        name: &str,
        signal: &str,
        severity: &str,
        expr: String,
        for_secs: i64,
        summary: String,
    ) -> Result<(), RuleError> {
        let parsed = Engine::parse(&expr).map_err(|e| RuleError {
            file: GOLDEN_FILE.into(),
            line: 0,
            reason: format!("group {:?}, rule {name:?}: {e}", self.group),
        })?;
        self.rules.push(Rule {
            name: name.to_string(),
            expr_text: expr,
            expr: parsed,
            labels: vec![
                ("signal".into(), signal.into()),
                ("severity".into(), severity.into()),
            ],
            alert: Some(AlertSpec {
                for_ms: for_secs,
                keep_firing_for_ms: 0,
                annotations: vec![("summary".into(), summary)],
            }),
        });
        Ok(())
    }
}

fn group(
    name: &str,
    sel: &str,
    s: &GoldenSignals,
    interval_ms: i64,
) -> Result<RuleGroup, RuleError> {
    let mut b = Builder {
        rules: Vec::new(),
        group: name.to_string(),
    };
    let rate = |metric: &str, window: &str| {
        format!("sum by (service) (rate({metric}{{{sel}}}[{window}]))")
    };
    if let Some(l) = &s.latency {
        let w = secs(l.window_secs);
        b.alert(
            "GoldenSignalLatency",
            "latency",
            "warning",
            format!(
                "histogram_quantile({q}, sum by (service, le) (rate(triad_span_duration_seconds_bucket{{{sel}}}[{w}]))) > {t}",
                q = num(l.quantile),
                t = num(l.threshold_seconds)
            ),
            l.for_secs as i64 * 1000,
            format!(
                "{{{{ $labels.service }}}}: p{} latency is {{{{ $value | humanizeDuration }}}} (threshold {}s)",
                num(l.quantile * 100.0),
                num(l.threshold_seconds)
            ),
        )?;
    }
    if let Some(e) = &s.errors {
        let w = secs(e.window_secs);
        b.alert(
            "GoldenSignalErrors",
            "errors",
            "warning",
            format!(
                "{} / {} > {}",
                rate("triad_span_errors_total", &w),
                rate("triad_span_requests_total", &w),
                num(e.ratio_threshold)
            ),
            e.for_secs as i64 * 1000,
            format!(
                "{{{{ $labels.service }}}}: {{{{ $value | humanizePercentage }}}} of requests fail (threshold {}%)",
                num(e.ratio_threshold * 100.0)
            ),
        )?;
        if let Some(slo) = e.slo {
            let budget = 1.0 - slo;
            for (factor, long, short, for_ms) in BURN_RATES {
                let ratio = |w: &str| {
                    format!(
                        "({} / {})",
                        rate("triad_span_errors_total", w),
                        rate("triad_span_requests_total", w)
                    )
                };
                let limit = num(factor * budget);
                b.alert(
                    &format!("GoldenSignalErrorBudgetBurn{long}"),
                    "errors",
                    "page",
                    format!("{} > {limit} and {} > {limit}", ratio(long), ratio(short)),
                    for_ms,
                    format!(
                        "{{{{ $labels.service }}}}: error budget of the {}% SLO burns {factor}x too fast over {long} and {short}",
                        num(slo * 100.0)
                    ),
                )?;
            }
        }
    }
    if let Some(t) = &s.traffic {
        let w = secs(t.window_secs);
        if let Some(min) = t.min_rps {
            b.alert(
                "GoldenSignalTrafficLow",
                "traffic",
                "warning",
                format!("{} < {}", rate("triad_span_requests_total", &w), num(min)),
                t.for_secs as i64 * 1000,
                format!("{{{{ $labels.service }}}}: {{{{ $value | humanize }}}} requests/s, under the floor of {}/s", num(min)),
            )?;
        }
        if let Some(f) = t.drop_factor {
            let earlier = format!(
                "sum by (service) (rate(triad_span_requests_total{{{sel}}}[{w}] offset {}))",
                secs(t.compare_offset_secs)
            );
            b.alert(
                "GoldenSignalTrafficDrop",
                "traffic",
                "warning",
                format!("{} < {earlier} / {f}", rate("triad_span_requests_total", &w)),
                t.for_secs as i64 * 1000,
                format!(
                    "{{{{ $labels.service }}}}: traffic fell to {{{{ $value | humanize }}}} requests/s, under 1/{f} of {} earlier",
                    secs(t.compare_offset_secs)
                ),
            )?;
        }
    }
    if let Some(sat) = &s.saturation {
        let w = secs(sat.window_secs);
        let h = &sat.host_label;
        // The hosts of each service, with their name under the host metrics' label.
        let hosts = format!(
            "max by ({h}, service) (label_replace(triad_service_host_info{{{sel}}}, \"{h}\", \"$1\", \"host\", \"(.*)\"))"
        );
        let usages = [
            (
                "GoldenSignalCPU",
                "CPU",
                sat.cpu_ratio,
                format!("(1 - avg by ({h}) (rate(node_cpu_seconds_total{{mode=\"idle\"}}[{w}])))"),
            ),
            (
                "GoldenSignalMemory",
                "memory",
                sat.memory_ratio,
                format!(
                    "max by ({h}) (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
                ),
            ),
            (
                "GoldenSignalDisk",
                "disk",
                sat.disk_ratio,
                format!(
                    "max by ({h}) (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes)"
                ),
            ),
        ];
        for (name, what, threshold, usage) in usages {
            let Some(threshold) = threshold else { continue };
            b.alert(
                name,
                "saturation",
                "warning",
                // The hosts side has one series per (host, service), the usage side one
                // per host: usage joins onto the hosts as the "one" side.
                format!(
                    "{hosts} * on ({h}) group_left () {usage} > {}",
                    num(threshold)
                ),
                sat.for_secs as i64 * 1000,
                format!(
                    "{{{{ $labels.service }}}}: {what} of host {{{{ $labels.{h} }}}} is {{{{ $value | humanizePercentage }}}} used (threshold {}%)",
                    num(threshold * 100.0)
                ),
            )?;
        }
    }
    Ok(RuleGroup {
        name: name.to_string(),
        file: GOLDEN_FILE.into(),
        interval_ms,
        limit: 0,
        rules: b.rules,
        tenant: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_model::alerting::*;

    #[test]
    fn every_signal_compiles_to_parsable_rules() {
        let all = GoldenSignals {
            latency: Some(LatencySignal {
                threshold_seconds: 0.5,
                quantile: 0.99,
                window_secs: 300,
                for_secs: 60,
            }),
            errors: Some(ErrorSignal {
                ratio_threshold: 0.05,
                window_secs: 300,
                for_secs: 60,
                slo: Some(0.999),
            }),
            traffic: Some(TrafficSignal {
                min_rps: Some(1.0),
                drop_factor: Some(3.0),
                compare_offset_secs: 86_400,
                window_secs: 300,
                for_secs: 60,
            }),
            saturation: Some(SaturationSignal {
                cpu_ratio: Some(0.9),
                memory_ratio: Some(0.9),
                disk_ratio: Some(0.9),
                host_label: "host".into(),
                window_secs: 300,
                for_secs: 60,
            }),
        };
        let cfg = GoldenSignalsConfig {
            default: Some(all.clone()),
            services: [("check\"out".to_string(), all)].into_iter().collect(),
        };
        let groups = compile(&cfg, 15_000).unwrap();
        assert_eq!(groups.len(), 2);
        let names: Vec<&str> = groups[1].rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "GoldenSignalLatency",
                "GoldenSignalErrors",
                "GoldenSignalErrorBudgetBurn1h",
                "GoldenSignalErrorBudgetBurn6h",
                "GoldenSignalTrafficLow",
                "GoldenSignalTrafficDrop",
                "GoldenSignalCPU",
                "GoldenSignalMemory",
                "GoldenSignalDisk"
            ]
        );
        assert!(
            groups[1].rules[0]
                .expr_text
                .contains(r#"service!~"check\"out""#),
            "{}",
            groups[1].rules[0].expr_text
        );
        for r in groups.iter().flat_map(|g| &g.rules) {
            for (_, t) in &r.alert.as_ref().unwrap().annotations {
                super::super::template::check(t).unwrap();
            }
        }
    }

    /// Regression: thresholds computed from the config (1 − SLO, burn factor × budget,
    /// ratios in %) were printed with float noise, e.g. `0.06000000000000005`.
    #[test]
    fn regression_thresholds_read_as_a_person_writes_them() {
        assert_eq!(num(1.0 - 0.94), "0.06");
        assert_eq!(num(14.4 * (1.0 - 0.999)), "0.0144");
        assert_eq!(num(0.07 * 100.0), "7");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(1e-9), "0.000000001");
        let cfg = GoldenSignalsConfig {
            default: Some(GoldenSignals {
                errors: Some(ErrorSignal {
                    ratio_threshold: 0.07,
                    window_secs: 300,
                    for_secs: 60,
                    slo: Some(0.94),
                }),
                saturation: Some(SaturationSignal {
                    cpu_ratio: Some(0.29),
                    memory_ratio: None,
                    disk_ratio: None,
                    host_label: "host".into(),
                    window_secs: 300,
                    for_secs: 60,
                }),
                ..Default::default()
            }),
            services: Default::default(),
        };
        let groups = compile(&cfg, 15_000).unwrap();
        let noisy = regex::Regex::new(r"\d\.\d*0000000|\d\.\d*9999999").unwrap();
        for r in groups.iter().flat_map(|g| &g.rules) {
            assert!(!noisy.is_match(&r.expr_text), "{}", r.expr_text);
            for (_, t) in &r.alert.as_ref().unwrap().annotations {
                assert!(!noisy.is_match(t), "{t}");
            }
        }
        let burn = &groups[0].rules[1].expr_text;
        assert!(burn.ends_with("> 0.864"), "14.4 × (1 − 0.94): {burn}");
    }
}

#[cfg(test)]
mod eval_tests {
    use super::*;
    use crate::alert::state::{AlertState, GroupState};
    use prometheus_client::registry::Registry;
    use triad_model::alerting::*;
    use triad_model::metric::Labels;
    use triad_model::store::MetricWrite;
    use triad_promql::Limits;
    use triad_tsdb::TsdbOptions;
    use triad_tsdb::metric_store::MetricStore;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A host 95 % busy runs `checkout` and `cart`; an idle host runs `feed`: the CPU
    /// alert fires for checkout and cart, labelled with the host. (Regression: with the
    /// usage on the "many" side, two services on one host were a many-to-many error.)
    #[test]
    fn saturation_joins_host_metrics_with_the_services_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetricStore::open(dir.path(), TsdbOptions::default(), &mut Registry::default())
            .unwrap();
        let t0 = 1_700_000_000_000i64;
        let mut samples = Vec::new();
        for i in 0..=60 {
            let t = t0 + i * 1000;
            let secs = i as f64;
            for (host, idle_share) in [("node-1", 0.05), ("node-2", 0.9)] {
                samples.push((
                    l(&[
                        ("__name__", "node_cpu_seconds_total"),
                        ("host", host),
                        ("cpu", "0"),
                        ("mode", "idle"),
                    ]),
                    t,
                    secs * idle_share,
                ));
                samples.push((
                    l(&[
                        ("__name__", "node_cpu_seconds_total"),
                        ("host", host),
                        ("cpu", "0"),
                        ("mode", "user"),
                    ]),
                    t,
                    secs * (1.0 - idle_share),
                ));
            }
            samples.push((
                l(&[
                    ("__name__", "triad_service_host_info"),
                    ("service", "checkout"),
                    ("host", "node-1"),
                ]),
                t,
                1.0,
            ));
            for (service, host) in [("cart", "node-1"), ("feed", "node-2")] {
                samples.push((
                    l(&[
                        ("__name__", "triad_service_host_info"),
                        ("service", service),
                        ("host", host),
                    ]),
                    t,
                    1.0,
                ));
            }
        }
        assert_eq!(s.append_samples("default", samples).unwrap(), 0);
        let cfg = GoldenSignalsConfig {
            default: Some(GoldenSignals {
                saturation: Some(SaturationSignal {
                    cpu_ratio: Some(0.8),
                    memory_ratio: None,
                    disk_ratio: None,
                    host_label: "host".into(),
                    window_secs: 30,
                    for_secs: 0,
                }),
                ..GoldenSignals::default()
            }),
            services: Default::default(),
        };
        let mut g = GroupState::new(compile(&cfg, 1000).unwrap().remove(0));
        g.evaluate(&s, "default", &Limits::default(), "", t0 + 60_000);
        let r = &g.rules[0];
        assert!(r.last_error.is_none(), "{:?}", r.last_error);
        let alerts: Vec<_> = r.alerts.values().collect();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].labels.get("service"), Some("cart"));
        let a = alerts[1];
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!(a.labels.get("service"), Some("checkout"));
        assert_eq!(a.labels.get("host"), Some("node-1"));
        assert!((a.value - 0.95).abs() < 1e-6, "{}", a.value);
        assert!(a.annotations[0].1.contains("node-1"), "{:?}", a.annotations);
    }
}
