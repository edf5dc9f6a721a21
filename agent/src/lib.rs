//! The Triad node agent.
//!
//! - [`tailer`] follows files through rotation, truncation and deletion, identifying
//!   them by [`fingerprint`] and resuming from [`checkpoint`]s; [`watch`] wakes it on
//!   file-system events;
//! - [`decode`] turns lines — JSON lines, Docker `json-file`, CRI, plain text — into
//!   [`triad_model::LogRecord`]s ([`fields`] maps the usual field names, [`k8s`] reads
//!   pod metadata from `/var/log/containers/` file names);
//! - [`source`] runs the tailer and hands batches to a sink, checkpointing only what
//!   the sink acknowledged;
//! - [`buffer`] is the bounded on-disk queue, [`forward`] sends it to the collectors
//!   ([`targets`]: one or several, failing ones skipped) over OTLP/gRPC, [`run`] wires
//!   these with the receivers of `triad_receiver`;
//! - [`metrics`]: the agent's own counters and the host's CPU, memory, disk, network.

pub mod buffer;
pub mod checkpoint;
pub mod decode;
pub mod error;
pub mod fields;
pub mod fingerprint;
pub mod forward;
pub mod k8s;
pub mod metrics;
pub mod run;
pub mod source;
pub mod tailer;
pub mod targets;
pub mod watch;

pub use error::{Error, Result};
