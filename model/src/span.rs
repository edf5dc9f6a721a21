//! The span as it is stored and returned: OTLP semantics, Zipkin converted into it.

use serde::{Deserialize, Serialize};

use crate::{KeyValue, SpanId, TraceId};

/// OTLP span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SpanKind {
    /// Not specified by the producer.
    Unspecified,
    /// Internal operation.
    Internal,
    /// Server side of a synchronous request.
    Server,
    /// Client side of a synchronous request.
    Client,
    /// Producer of an asynchronous message.
    Producer,
    /// Consumer of an asynchronous message.
    Consumer,
}

impl SpanKind {
    /// OTLP's enum number.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }

    /// From OTLP's enum number; unknown numbers map to `Unspecified`.
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// Lowercase name as Jaeger shows it in the `span.kind` tag; empty when unspecified.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    /// Inverse of [`SpanKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "unspecified" => Self::Unspecified,
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            _ => return None,
        })
    }
}

/// OTLP status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusCode {
    /// Default.
    Unset,
    /// Explicitly OK.
    Ok,
    /// The operation failed.
    Error,
}

impl StatusCode {
    /// OTLP's enum number.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }

    /// From OTLP's enum number.
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }
}

/// A timestamped event inside a span (Jaeger calls these logs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, ns since the epoch.
    pub time_ns: i64,
    /// Event name, e.g. `exception`.
    pub name: String,
    /// Event attributes.
    pub attributes: Vec<KeyValue>,
}

/// A link from this span to another span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// Link attributes.
    pub attributes: Vec<KeyValue>,
}

/// One span, with the resource it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Tenant the span belongs to.
    pub tenant: String,
    /// Trace identifier.
    pub trace_id: TraceId,
    /// Span identifier.
    pub span_id: SpanId,
    /// Parent span, `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C trace state.
    pub trace_state: String,
    /// Operation name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, ns since the epoch.
    pub start_ns: i64,
    /// End, ns since the epoch (>= start).
    pub end_ns: i64,
    /// Status code.
    pub status_code: StatusCode,
    /// Status message (set with errors).
    pub status_message: String,
    /// `service.name` of the resource.
    pub service: String,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// Span events.
    pub events: Vec<Event>,
    /// Span links.
    pub links: Vec<Link>,
    /// Resource attributes other than `service.name`.
    pub resource: Vec<KeyValue>,
    /// Instrumentation scope name.
    pub scope_name: String,
    /// Instrumentation scope version.
    pub scope_version: String,
}

impl Span {
    /// Duration in ns.
    pub fn duration_ns(&self) -> i64 {
        self.end_ns - self.start_ns
    }

    /// True when the span failed: status ERROR, as Jaeger's `error=true` tag.
    pub fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error
    }
}
