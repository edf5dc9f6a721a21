//! The evaluator: expression tree → values over all steps of a query.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use promql_parser::parser::Expr;
use triad_model::metric::{Labels, SeriesSamples};
use triad_model::store::{MetricRead, StoreError};

use super::StepSeries;
use crate::selector::{duration_ms, offset_ms, window};

/// Limits of one query, as Prometheus' `--query.*` flags.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most samples a query may hold in memory (`--query.max-samples`).
    pub max_samples: usize,
    /// Longest evaluation (`--query.timeout`).
    pub timeout: Duration,
    /// How far back a selector looks for the latest sample (`--query.lookback-delta`).
    pub lookback_ms: i64,
    /// Step of subqueries that give none (the global evaluation interval).
    pub default_subquery_step_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            lookback_ms: 5 * 60_000,
            default_subquery_step_ms: 60_000,
        }
    }
}

impl Limits {
    /// The limits the query server's configuration sets.
    pub fn from_config(q: &triad_model::config::QueryConfig) -> Limits {
        Limits {
            max_samples: q.max_samples,
            timeout: Duration::from_secs(q.query_timeout_secs),
            lookback_ms: q.lookback_delta_secs as i64 * 1000,
            ..Limits::default()
        }
    }
}

/// Why a query failed; the variants map to Prometheus' `errorType`s.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query does not parse or is not valid here (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`).
    #[error("{0}")]
    Execution(String),
    /// `max_samples` exceeded (`execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// `timeout` exceeded (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// Storage failed (`internal`).
    #[error("{0}")]
    Storage(String),
}

impl From<StoreError> for EvalError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidQuery(m) => EvalError::BadData(m),
            StoreError::Internal(m) => EvalError::Storage(m),
        }
    }
}

/// Result of a query, in the shapes of Prometheus' API.
#[derive(Debug, Clone)]
pub enum QueryValue {
    /// `scalar`: (time ms, value).
    Scalar(i64, f64),
    /// `string`: (time ms, value).
    String(i64, String),
    /// `vector`: series with one sample at the query time.
    Vector(Vec<(Labels, i64, f64)>),
    /// `matrix`: series with samples.
    Matrix(Vec<SeriesSamples>),
}

/// Evaluates PromQL over a metric store.
pub struct Engine<'a> {
    store: &'a dyn MetricRead,
    tenant: &'a str,
    limits: Limits,
    /// What the answers so far miss (a source of the store that did not answer).
    warnings: RefCell<Vec<String>>,
}

/// A range-vector value: raw samples and the window each step sees.
#[derive(Debug, Clone)]
pub(crate) struct RangeValue {
    pub series: Vec<SeriesSamples>,
    /// Window length, ms.
    pub range: i64,
    /// Offset, ms.
    pub offset: i64,
    /// Fixed evaluation time from `@`, ms.
    pub at: Option<i64>,
}

/// An intermediate value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<StepSeries>),
    Range(RangeValue),
}

impl Value {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "instant vector",
            Value::Range(_) => "range vector",
        }
    }
}

/// State of one evaluation (one query, or one subquery's inner range).
pub(crate) struct Ev<'a> {
    pub store: &'a dyn MetricRead,
    pub tenant: &'a str,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub n: usize,
    pub limits: &'a Limits,
    /// The outermost query's start and end (for `@ start()` / `@ end()`).
    pub query_start: i64,
    pub query_end: i64,
    pub deadline: Instant,
    pub samples: &'a Cell<usize>,
    /// Warnings of the store's partial answers, each once.
    pub warnings: &'a RefCell<Vec<String>>,
}

impl<'a> Engine<'a> {
    /// An engine reading `tenant`'s series from `store`.
    pub fn new(store: &'a dyn MetricRead, tenant: &'a str, limits: Limits) -> Engine<'a> {
        Engine {
            store,
            tenant,
            limits,
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// What the answers given so far miss: one warning per source of the store that did
    /// not answer (Prometheus' `warnings`). Empty when they are complete.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }

    /// Parses a query (for validation and for the parser's error text).
    ///
    /// `promql-parser` knows Prometheus 3's function names; 2.x's `holt_winters` is
    /// registered with it as a function of its own (the same signature as its new name,
    /// `double_exponential_smoothing`), so the query text is never rewritten.
    pub fn parse(query: &str) -> Result<Expr, EvalError> {
        super::parse::parse(query)
    }

    /// Evaluates an instant query at `t` (ms).
    pub fn instant(&self, query: &str, t: i64) -> Result<QueryValue, EvalError> {
        let expr = Self::parse(query)?;
        let samples = Cell::new(0);
        let ev = self.ev(t, t, 1, &samples);
        let v = ev.eval(&expr)?;
        Ok(match v {
            Value::Scalar(s) => QueryValue::Scalar(t, s.first().copied().unwrap_or(f64::NAN)),
            Value::String(s) => QueryValue::String(t, s),
            Value::Vector(series) => {
                let mut out: Vec<(Labels, i64, f64)> = series
                    .into_iter()
                    .filter_map(|s| {
                        s.values
                            .first()
                            .copied()
                            .flatten()
                            .map(|v| (s.labels, t, v))
                    })
                    .collect();
                if !keeps_order(&expr) {
                    out.sort_by(|a, b| a.0.cmp(&b.0));
                }
                QueryValue::Vector(out)
            }
            Value::Range(r) => {
                let eff = r.at.unwrap_or(t) - r.offset;
                let mut out: Vec<SeriesSamples> = r
                    .series
                    .into_iter()
                    .filter_map(|s| {
                        let samples = window(&s.samples, eff - r.range, eff).to_vec();
                        (!samples.is_empty()).then_some(SeriesSamples {
                            labels: s.labels,
                            samples,
                        })
                    })
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                QueryValue::Matrix(out)
            }
        })
    }

    /// Evaluates a range query over `[start, end]` every `step` (ms).
    pub fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        if step <= 0 {
            return Err(EvalError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(EvalError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step > 11_000 {
            return Err(EvalError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let expr = Self::parse(query)?;
        let n = ((end - start) / step) as usize + 1;
        let samples = Cell::new(0);
        let ev = self.ev(start, end, n, &samples);
        let ev = Ev { step, ..ev };
        let series = match ev.eval(&expr)? {
            Value::Scalar(vals) => vec![StepSeries {
                labels: Labels::default(),
                values: vals.into_iter().map(Some).collect(),
            }],
            Value::Vector(series) => series,
            other => {
                return Err(EvalError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other.type_name()
                )));
            }
        };
        let mut out: Vec<SeriesSamples> = series
            .into_iter()
            .filter_map(|s| s.into_samples(start, step))
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn ev<'b>(&'b self, start: i64, end: i64, n: usize, samples: &'b Cell<usize>) -> Ev<'b> {
        Ev {
            store: self.store,
            tenant: self.tenant,
            start,
            end,
            step: 1,
            n,
            limits: &self.limits,
            query_start: start,
            query_end: end,
            deadline: Instant::now() + self.limits.timeout,
            samples,
            warnings: &self.warnings,
        }
    }
}

/// Refuses an instant-vector value in which two series have the same labels and a
/// value at the same step — what dropping the metric name makes of `-{__name__=~"a|b"}`
/// or `abs(…)` over two metrics with otherwise equal labels — as Prometheus does after
/// every function, operator and unary minus. Series with the same labels at different
/// steps (a range query) become one, as Prometheus' matrix does.
fn unique_labelsets(v: Value) -> Result<Value, EvalError> {
    let Value::Vector(series) = v else {
        return Ok(v);
    };
    {
        let mut seen = std::collections::HashSet::with_capacity(series.len());
        if series.iter().all(|s| seen.insert(&s.labels)) {
            return Ok(Value::Vector(series));
        }
    }
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let kept = &mut out[i].values;
                for (k, v) in kept.iter_mut().zip(s.values) {
                    match (&k, v) {
                        (Some(_), Some(_)) => {
                            return Err(EvalError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        (None, Some(x)) => *k = Some(x),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(Value::Vector(out))
}

/// Whether the result order is part of the answer (`sort`, `sort_desc` outermost).
fn keeps_order(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => keeps_order(&p.expr),
        Expr::Call(c) => matches!(c.func.name, "sort" | "sort_desc"),
        // Prometheus lists topk's result largest first (bottomk's smallest first) per
        // group, groups in the order their first series came.
        Expr::Aggregate(a) => {
            use promql_parser::parser::token::{T_BOTTOMK, T_TOPK};
            matches!(a.op.id(), T_TOPK | T_BOTTOMK)
        }
        _ => false,
    }
}

impl<'a> Ev<'a> {
    pub(crate) fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub(crate) fn check_deadline(&self) -> Result<(), EvalError> {
        if Instant::now() > self.deadline {
            return Err(EvalError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    pub(crate) fn add_samples(&self, n: usize) -> Result<(), EvalError> {
        let total = self.samples.get() + n;
        self.samples.set(total);
        if total > self.limits.max_samples {
            return Err(EvalError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Evaluates an expression for every step.
    pub(crate) fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; self.n])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(series) => unique_labelsets(Value::Vector(
                    series
                        .into_iter()
                        .map(|s| StepSeries {
                            labels: drop_name(&s.labels),
                            values: s.values.into_iter().map(|v| v.map(|x| -x)).collect(),
                        })
                        .collect(),
                )),
                other => Err(EvalError::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => self.vector_selector(vs),
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(&ms.range);
                let offset = offset_ms(&ms.vs.offset);
                let at = self.at_ms(&ms.vs.at);
                let series = self.fetch_range(&ms.vs, range, offset, at)?;
                Ok(Value::Range(RangeValue {
                    series,
                    range,
                    offset,
                    at,
                }))
            }
            Expr::Subquery(sq) => self.subquery(sq),
            Expr::Call(call) => unique_labelsets(super::functions::call(self, call)?),
            Expr::Aggregate(agg) => super::aggregate::aggregate(self, agg),
            Expr::Binary(b) => unique_labelsets(super::binary::binary(self, b)?),
            Expr::Extension(_) => Err(EvalError::BadData("unsupported expression".into())),
        }
    }

    /// Evaluates an argument that must be a scalar.
    pub(crate) fn scalar_arg(&self, e: &Expr) -> Result<Vec<f64>, EvalError> {
        match self.eval(e)? {
            Value::Scalar(v) => Ok(v),
            other => Err(EvalError::BadData(format!(
                "expected type scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an argument that must be an instant vector.
    pub(crate) fn vector_arg(&self, e: &Expr) -> Result<Vec<StepSeries>, EvalError> {
        match self.eval(e)? {
            Value::Vector(v) => Ok(v),
            other => Err(EvalError::BadData(format!(
                "expected type instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an argument that must be a range vector.
    pub(crate) fn range_arg(&self, e: &Expr) -> Result<RangeValue, EvalError> {
        match self.eval(e)? {
            Value::Range(r) => Ok(r),
            other => Err(EvalError::BadData(format!(
                "expected type range vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an argument that must be a string.
    pub(crate) fn string_arg(&self, e: &Expr) -> Result<String, EvalError> {
        match self.eval(e)? {
            Value::String(s) => Ok(s),
            other => Err(EvalError::BadData(format!(
                "expected type string, got {}",
                other.type_name()
            ))),
        }
    }
}

/// The labels without the metric name.
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    if labels.name().is_none() {
        return labels.clone();
    }
    labels.without(|n| n == triad_model::metric::METRIC_NAME)
}

/// Combines series with equal labels (after the metric name was dropped, say); two
/// values at one step are Prometheus' "same labelset" error.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, EvalError> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let target = &mut out[i];
                for (a, b) in target.values.iter_mut().zip(s.values) {
                    if let Some(v) = b {
                        if a.is_some() {
                            return Err(EvalError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        *a = Some(v);
                    }
                }
            }
        }
    }
    Ok(out)
}
