//! Prometheus remote read 0.1.0 server: `POST /api/v1/read`, a snappy-compressed
//! protobuf `ReadRequest` in, a snappy-compressed `ReadResponse` of raw samples out, as
//! Prometheus' own `/api/v1/read` answers it. Prometheus (`remote_read:`), Thanos and
//! other tools read Triad's series through it.
//!
//! Only the `SAMPLES` response type is served (Prometheus' own client asks for it);
//! a request accepting only streamed chunks is refused with 400, as Prometheus refuses
//! response types it does not know. Samples are returned as stored, staleness markers
//! included. A request may read at most [`SAMPLE_LIMIT`] samples (Prometheus'
//! `--storage.remote.read-sample-limit` default); beyond it the answer is 400.
//!
//! This module holds the protocol's messages ([`ReadRequest`] … [`QueryResult`]); the
//! server is in [`server`], the client a query server reads through in [`client`].

use prost::Message;

use crate::remote_write::TimeSeries;

pub mod client;
pub mod server;
#[cfg(test)]
mod tests;

pub use client::RemoteReader;
pub use server::{RemoteReadState, answer, decode, read, router};

/// Most samples one request may read.
pub const SAMPLE_LIMIT: usize = 50_000_000;

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ReadRequest {
    /// The queries, answered in order.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Response types the client accepts, in its order of preference (0 = `SAMPLES`,
    /// 1 = `STREAMED_XOR_CHUNKS`); empty means `SAMPLES`.
    #[prost(int32, repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, Message)]
pub struct Query {
    /// Start, ms, inclusive.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// End, ms, inclusive.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Matchers, all of which a series must satisfy.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// What the reader will do with the data.
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.ReadHints`. Only `func` is used: `"series"` asks for label sets alone,
/// as Prometheus' `/api/v1/series` asks its own storage.
#[derive(Clone, PartialEq, Message)]
pub struct ReadHints {
    /// Query step, ms.
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// The function the data is for (`"series"`: labels only).
    #[prost(string, tag = "2")]
    pub func: String,
    /// Start of the evaluation, ms.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// End of the evaluation, ms.
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelMatcher {
    /// 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or regular expression.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.ReadResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ReadResponse {
    /// One result per query, in order.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    /// Matching series with their samples in the range, sorted by labels.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}
