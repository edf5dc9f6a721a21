//! Triad's log and trace stores: tantivy indexes cut into time-bounded splits.
//!
//! - [`store`]: the write-ahead log (`triad_wal`), indexer thread and time-bounded
//!   [`split`]s shared by both signals; retention by age and size;
//! - [`log_index`] and [`trace_store`]: the schemas and the read operations the query
//!   server uses through `triad_model::store`;
//! - [`query_text`]: the log search syntax, checked before tantivy sees it;
//! - [`read_only`]: a query server's view of a data directory a collector writes;
//! - [`bundle_dir`]: a sealed split read from its bundle in object storage;
//! - [`published`]: the query side of object-storage mode, published splits plus a
//!   collector's unpublished ones.

pub mod bundle_dir;
pub mod error;
pub mod log_index;
pub mod merge;
pub mod metrics;
pub mod published;
pub mod query_text;
pub mod read_only;
pub mod split;
pub mod store;
mod tenant_terms;
mod tokenizer;
pub mod trace_filter;
pub mod trace_store;

pub use error::{Error, Result};
