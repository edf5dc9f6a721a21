//! `line_format` and `label_format` templates: Go's text/template (the `gtmpl` crate,
//! as for alert templates) with a line's labels as fields (`{{.status}}`), `__line__` and
//! `__timestamp__`, and Loki's common string functions.

use std::collections::HashMap;
use std::sync::Arc;

use gtmpl::{Context, FuncError, Value};

use super::ast::Template;
use crate::alert::template::{arg_str, regex, title, to_lower, to_upper, unclosed_action};

/// Field names `__line__` and `__timestamp__` become in the data (Go templates have no
/// bare variables, so `{{ __line__ }}` is rewritten to `{{ .__line__ }}`).
const LINE: &str = "__line__";
const TIMESTAMP: &str = "__timestamp__";

/// Compiles a template; the error says why it does not parse.
pub fn compile(src: &str) -> Result<Template, String> {
    unclosed_action(src).map_err(|e| format!("line template {src:?}: {e}"))?;
    let rewritten = rewrite_specials(src);
    let mut t = gtmpl::Template::default();
    t.add_funcs(&[
        ("ToUpper", to_upper as gtmpl::Func),
        ("ToLower", to_lower),
        ("upper", to_upper),
        ("lower", to_lower),
        ("title", title),
        ("Title", title),
        ("TrimSpace", trim_space),
        ("trim", trim_space),
        ("TrimPrefix", trim_prefix),
        ("TrimSuffix", trim_suffix),
        ("Replace", replace),
        ("replace", replace_sprig),
        ("regexReplaceAll", regex_replace_all),
        ("contains", contains),
        ("hasPrefix", has_prefix),
        ("hasSuffix", has_suffix),
        ("default", default),
        ("trunc", trunc),
    ]);
    t.parse(rewritten)
        .map_err(|e| format!("line template {src:?}: {e}"))?;
    Ok(Template {
        source: src.to_string(),
        compiled: Arc::new(t),
    })
}

/// `__line__` / `__timestamp__` outside quotes and not after a `.` become fields.
fn rewrite_specials(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find("}}")
            .map(|c| c + open + 2)
            .unwrap_or(rest.len());
        let action = &rest[open..close];
        let mut quoted = false;
        let mut i = 0;
        while i < action.len() {
            let tail = &action[i..];
            let c = tail.chars().next().unwrap_or(' ');
            if c == '"' {
                quoted = !quoted;
            }
            let prev_dot = out.ends_with('.');
            if !quoted && !prev_dot && (tail.starts_with(LINE) || tail.starts_with(TIMESTAMP)) {
                out.push('.');
            }
            out.push(c);
            i += c.len_utf8();
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Expands `t` for a line with `labels`.
pub fn render(
    t: &Template,
    labels: &[(String, String)],
    line: &str,
    timestamp_ns: i64,
) -> Result<String, String> {
    if !t.source.contains("{{") {
        return Ok(t.source.clone());
    }
    let mut m: HashMap<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    m.insert(LINE.into(), Value::from(line));
    m.insert(
        TIMESTAMP.into(),
        Value::from(crate::time::format_rfc3339(timestamp_ns)),
    );
    t.compiled
        .render(&Context::from(Value::from(m)))
        .map_err(|e| e.to_string())
}

fn trim_space(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(
        arg_str(args, 0, "TrimSpace")?.trim().to_string(),
    ))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "TrimPrefix")?;
    let p = arg_str(args, 1, "TrimPrefix")?;
    Ok(Value::from(
        s.strip_prefix(p.as_str()).unwrap_or(&s).to_string(),
    ))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "TrimSuffix")?;
    let p = arg_str(args, 1, "TrimSuffix")?;
    Ok(Value::from(
        s.strip_suffix(p.as_str()).unwrap_or(&s).to_string(),
    ))
}

/// Go's `strings.Replace(s, old, new, n)` (Loki's `Replace`).
fn replace(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "Replace")?;
    let old = arg_str(args, 1, "Replace")?;
    let new = arg_str(args, 2, "Replace")?;
    let n: i64 = arg_str(args, 3, "Replace")?.parse().unwrap_or(-1);
    Ok(Value::from(if n < 0 {
        s.replace(&old, &new)
    } else {
        s.replacen(&old, &new, n as usize)
    }))
}

/// Sprig's `replace old new s` (pipelines put the string last).
fn replace_sprig(args: &[Value]) -> Result<Value, FuncError> {
    let old = arg_str(args, 0, "replace")?;
    let new = arg_str(args, 1, "replace")?;
    let s = arg_str(args, 2, "replace")?;
    Ok(Value::from(s.replace(&old, &new)))
}

/// Sprig's `regexReplaceAll regex s repl`.
fn regex_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex(&arg_str(args, 0, "regexReplaceAll")?, "regexReplaceAll")?;
    let s = arg_str(args, 1, "regexReplaceAll")?;
    let repl = arg_str(args, 2, "regexReplaceAll")?;
    Ok(Value::from(re.replace_all(&s, repl.as_str()).into_owned()))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    let sub = arg_str(args, 0, "contains")?;
    let s = arg_str(args, 1, "contains")?;
    Ok(Value::from(s.contains(&sub)))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let p = arg_str(args, 0, "hasPrefix")?;
    let s = arg_str(args, 1, "hasPrefix")?;
    Ok(Value::from(s.starts_with(&p)))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let p = arg_str(args, 0, "hasSuffix")?;
    let s = arg_str(args, 1, "hasSuffix")?;
    Ok(Value::from(s.ends_with(&p)))
}

/// Sprig's `default d v`: `v`, or `d` when `v` is empty.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    let d = arg_str(args, 0, "default")?;
    let v = args.get(1).map(|v| match v {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        v => v.to_string(),
    });
    Ok(Value::from(v.filter(|v| !v.is_empty()).unwrap_or(d)))
}

/// Sprig's `trunc n s`.
fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    let n: i64 = arg_str(args, 0, "trunc")?
        .parse()
        .map_err(|_| FuncError::Generic("trunc needs a length".into()))?;
    let s = arg_str(args, 1, "trunc")?;
    let chars: Vec<char> = s.chars().collect();
    let n = n.unsigned_abs() as usize;
    Ok(Value::from(if chars.len() <= n {
        s
    } else {
        chars[..n].iter().collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> String {
        let t = compile(src).unwrap();
        render(
            &t,
            &[
                ("status".into(), "500".into()),
                ("path".into(), " /x ".into()),
            ],
            "the line",
            0,
        )
        .unwrap()
    }

    #[test]
    fn templates_see_labels_the_line_and_functions() {
        assert_eq!(run("{{.status}} {{ __line__ }}"), "500 the line");
        assert_eq!(run("{{ .path | TrimSpace | ToUpper }}"), "/X");
        assert_eq!(run("{{ __timestamp__ }}"), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(run(r#"{{ default "none" .missing }}"#), "none");
        assert_eq!(run(r#"{{ "__line__" }}"#), "__line__");
        assert_eq!(run("plain"), "plain");
        assert!(compile("{{ .a ").is_err());
        assert_eq!(
            run(r#"{{ "é" }} ü"#),
            "é ü",
            "other characters in strings and text"
        );
    }

    /// `fuzz/artifacts/logql/crash-bc8f08054fff983751a91f61e3f15a24cb068565`: a
    /// character of several bytes right inside an action made gtmpl's lexer panic.
    #[test]
    fn regression_fuzz_non_ascii_in_an_action_is_an_error() {
        let e = compile("{{\u{48f}\u{204}\u{1a}-> {{.s}(}z").unwrap_err();
        assert!(e.contains("non-ASCII"), "{e}");
        assert!(compile("{{ .a }}{{ é }}").is_err());
        let input = include_bytes!("../../tests/fixtures/fuzz-logql-non-ascii-action.txt");
        assert!(crate::logql::parse(std::str::from_utf8(input).unwrap()).is_err());
    }
}
