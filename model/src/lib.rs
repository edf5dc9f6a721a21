//! Triad's shared vocabulary.
//!
//! Every other crate speaks in these types: [`LogRecord`] and [`Span`] as they are
//! stored and queried, [`TraceId`]/[`SpanId`], the typed attribute [`Value`], the
//! conversion from OTLP ([`otlp`]), the configuration file ([`config`]) and the read
//! side of storage ([`store`]) that the query server uses without knowing whether the
//! stores live in the same process.

pub mod alerting;
pub mod auth;
pub mod config;
mod ids;
mod log;
pub mod metric;
pub mod otlp;
pub mod promconfig;
mod span;
pub mod store;
pub mod telemetry;
mod value;

pub use ids::{IdError, SpanId, TraceId};
pub use log::{LogRecord, normalise_level};
pub use span::{Event, Link, Span, SpanKind, StatusCode};
pub use value::{KeyValue, Value, attributes_to_json};

/// The tenant that data belongs to when no authentication maps a sender to one.
pub const DEFAULT_TENANT: &str = "default";

/// Current wall-clock time in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The host name: `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
