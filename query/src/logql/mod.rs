//! LogQL, Loki's query language, over Triad's log index.
//!
//! - [`parse()`] reads a query: log queries (`{…} |= "x" | json | status >= 500`) in full,
//!   metric queries as range aggregations over logs plus the PromQL around them;
//! - [`eval::Evaluator`] runs it: the stream selector and line filters narrow the lines
//!   through the index ([`eval::prefilter`]), every stage then runs exactly on each line
//!   ([`pipeline`]), and metric queries finish in Triad's PromQL engine.
//!
//! A stored record's LogQL labels are `service_name`, `level`, `host`, `source`,
//! `trace_id`, `span_id` and its attributes (see [`eval::record_labels`]); its line is
//! the record's body.

pub mod ast;
pub mod eval;
pub mod lex;
pub mod parse;
pub mod pipeline;
pub mod template;

pub use ast::Query;
pub use eval::{Evaluator, LogParams, LogqlError, Stats, Stream};
pub use parse::parse;
