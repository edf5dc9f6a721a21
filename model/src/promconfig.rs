//! The parts of Prometheus' own configuration file (`prometheus.yml`) that Triad's
//! scraper follows: `global` and `scrape_configs` with static and file service
//! discovery and relabeling. Other top-level sections (`rule_files`, `alerting`,
//! `remote_write`, …) are accepted and ignored, so an existing file works as it is;
//! unknown keys inside a scrape config are errors that name the key.
//!
//! Parsing the YAML is the binary's job; [`PromConfig::validate`] checks values and
//! compiles the regular expressions without I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::ConfigError;

/// A duration written as Prometheus does (`15s`, `1m30s`, `2h`, `100ms`, `1d`, `1w`,
/// `1y`), held in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromDuration(pub i64);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration_ms(&s)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a Prometheus duration (or a number of seconds, as the HTTP API also accepts)
/// into ms.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let err = || format!("cannot parse {s:?} as a duration: use e.g. 15s, 1m30s, 2h");
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e12 {
            return Err(err());
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    let mut rest = s;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(err()),
        };
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A size as Prometheus writes it (`10MB`, `512KiB`, `0`), held in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct PromBytes(pub u64);

impl<'de> Deserialize<'de> for PromBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let n: u64 = t[..split].parse().map_err(|_| {
            serde::de::Error::custom(format!("cannot parse {s:?} as a size, e.g. 10MB"))
        })?;
        let scale: u64 = match t[split..].trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown size unit {other:?} in {s:?}: use B, KB, MB, GB, KiB, MiB or GiB"
                )));
            }
        };
        Ok(PromBytes(n.saturating_mul(scale)))
    }
}

/// The whole `prometheus.yml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PromConfig {
    /// Defaults for every scrape config.
    pub global: GlobalConfig,
    /// The scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(flatten)]
    ignored: BTreeMap<String, serde::de::IgnoredAny>,
}

/// `global:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    pub scrape_interval: PromDuration,
    /// Default scrape timeout (10s).
    pub scrape_timeout: PromDuration,
    /// Rule evaluation interval (1m); also the default subquery step.
    pub evaluation_interval: PromDuration,
    /// Labels added to every scraped series that lacks them.
    pub external_labels: BTreeMap<String, String>,
    /// Default body size limit of a scrape; 0 means Triad's limit (64 MiB).
    pub body_size_limit: PromBytes,
    /// Default sample limit per scrape; 0 means none.
    pub sample_limit: u64,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: PromDuration(60_000),
            scrape_timeout: PromDuration(10_000),
            evaluation_interval: PromDuration(60_000),
            external_labels: BTreeMap::new(),
            body_size_limit: PromBytes(0),
            sample_limit: 0,
        }
    }
}

/// One entry of `scrape_configs:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of its targets.
    pub job_name: String,
    /// How often to scrape; the global one when absent.
    pub scrape_interval: Option<PromDuration>,
    /// How long a scrape may take; the global one when absent (capped by the interval).
    pub scrape_timeout: Option<PromDuration>,
    /// Path of the metrics endpoint.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the exposition's labels when they clash with target labels.
    #[serde(default)]
    pub honor_labels: bool,
    /// Use the exposition's timestamps when present.
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Fixed targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Targets from JSON or YAML files, re-read every `refresh_interval`.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabeling of targets before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples before storing.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Largest uncompressed body; larger fails the scrape.
    pub body_size_limit: Option<PromBytes>,
    /// Most samples a scrape may return after relabeling; more fails the scrape.
    pub sample_limit: Option<u64>,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header (`type` defaults to Bearer).
    pub authorization: Option<Authorization>,
    /// TLS settings.
    pub tls_config: Option<TlsConfig>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn yes() -> bool {
    true
}

/// `static_configs:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files (the last path element may hold `*`) with target groups.
    pub files: Vec<PathBuf>,
    /// How often to re-read them (5m).
    #[serde(default = "five_minutes")]
    pub refresh_interval: PromDuration,
}

fn five_minutes() -> PromDuration {
    PromDuration(300_000)
}

/// `basic_auth:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// `authorization:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme, `Bearer` by default.
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    /// The credentials.
    pub credentials: String,
}

fn bearer() -> String {
    "Bearer".into()
}

/// `tls_config:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// What a relabeling step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Sets `target_label` to `replacement` expanded with the regex's groups.
    #[default]
    Replace,
    /// Keeps only when the joined source values match.
    Keep,
    /// Drops when the joined source values match.
    Drop,
    /// Copies labels whose names match to the expanded names.
    Labelmap,
    /// Removes labels whose names match.
    Labeldrop,
    /// Keeps only labels whose names match.
    Labelkeep,
    /// Sets `target_label` to the md5 of the source values modulo `modulus`.
    Hashmod,
    /// Sets `target_label` to the lower-cased source values.
    Lowercase,
    /// Sets `target_label` to the upper-cased source values.
    Uppercase,
    /// Keeps when the source values equal `target_label`'s value.
    Keepequal,
    /// Drops when the source values equal `target_label`'s value.
    Dropequal,
}

/// One relabeling step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator`.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values (`;`).
    #[serde(default = "semicolon")]
    pub separator: String,
    /// Label to write.
    #[serde(default)]
    pub target_label: String,
    /// Regular expression (anchored), `(.*)` by default.
    #[serde(default = "match_all")]
    pub regex: String,
    /// For `hashmod`.
    #[serde(default)]
    pub modulus: u64,
    /// Value to write, `$1` by default.
    #[serde(default = "dollar_one")]
    pub replacement: String,
    /// What to do.
    #[serde(default)]
    pub action: RelabelAction,
}

fn semicolon() -> String {
    ";".into()
}
fn match_all() -> String {
    "(.*)".into()
}
fn dollar_one() -> String {
    "$1".into()
}

impl PromConfig {
    /// Top-level sections present in the file that Triad does not use.
    pub fn ignored_sections(&self) -> Vec<&str> {
        self.ignored.keys().map(String::as_str).collect()
    }

    /// Checks every scrape config; errors name `scrape_configs[i].key`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            let key = |k: &str| format!("scrape_configs[{i}].{k}");
            if sc.job_name.is_empty() {
                return Err(ConfigError {
                    key: key("job_name"),
                    problem: "is empty".into(),
                    fix: "give every scrape config a job name".into(),
                });
            }
            if !names.insert(sc.job_name.as_str()) {
                return Err(ConfigError {
                    key: key("job_name"),
                    problem: format!("{:?} is used twice", sc.job_name),
                    fix: "job names must be unique".into(),
                });
            }
            if sc.scheme != "http" && sc.scheme != "https" {
                return Err(ConfigError {
                    key: key("scheme"),
                    problem: format!("{:?} is not http or https", sc.scheme),
                    fix: "use http or https".into(),
                });
            }
            let interval = sc.scrape_interval.unwrap_or(self.global.scrape_interval).0;
            if interval <= 0 {
                return Err(ConfigError {
                    key: key("scrape_interval"),
                    problem: "must be positive".into(),
                    fix: "e.g. 15s".into(),
                });
            }
            if let Some(t) = sc.scrape_timeout.filter(|t| t.0 > interval) {
                return Err(ConfigError {
                    key: key("scrape_timeout"),
                    problem: format!(
                        "{}ms is longer than the scrape interval ({interval}ms)",
                        t.0
                    ),
                    fix: "make the timeout at most the interval".into(),
                });
            }
            for (list, name) in [
                (&sc.relabel_configs, "relabel_configs"),
                (&sc.metric_relabel_configs, "metric_relabel_configs"),
            ] {
                for (j, rc) in list.iter().enumerate() {
                    let k = format!("scrape_configs[{i}].{name}[{j}]");
                    rc.validate(&k)?;
                }
            }
        }
        Ok(())
    }
}

impl RelabelConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if let Err(e) = regex::Regex::new(&format!("^(?s:{})$", self.regex)) {
            return Err(ConfigError {
                key: format!("{key}.regex"),
                problem: format!("{:?} does not compile: {e}", self.regex),
                fix: "write an RE2 regular expression".into(),
            });
        }
        let needs_target = matches!(
            self.action,
            RelabelAction::Replace
                | RelabelAction::Hashmod
                | RelabelAction::Lowercase
                | RelabelAction::Uppercase
                | RelabelAction::Keepequal
                | RelabelAction::Dropequal
        );
        if needs_target && self.target_label.is_empty() {
            return Err(ConfigError {
                key: format!("{key}.target_label"),
                problem: format!("is required for action {:?}", self.action),
                fix: "name the label to write".into(),
            });
        }
        if self.action == RelabelAction::Hashmod && self.modulus == 0 {
            return Err(ConfigError {
                key: format!("{key}.modulus"),
                problem: "is 0".into(),
                fix: "set a positive modulus for hashmod".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("100ms"), Ok(100));
        assert_eq!(parse_duration_ms("2"), Ok(2_000));
        assert!(parse_duration_ms("1 m").is_err());
        assert!(parse_duration_ms("").is_err());
    }
}
