//! The log record as it is stored, indexed and returned.

use serde::{Deserialize, Serialize};

use crate::{KeyValue, SpanId, TraceId};

/// One log line or OTLP log record, normalised to Triad's data model (DESIGN.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Tenant the record belongs to; every query filters on it.
    pub tenant: String,
    /// When the event happened, ns since the Unix epoch (UTC).
    pub timestamp_ns: i64,
    /// When Triad (or the agent) first saw it, ns since the Unix epoch.
    pub observed_ns: i64,
    /// Severity as written by the source, e.g. `ERROR` or `warn`.
    pub severity_text: String,
    /// OTLP severity number (1–24; 0 when unknown).
    pub severity_number: i32,
    /// The message. Structured OTLP bodies are kept as JSON text.
    pub body: String,
    /// `service.name` of the emitter, or empty when unknown.
    pub service: String,
    /// Host the record came from, or empty.
    pub host: String,
    /// Trace the record belongs to, if any.
    pub trace_id: Option<TraceId>,
    /// Span the record belongs to, if any.
    pub span_id: Option<SpanId>,
    /// Where the record came from: a file path for tailed logs, `otlp` for OTLP.
    pub source: String,
    /// Everything else: record attributes merged over resource attributes.
    pub attributes: Vec<KeyValue>,
}

impl LogRecord {
    /// The canonical lowercase level name for a severity (OTLP number, falling back to
    /// the text), e.g. `error`. Indexed as the `level` field.
    pub fn level(&self) -> String {
        let from_number = match self.severity_number {
            1..=4 => Some("trace"),
            5..=8 => Some("debug"),
            9..=12 => Some("info"),
            13..=16 => Some("warn"),
            17..=20 => Some("error"),
            21..=24 => Some("fatal"),
            _ => None,
        };
        match from_number {
            Some(l) => l.to_string(),
            None => normalise_level(&self.severity_text).to_string(),
        }
    }
}

/// Maps the many spellings of a level (`WARNING`, `Err`, `crit`) onto
/// trace|debug|info|warn|error|fatal, or the lowercased text when unknown.
pub fn normalise_level(text: &str) -> std::borrow::Cow<'static, str> {
    let lower = text.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "trace" | "trc" | "finest" => "trace",
        "debug" | "dbg" | "fine" | "verbose" => "debug",
        "info" | "inf" | "information" | "informational" | "notice" => "info",
        "warn" | "warning" | "wrn" => "warn",
        "error" | "err" | "eror" | "severe" => "error",
        "fatal" | "crit" | "critical" | "alert" | "emerg" | "emergency" | "panic" => "fatal",
        "" => "",
        _ => return std::borrow::Cow::Owned(lower),
    };
    std::borrow::Cow::Borrowed(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(num: i32, text: &str) -> LogRecord {
        LogRecord {
            tenant: "t".into(),
            timestamp_ns: 0,
            observed_ns: 0,
            severity_text: text.into(),
            severity_number: num,
            body: String::new(),
            service: String::new(),
            host: String::new(),
            trace_id: None,
            span_id: None,
            source: String::new(),
            attributes: vec![],
        }
    }

    #[test]
    fn level_from_number_then_text() {
        assert_eq!(rec(17, "whatever").level(), "error");
        assert_eq!(rec(0, "WARNING").level(), "warn");
        assert_eq!(rec(0, "Custom").level(), "custom");
        assert_eq!(rec(0, "").level(), "");
    }
}
