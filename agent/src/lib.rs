//! The Triad node agent.
//!
//! So far: [`tailer`], which follows files through rotation, truncation and deletion,
//! identifying them by [`fingerprint`] and resuming from [`checkpoint`]s; [`decode`],
//! which turns their lines — JSON lines, Docker `json-file`, CRI, or plain text — into
//! [`triad_model::LogRecord`]s, reassembling the partial lines container runtimes split;
//! and [`k8s`], which reads pod metadata from `/var/log/containers/` file names. Span
//! receivers and delivery build on these (see the node-agent issue).

pub mod checkpoint;
pub mod decode;
pub mod fields;
pub mod fingerprint;
pub mod k8s;
pub mod source;
pub mod tailer;
