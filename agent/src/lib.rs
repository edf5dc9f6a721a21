//! The Triad node agent.
//!
//! So far: [`decode`], which turns the lines of a log file — JSON lines, Docker
//! `json-file`, CRI, or plain text — into [`triad_model::LogRecord`]s, reassembling the
//! partial lines container runtimes split, and [`k8s`], which reads pod metadata from
//! `/var/log/containers/` file names. File tailing, span receivers and delivery build on
//! these (see the node-agent issue).

pub mod decode;
pub mod fields;
pub mod k8s;
