//! PromQL evaluation with Prometheus 2.42 semantics, over any
//! [`MetricRead`](triad_model::store::MetricRead).
//!
//! Parsing is `promql-parser`'s. Evaluation works like Prometheus' range evaluation:
//! every node is computed for all steps of the query at once, so a selector fetches its
//! samples once and an instant query is a range query of one step. An instant-vector
//! value is a set of series with one optional value per step ([`StepSeries`]); range
//! vectors stay as raw samples and range functions slide a window over them.
//!
//! Semantics follow Prometheus 2.42 (the reference of Triad's golden tests): closed
//! lookback and range windows (`[t - 5m, t]`), staleness markers end a series,
//! `rate`/`increase`/`delta` extrapolate as Prometheus does, vector matching ignores the
//! metric name, arithmetic drops it, and the same error texts where users see them.

mod aggregate;
mod binary;
mod eval;
pub mod format;
mod functions;
mod parse;
mod quantile;
mod selector;

pub use eval::{Engine, EvalError, Limits, QueryValue};
pub use selector::selector_matchers;

use triad_model::metric::Labels;

/// One series of an instant-vector value: a value (or none) per step.
#[derive(Debug, Clone)]
pub struct StepSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Value at each step of the evaluation, `None` where the series has no value.
    pub values: Vec<Option<f64>>,
}

impl StepSeries {
    /// The series as timestamped samples of steps `start + i * step`, the steps without
    /// a value left out; `None` when no step has one.
    pub(crate) fn into_samples(
        self,
        start: i64,
        step: i64,
    ) -> Option<triad_model::metric::SeriesSamples> {
        let samples: Vec<(i64, f64)> = self
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (start + i as i64 * step, v)))
            .collect();
        (!samples.is_empty()).then_some(triad_model::metric::SeriesSamples {
            labels: self.labels,
            samples,
        })
    }
}

pub use triad_model::metric::format_value;

#[cfg(test)]
mod tests;
