//! Label and annotation templates, in Go's text/template language as Prometheus has them:
//! `{{ $labels.service }}`, `{{ $value }}`, `{{ $value | humanizePercentage }}`,
//! `{{ printf "%.2f" $value }}`, `{{ if gt $value 0.5 }}…{{ end }}`.
//!
//! The engine is the `gtmpl` crate (Go's template language in Rust) with Prometheus'
//! helper functions added. Prometheus' variables are defined the way Prometheus defines
//! them: by a prefix `{{$labels := .Labels}}{{$value := .Value}}…`.
//!
//! gtmpl 0.7.1 loops forever on an action that is not closed when whitespace follows it
//! (`"{{ $value "`), so [`check`] finds unclosed actions itself before gtmpl sees the text.

use std::collections::HashMap;

use gtmpl::{Context, FuncError, Template, Value};

const PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// What a template sees.
pub struct TemplateData<'a> {
    /// The alert's labels (`$labels`).
    pub labels: &'a [(String, String)],
    /// The value of the expression for this alert (`$value`).
    pub value: f64,
    /// `$externalURL`.
    pub external_url: &'a str,
}

/// Checks that a template parses; the error says where (line within the template) and why.
pub fn check(src: &str) -> Result<(), String> {
    unclosed_action(src)?;
    build(src).map(|_| ())
}

/// Expands a template. An error is written into the result, as Prometheus does
/// (`<error expanding template: …>`), so the alert still goes out.
pub fn expand(src: &str, data: &TemplateData<'_>) -> String {
    if !src.contains("{{") {
        return src.to_string();
    }
    let run = || -> Result<String, String> {
        unclosed_action(src)?;
        let t = build(src)?;
        let labels: HashMap<String, Value> = data
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let mut m: HashMap<String, Value> = HashMap::new();
        m.insert("Labels".into(), Value::from(labels));
        m.insert(
            "ExternalLabels".into(),
            Value::from(HashMap::<String, Value>::new()),
        );
        m.insert("ExternalURL".into(), Value::from(data.external_url));
        m.insert("Value".into(), Value::from(data.value));
        t.render(&Context::from(Value::from(m)))
            .map_err(|e| e.to_string())
    };
    run().unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

fn build(src: &str) -> Result<Template, String> {
    let mut t = Template::default();
    t.add_funcs(&[
        ("humanize", humanize as gtmpl::Func),
        ("humanize1024", humanize1024),
        ("humanizeDuration", humanize_duration),
        ("humanizePercentage", humanize_percentage),
        ("humanizeTimestamp", humanize_timestamp),
        ("toUpper", to_upper),
        ("toLower", to_lower),
        ("title", title),
        ("stripPort", strip_port),
        ("match", match_re),
        ("reReplaceAll", re_replace_all),
    ]);
    // The prefix has no line break, so line numbers in errors are the template's.
    t.parse(format!("{PREFIX}{src}"))
        .map_err(|e| e.to_string())?;
    Ok(t)
}

/// Finds an action (`{{ … }}`) that is never closed, or that holds a non-ASCII character
/// outside its quoted strings, skipping quoted strings and comments.
pub(crate) fn unclosed_action(src: &str) -> Result<(), String> {
    let b = src.as_bytes();
    let mut i = 0;
    while let Some(off) = src[i..].find("{{") {
        let start = i + off;
        let mut j = start + 2;
        let body = src[j..].trim_start_matches(['-', ' ']);
        if body.starts_with("/*") {
            match src[j..].find("*/") {
                Some(end)
                    if src[j + end..]
                        .trim_start_matches(['*', '/', ' ', '-'])
                        .starts_with("}}") =>
                {
                    i = j + end + 2;
                    continue;
                }
                _ => return Err(format!("unclosed comment at byte {start}")),
            }
        }
        let closed = loop {
            match b.get(j) {
                None => break false,
                Some(b'}') if b.get(j + 1) == Some(&b'}') => break true,
                Some(&q @ (b'"' | b'\'' | b'`')) => {
                    j += 1;
                    while let Some(&c) = b.get(j) {
                        if c == b'\\' && q != b'`' {
                            j += 2;
                            continue;
                        }
                        j += 1;
                        if c == q {
                            break;
                        }
                    }
                }
                // gtmpl 0.7.1's lexer slices actions by byte and panics on a character
                // of several bytes outside a string (found by fuzzing LogQL's templates).
                Some(&c) if c >= 0x80 => {
                    return Err(format!(
                        "the action opened at byte {start} has a non-ASCII character at byte {j}: \
                         only quoted strings in an action may hold one"
                    ));
                }
                Some(_) => j += 1,
            }
        };
        if !closed {
            return Err(format!(
                "action opened at byte {start} is not closed with }}}}"
            ));
        }
        i = j + 2;
    }
    Ok(())
}

fn arg_f64(args: &[Value], name: &str) -> Result<f64, FuncError> {
    match args.first() {
        Some(Value::Number(n)) => n
            .as_f64()
            .or_else(|| n.as_i64().map(|i| i as f64))
            .or_else(|| n.as_u64().map(|u| u as f64))
            .ok_or_else(|| FuncError::Generic(format!("{name}: not a number"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| FuncError::Generic(format!("{name}: {s:?} is not a number"))),
        _ => Err(FuncError::Generic(format!("{name} needs one number"))),
    }
}

pub(crate) fn arg_str(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
        None => Err(FuncError::Generic(format!(
            "{name}: missing argument {}",
            i + 1
        ))),
    }
}

/// Go's `%.4g`, as Prometheus' humanize functions print.
fn g4(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return triad_promql::format_value(v);
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..4).contains(&exp) {
        let s = format!("{:.3e}", v);
        // Rust prints 1.235e5; Go prints 1.235e+05 and trims zeros of the mantissa.
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (3 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn scaled(v: f64, base: f64, big: &[&str], small: &[&str]) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    if v.abs() >= 1.0 {
        let mut v = v;
        let mut prefix = "";
        for p in big {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
        return format!("{}{prefix}", g4(v));
    }
    let mut v = v;
    let mut prefix = "";
    for p in small {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= base;
    }
    format!("{}{prefix}", g4(v))
}

fn humanize(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg_f64(args, "humanize")?;
    Ok(Value::from(scaled(
        v,
        1000.0,
        &["k", "M", "G", "T", "P", "E", "Z", "Y"],
        &["m", "u", "n", "p", "f", "a", "z", "y"],
    )))
}

fn humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg_f64(args, "humanize1024")?;
    if v.abs() <= 1.0 || !v.is_finite() {
        return Ok(Value::from(g4(v)));
    }
    Ok(Value::from(scaled(
        v,
        1024.0,
        &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"],
        &[],
    )))
}

fn humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg_f64(args, "humanizeDuration")?;
    if !v.is_finite() {
        return Ok(Value::from(g4(v)));
    }
    if v.abs() < 1.0 {
        let small = scaled(v, 1000.0, &[], &["m", "u", "n", "p", "f", "a"]);
        return Ok(Value::from(format!("{small}s")));
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let secs = v.abs();
    let total = secs as u64;
    let (d, h, m) = (total / 86_400, total / 3600 % 24, total / 60 % 60);
    let s = secs - (total - total % 60) as f64;
    let mut out = String::from(sign);
    if d > 0 {
        out += &format!("{d}d ");
    }
    if d > 0 || h > 0 {
        out += &format!("{h}h ");
    }
    if d > 0 || h > 0 || m > 0 {
        out += &format!("{m}m ");
    }
    out += &format!("{}s", trim_zeros(&format!("{s:.3}")));
    Ok(Value::from(out))
}

fn humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg_f64(args, "humanizePercentage")?;
    Ok(Value::from(format!("{}%", g4(v * 100.0))))
}

fn humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg_f64(args, "humanizeTimestamp")?;
    if !v.is_finite() {
        return Ok(Value::from(g4(v)));
    }
    let ns = (v * 1e9) as i64;
    Ok(Value::from(crate::time::format_rfc3339(ns)))
}

pub(crate) fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(arg_str(args, 0, "toUpper")?.to_uppercase()))
}

pub(crate) fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(arg_str(args, 0, "toLower")?.to_lowercase()))
}

pub(crate) fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::from(out))
}

fn strip_port(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "stripPort")?;
    let host = match s.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        }
        _ => s,
    };
    Ok(Value::from(host))
}

pub(crate) fn regex(pattern: &str, name: &str) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(pattern).map_err(|e| FuncError::Generic(format!("{name}: {e}")))
}

fn match_re(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex(&arg_str(args, 0, "match")?, "match")?;
    Ok(Value::from(re.is_match(&arg_str(args, 1, "match")?)))
}

fn re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex(&arg_str(args, 0, "reReplaceAll")?, "reReplaceAll")?;
    let repl = arg_str(args, 1, "reReplaceAll")?;
    let text = arg_str(args, 2, "reReplaceAll")?;
    Ok(Value::from(
        re.replace_all(&text, repl.as_str()).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: f64) -> TemplateData<'static> {
        static LABELS: std::sync::LazyLock<Vec<(String, String)>> =
            std::sync::LazyLock::new(|| {
                vec![
                    ("service".into(), "checkout".into()),
                    ("instance".into(), "10.0.0.1:9100".into()),
                ]
            });
        TemplateData {
            labels: &LABELS,
            value,
            external_url: "http://triad:7070",
        }
    }

    #[test]
    fn prometheus_variables_and_functions() {
        let cases = [
            ("{{ $labels.service }} is slow", 1.0, "checkout is slow"),
            ("{{ $value }}", 0.25, "0.25"),
            ("{{ printf \"%.2f\" $value }}", 1.23456, "1.23"),
            ("{{ $value | humanizePercentage }}", 0.0523, "5.23%"),
            ("{{ humanize $value }}", 1234567.0, "1.235M"),
            ("{{ humanize $value }}", 0.0012, "1.2m"),
            ("{{ humanize1024 $value }}", 2048.0, "2ki"),
            ("{{ humanizeDuration $value }}", 3725.5, "1h 2m 5.5s"),
            ("{{ humanizeDuration $value }}", 0.25, "250ms"),
            ("{{ $labels.instance | stripPort }}", 0.0, "10.0.0.1"),
            ("{{ toUpper $labels.service }}", 0.0, "CHECKOUT"),
            (
                "{{ if gt $value 0.5 }}high{{ else }}low{{ end }}",
                0.7,
                "high",
            ),
            ("{{ $externalURL }}/alerts", 0.0, "http://triad:7070/alerts"),
            (
                "{{ reReplaceAll \"c(.)\" \"x$1\" $labels.service }}",
                0.0,
                "xhexkout",
            ),
        ];
        for (src, v, want) in cases {
            check(src).unwrap();
            assert_eq!(expand(src, &data(v)), want, "{src}");
        }
    }

    #[test]
    fn broken_templates_are_reported_not_hung() {
        for src in [
            "{{ $value ",
            "a {{ 1 ",
            "{{ \"}}\" ",
            "{{ if $value }}x",
            "{{ nosuch $value }}",
            "{{/* open",
        ] {
            let e = check(src).unwrap_err();
            assert!(!e.is_empty(), "{src}");
            assert!(expand(src, &data(1.0)).starts_with("<error expanding template"));
        }
        check("{{/* it's a comment */}}{{ $value }}").unwrap();
    }
}
