//! Prometheus rule-group files: parsing and checking, with errors that name the file, the
//! line and the reason, as `promtool check rules` reports them.
//!
//! ```yaml
//! groups:
//!   - name: checkout
//!     interval: 30s
//!     rules:
//!       - record: service:requests:rate5m
//!         expr: sum by (service) (rate(triad_span_requests_total[5m]))
//!       - alert: CheckoutSlow
//!         expr: histogram_quantile(0.99, sum by (le) (rate(triad_span_duration_seconds_bucket{service="checkout"}[5m]))) > 0.5
//!         for: 2m
//!         keep_firing_for: 1m
//!         labels: {severity: page}
//!         annotations:
//!           summary: "checkout p99 is {{ $value | humanizeDuration }}"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::template;
use triad_promql::Engine;

/// A rule file that cannot be used; the message reads `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct RuleError {
    /// The file, as configured.
    pub file: String,
    /// 1-based line (0 when the whole file is at fault).
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// A group of rules evaluated together, in order, every `interval_ms`.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    /// Group name (unique within its file).
    pub name: String,
    /// File the group came from (`<golden_signals>` for built-in rules).
    pub file: String,
    /// Evaluation interval, ms.
    pub interval_ms: i64,
    /// Most alerts or series one rule may produce (0: no limit).
    pub limit: usize,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The tenant whose metrics the rules read and write and whose members see the
    /// alerts (set by [`super::load_groups`]).
    pub tenant: String,
}

/// One alerting or recording rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `alert` or `record` name.
    pub name: String,
    /// The PromQL text as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Labels added to the result (templates for alerts).
    pub labels: Vec<(String, String)>,
    /// Alerting part; `None` for recording rules.
    pub alert: Option<AlertSpec>,
}

/// The alerting part of a rule.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    /// How long the condition must hold before firing, ms.
    pub for_ms: i64,
    /// How long an alert keeps firing after the condition cleared, ms.
    pub keep_firing_for_ms: i64,
    /// Annotation templates.
    pub annotations: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    groups: Vec<GroupDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    name: Spanned<String>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    rules: Vec<RuleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    record: Option<Spanned<String>>,
    #[serde(default)]
    alert: Option<Spanned<String>>,
    expr: Spanned<String>,
    #[serde(default, rename = "for")]
    for_: Option<Spanned<String>>,
    #[serde(default)]
    keep_firing_for: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, Spanned<String>>,
}

/// Expands the configured patterns (relative ones against `base`) into files, sorted
/// within each pattern. A pattern without wildcards must name an existing file.
pub fn expand_patterns(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, RuleError> {
    let mut out = Vec::new();
    for p in patterns {
        let path = base.join(p);
        let text = path.to_string_lossy().into_owned();
        if !p.contains(['*', '?', '[']) {
            if !path.is_file() {
                return Err(RuleError {
                    file: text,
                    line: 0,
                    reason: "no such file (alerting.rule_files is relative to triad.yaml)".into(),
                });
            }
            out.push(path);
            continue;
        }
        let paths = glob::glob(&text).map_err(|e| RuleError {
            file: text.clone(),
            line: 0,
            reason: format!("bad pattern: {e}"),
        })?;
        let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Reads and checks rule files; `default_interval_ms` applies to groups without one.
pub fn load_files(
    files: &[PathBuf],
    default_interval_ms: i64,
) -> Result<Vec<RuleGroup>, RuleError> {
    let mut groups = Vec::new();
    for f in files {
        let name = f.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(f).map_err(|e| RuleError {
            file: name.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        groups.extend(parse(&name, &text, default_interval_ms)?);
    }
    Ok(groups)
}

/// Parses and checks one rule file's text.
pub fn parse(
    file: &str,
    text: &str,
    default_interval_ms: i64,
) -> Result<Vec<RuleGroup>, RuleError> {
    let err = |line: u64, reason: String| RuleError {
        file: file.to_string(),
        line,
        reason,
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: FileDoc = serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        err(
            line_of_yaml_error(&msg),
            msg.lines().next().unwrap_or("").to_string(),
        )
    })?;
    let mut seen = std::collections::BTreeSet::new();
    let mut groups = Vec::new();
    for g in doc.groups {
        let gline = g.name.referenced.line();
        if g.name.value.is_empty() {
            return Err(err(gline, "group name must not be empty".into()));
        }
        if !seen.insert(g.name.value.clone()) {
            return Err(err(
                gline,
                format!("group {:?}: repeated in the same file", g.name.value),
            ));
        }
        let interval_ms = match &g.interval {
            None => default_interval_ms,
            Some(i) => match triad_model::promconfig::parse_duration_ms(&i.value) {
                Ok(ms) if ms > 0 => ms,
                Ok(_) => {
                    return Err(err(
                        i.referenced.line(),
                        format!("group {:?}: interval must be above 0", g.name.value),
                    ));
                }
                Err(e) => {
                    return Err(err(
                        i.referenced.line(),
                        format!("group {:?}: {e}", g.name.value),
                    ));
                }
            },
        };
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let where_ = |name: &str| format!("group {:?}, rule {}, {name:?}", g.name.value, i + 1);
            rules.push(check_rule(r, &where_, &err)?);
        }
        groups.push(RuleGroup {
            name: g.name.value,
            file: file.to_string(),
            interval_ms,
            limit: g.limit,
            rules,
            tenant: String::new(),
        });
    }
    Ok(groups)
}

fn check_rule(
    r: RuleDoc,
    where_: &dyn Fn(&str) -> String,
    err: &dyn Fn(u64, String) -> RuleError,
) -> Result<Rule, RuleError> {
    let eline = r.expr.referenced.line();
    let (name, nline, is_alert) = match (&r.record, &r.alert) {
        (Some(rec), None) => (rec.value.clone(), rec.referenced.line(), false),
        (None, Some(a)) => (a.value.clone(), a.referenced.line(), true),
        (Some(rec), Some(_)) => {
            return Err(err(
                rec.referenced.line(),
                format!(
                    "{}: only one of 'record' and 'alert' may be set",
                    where_(&rec.value)
                ),
            ));
        }
        (None, None) => {
            return Err(err(
                eline,
                format!("{}: one of 'record' or 'alert' must be set", where_("")),
            ));
        }
    };
    let at = where_(&name);
    if name.is_empty() {
        return Err(err(nline, format!("{at}: the name must not be empty")));
    }
    if !is_alert && !is_metric_name(&name) {
        return Err(err(
            nline,
            format!("{at}: invalid recording rule name {name:?}"),
        ));
    }
    if r.expr.value.trim().is_empty() {
        return Err(err(eline, format!("{at}: field 'expr' must be set")));
    }
    let expr = Engine::parse(&r.expr.value)
        .map_err(|e| err(eline, format!("{at}: could not parse expression: {e}")))?;
    let mut labels = Vec::new();
    for (k, v) in &r.labels {
        if !triad_model::metric::is_label_name(k) || k == "__name__" {
            return Err(err(
                v.referenced.line(),
                format!("{at}: invalid label name {k:?}"),
            ));
        }
        if is_alert {
            template::check(&v.value).map_err(|e| {
                err(
                    v.referenced.line(),
                    format!("{at}: label {k:?}: template: {e}"),
                )
            })?;
        }
        labels.push((k.clone(), v.value.clone()));
    }
    if !is_alert {
        for (field, set) in [
            ("for", r.for_.is_some()),
            ("keep_firing_for", r.keep_firing_for.is_some()),
            ("annotations", !r.annotations.is_empty()),
        ] {
            if set {
                return Err(err(
                    nline,
                    format!("{at}: invalid field '{field}' in recording rule"),
                ));
            }
        }
        return Ok(Rule {
            name,
            expr_text: r.expr.value,
            expr,
            labels,
            alert: None,
        });
    }
    let duration = |d: &Option<Spanned<String>>, field: &str| -> Result<i64, RuleError> {
        match d {
            None => Ok(0),
            Some(d) => match triad_model::promconfig::parse_duration_ms(&d.value) {
                Ok(ms) if ms >= 0 => Ok(ms),
                Ok(_) => Err(err(
                    d.referenced.line(),
                    format!("{at}: '{field}' must not be negative"),
                )),
                Err(e) => Err(err(d.referenced.line(), format!("{at}: '{field}': {e}"))),
            },
        }
    };
    let for_ms = duration(&r.for_, "for")?;
    let keep_firing_for_ms = duration(&r.keep_firing_for, "keep_firing_for")?;
    let mut annotations = Vec::new();
    for (k, v) in &r.annotations {
        template::check(&v.value).map_err(|e| {
            err(
                v.referenced.line(),
                format!("{at}: annotation {k:?}: template: {e}"),
            )
        })?;
        annotations.push((k.clone(), v.value.clone()));
    }
    Ok(Rule {
        name,
        expr_text: r.expr.value,
        expr,
        labels,
        alert: Some(AlertSpec {
            for_ms,
            keep_firing_for_ms,
            annotations,
        }),
    })
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// serde-saphyr writes the position as "line N"; 0 when it does not.
fn line_of_yaml_error(msg: &str) -> u64 {
    msg.split("line ")
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: checkout
    interval: 30s
    rules:
      - record: service:requests:rate5m
        expr: sum by (service) (rate(triad_span_requests_total[5m]))
      - alert: CheckoutSlow
        expr: histogram_quantile(0.99, sum by (le) (rate(triad_span_duration_seconds_bucket[5m]))) > 0.5
        for: 2m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "p99 is {{ $value | humanizeDuration }}"
  - name: other
    rules: []
"#;

    #[test]
    fn parses_groups_and_rules() {
        let g = parse("r.yml", GOOD, 60_000).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].interval_ms, 30_000);
        assert_eq!(g[1].interval_ms, 60_000);
        assert!(g[0].rules[0].alert.is_none());
        let a = g[0].rules[1].alert.as_ref().unwrap();
        assert_eq!((a.for_ms, a.keep_firing_for_ms), (120_000, 60_000));
        assert_eq!(
            g[0].rules[1].labels,
            vec![("severity".into(), "page".into())]
        );
    }

    fn error_of(text: &str) -> RuleError {
        parse("bad.yml", text, 60_000).unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let e = error_of(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n",
        );
        assert_eq!((e.file.as_str(), e.line), ("bad.yml", 5), "{e}");
        assert!(e.reason.contains("could not parse expression"), "{e}");

        let e = error_of(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          s: \"{{ $value \"\n",
        );
        assert_eq!(e.line, 7, "{e}");
        assert!(e.reason.contains("template"), "{e}");

        let e = error_of(
            "groups:\n  - name: g\n    rules:\n      - record: bad-name\n        expr: up\n",
        );
        assert_eq!(e.line, 4, "{e}");

        let e = error_of(
            "groups:\n  - name: g\n    rules:\n      - record: ok\n        expr: up\n        for: 5m\n",
        );
        assert!(e.reason.contains("'for'"), "{e}");

        let e = error_of("groups:\n  - name: g\n  - name: g\n");
        assert_eq!(e.line, 3, "{e}");

        let e = error_of(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        frobnicate: 1\n",
        );
        assert!(e.line >= 4 && e.reason.contains("frobnicate"), "{e}");

        let e = error_of("groups:\n  - name: g\n    interval: soon\n");
        assert_eq!(e.line, 3, "{e}");

        let e = error_of("groups:\n  - name: g\n    rules:\n      - expr: up\n");
        assert!(e.reason.contains("'record' or 'alert'"), "{e}");
    }
}
