//! Reading `triad.yaml`: YAML parse errors and validation errors name the file, the key
//! and the fix.

use std::path::Path;

use anyhow::Context;
use triad_model::config::{Config, ValidConfig};

/// Loads and validates the configuration; `None` means all defaults.
pub fn load(path: Option<&Path>) -> anyhow::Result<ValidConfig> {
    let Some(path) = path else {
        return Config::default()
            .validate()
            .map_err(|e| anyhow::anyhow!("default configuration: {e}"));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let cfg = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // Files named in the configuration are relative to it, as in Prometheus.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    cfg.modify(|c| {
        if let Some(f) = &mut c.collector.metrics.scrape_config_file
            && f.is_relative()
        {
            *f = base.join(&*f);
        }
        let tenants = c.alerting.tenants.values_mut().map(|t| &mut t.rule_files);
        for pattern in c.alerting.rule_files.iter_mut().chain(tenants.flatten()) {
            if Path::new(pattern.as_str()).is_relative() {
                *pattern = base.join(&*pattern).to_string_lossy().into_owned();
            }
        }
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Parses and validates YAML text.
pub fn parse(text: &str) -> Result<ValidConfig, String> {
    // An empty file means "all defaults", as it would for Prometheus.
    let cfg: Config = if text.trim().is_empty() {
        Config::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    let cfg = cfg.validate().map_err(|e| e.to_string())?;
    // Glob syntax is checked here too, so check-config reports it before a start.
    triad_agent::tailer::Tailer::new(tailer_config(&cfg.agent))
        .map_err(|e| format!("agent.include/exclude: {e}; fix the glob pattern"))?;
    Ok(cfg)
}

/// Loads the Prometheus configuration named by `collector.metrics.scrape_config_file`
/// (`None` when none is set): YAML errors and invalid scrape configs name the file and
/// the key.
pub fn load_scrape_config(
    cfg: &ValidConfig,
) -> anyhow::Result<Option<triad_model::promconfig::PromConfig>> {
    let Some(path) = &cfg.collector.metrics.scrape_config_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "collector.metrics.scrape_config_file: cannot read {}",
            path.display()
        )
    })?;
    let prom =
        parse_scrape_config(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for section in prom.ignored_sections() {
        tracing::info!(file = %path.display(), section, "section of the Prometheus configuration not used by Triad");
    }
    Ok(Some(prom))
}

/// Reads every rule file and compiles the golden signals: the rule groups to run.
pub fn load_rule_groups(
    cfg: &ValidConfig,
) -> anyhow::Result<Vec<triad_query::alert::rules::RuleGroup>> {
    triad_query::alert::load_groups(&cfg.alerting, Path::new(""))
        .map_err(|e| anyhow::anyhow!("alerting: {e}"))
}

/// Parses and validates a `prometheus.yml`.
pub fn parse_scrape_config(text: &str) -> Result<triad_model::promconfig::PromConfig, String> {
    let prom: triad_model::promconfig::PromConfig = if text.trim().is_empty() {
        Default::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    prom.validate().map_err(|e| e.to_string())?;
    Ok(prom)
}

/// The tailer settings of the `agent` section.
pub fn tailer_config(a: &triad_model::config::AgentConfig) -> triad_agent::tailer::TailerConfig {
    use triad_agent::tailer::TailerConfig;
    TailerConfig {
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        read_from: a.read_from,
        max_line_bytes: a.max_line_bytes,
        ignore_older: std::time::Duration::from_secs(a.ignore_older_secs),
        close_idle: std::time::Duration::from_secs(a.close_idle_secs),
        ..TailerConfig::default()
    }
}

#[cfg(test)]
mod tests {

    /// Dotted keys of a config value: `a.b`, list items as `a[].b`, the golden-signal
    /// services map as `services.<name>.x`; string maps and recursive routes are leaves.
    fn keys(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    // Maps keyed by a name: golden-signal services, per-tenant limits
                    // and alerting.
                    let named = prefix.ends_with(".services")
                        || prefix == "limits.tenants"
                        || prefix == "alerting.tenants";
                    let key = if named {
                        format!("{prefix}.<name>")
                    } else if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if named {
                        keys(x, &key, out);
                        continue;
                    }
                    // Sections (always-present structs) have no row of their own; optional
                    // structs, lists and maps do.
                    let section = x.as_object().is_some_and(|o| !o.is_empty())
                        && !matches!(
                            k.as_str(),
                            "default"
                                | "latency"
                                | "errors"
                                | "traffic"
                                | "saturation"
                                | "services"
                                | "tenants"
                                | "labels"
                                | "headers"
                        );
                    if !section {
                        out.insert(key.clone());
                    }
                    if !(k == "labels" || k == "headers" || k == "routes") {
                        keys(x, &key, out);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    keys(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }

    /// docs/configuration.md names every key of the configuration, and no other.
    #[test]
    fn configuration_reference_matches_the_structs() {
        use triad_model::alerting::*;
        let mut c = Config::default();
        c.alerting.receivers.push(WebhookReceiver {
            name: "ops".into(),
            url: "http://x/".into(),
            bearer_token: Some("t".into()),
            headers: [("X".to_string(), "y".to_string())].into_iter().collect(),
            timeout_secs: 10,
            send_resolved: true,
            max_alerts: 0,
        });
        let all = GoldenSignals {
            latency: Some(LatencySignal {
                threshold_seconds: 1.0,
                quantile: 0.99,
                window_secs: 60,
                for_secs: 60,
            }),
            errors: Some(ErrorSignal {
                ratio_threshold: 0.1,
                window_secs: 60,
                for_secs: 60,
                slo: Some(0.99),
            }),
            traffic: Some(TrafficSignal {
                min_rps: Some(1.0),
                drop_factor: Some(2.0),
                compare_offset_secs: 60,
                window_secs: 60,
                for_secs: 60,
            }),
            saturation: Some(SaturationSignal {
                cpu_ratio: Some(0.9),
                memory_ratio: Some(0.9),
                disk_ratio: Some(0.9),
                host_label: "host".into(),
                window_secs: 60,
                for_secs: 60,
            }),
        };
        c.alerting.golden_signals.default = Some(all.clone());
        c.alerting
            .golden_signals
            .services
            .insert("checkout".into(), all.clone());
        let mut team = TenantAlerting {
            rule_files: vec!["team-b/*.yml".into()],
            ..Default::default()
        };
        team.golden_signals.default = Some(all.clone());
        team.golden_signals.services.insert("api".into(), all);
        c.alerting.tenants.insert("team-b".into(), team);
        c.collector.metrics.scrape_config_file = Some("prometheus.yml".into());
        c.limits.tenants.insert("team-a".into(), Default::default());
        c.auth = triad_model::config::AuthSetting::Tokens(triad_model::config::AuthConfig {
            tokens: vec![triad_model::config::TokenConfig {
                name: "n".into(),
                hash: triad_model::auth::TokenHash::of("t").to_string(),
                tenant: "t".into(),
                role: triad_model::auth::Role::Read,
                trusted: true,
            }],
            protect_metrics: false,
        });
        let mut expected = std::collections::BTreeSet::new();
        keys(&serde_json::to_value(&c).unwrap(), "", &mut expected);
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/configuration.md"
        ))
        .unwrap();
        let documented: std::collections::BTreeSet<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_string)
            .collect();
        let missing: Vec<_> = expected.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&expected).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/configuration.md is out of date (run scripts/config-reference.py): \
             missing {missing:?}, unknown {unknown:?}"
        );
    }

    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("collector:\n  logs:\n    comit_interval_ms: 5\n").unwrap_err();
        assert!(e.contains("comit_interval_ms"), "{e}");
    }

    #[test]
    fn values_are_validated_with_the_key() {
        let e = parse("query:\n  max_log_hits: 0\n").unwrap_err();
        assert!(e.contains("query.max_log_hits"), "{e}");
    }

    #[test]
    fn agent_section_and_bad_globs() {
        let c = parse(
            "agent:\n  include: [\"/var/log/*.log\"]\n  read_from: end\n  labels: {env: prod}\n",
        )
        .unwrap();
        assert_eq!(c.agent.include, vec!["/var/log/*.log"]);
        let e = parse("agent:\n  include: [\"/var/log/[\"]\n").unwrap_err();
        assert!(
            e.contains("agent.include") && e.contains("/var/log/["),
            "{e}"
        );
        let e = parse("agent:\n  read_from: middle\n").unwrap_err();
        assert!(e.contains("middle"), "{e}");
    }

    #[test]
    fn partial_files_keep_defaults() {
        let c =
            parse("data_dir: /tmp/x\ncollector:\n  traces:\n    retention_secs: 86400\n").unwrap();
        assert_eq!(c.collector.traces.retention_secs, 86_400);
        assert_eq!(c.collector.logs.retention_secs, 7 * 86_400);
        assert!(parse("").is_ok());
    }
}
