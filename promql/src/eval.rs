//! The evaluator: expression tree → values over all steps of a query.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};
use triad_model::metric::{Labels, MatchOp, Matcher, SeriesSamples, is_stale_nan};
use triad_model::store::{MetricRead, StoreError};

use super::StepSeries;

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
}

impl<'a> Engine<'a> {
    /// An engine reading `tenant`'s series from `store`.
    pub fn new(store: &'a dyn MetricRead, tenant: &'a str, limits: Limits) -> Engine<'a> {
        Engine {
            store,
            tenant,
            limits,
        }
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
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s
                    .values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (start + i as i64 * step, v)))
                    .collect();
                (!samples.is_empty()).then_some(SeriesSamples {
                    labels: s.labels,
                    samples,
                })
            })
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

/// Windows `[lo, hi]` of one series' samples (sorted by time) for bounds that move
/// forward step by step, as a range query's do: the edges only advance, so a whole
/// query walks the samples once instead of two binary searches per step. Bounds that
/// move back (never within one evaluation) are searched for.
pub(crate) struct Windows<'s> {
    samples: &'s [(i64, f64)],
    a: usize,
    b: usize,
    last: (i64, i64),
}

impl<'s> Windows<'s> {
    pub(crate) fn new(samples: &'s [(i64, f64)]) -> Windows<'s> {
        Windows {
            samples,
            a: 0,
            b: 0,
            last: (i64::MIN, i64::MIN),
        }
    }

    /// The samples in `[lo, hi]`.
    pub(crate) fn get(&mut self, lo: i64, hi: i64) -> &'s [(i64, f64)] {
        let s = self.samples;
        if lo < self.last.0 || hi < self.last.1 {
            self.a = s.partition_point(|(t, _)| *t < lo);
            self.b = s.partition_point(|(t, _)| *t <= hi);
        } else {
            while self.a < s.len() && s[self.a].0 < lo {
                self.a += 1;
            }
            while self.b < s.len() && s[self.b].0 <= hi {
                self.b += 1;
            }
        }
        self.last = (lo, hi);
        s.get(self.a..self.b.max(self.a)).unwrap_or(&[])
    }
}

/// The samples of `samples` (sorted by time) in `[lo, hi]`.
pub(crate) fn window(samples: &[(i64, f64)], lo: i64, hi: i64) -> &[(i64, f64)] {
    let a = samples.partition_point(|(t, _)| *t < lo);
    let b = samples.partition_point(|(t, _)| *t <= hi);
    &samples[a..b.max(a)]
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Converts a selector's matchers (and its metric name) into storage matchers; the
/// alternatives of `{a="1" or b="2"}` become several sets.
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, EvalError> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, EvalError> {
        let mut out = Vec::new();
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(
                triad_model::metric::METRIC_NAME,
                name.clone(),
            ));
        }
        for m in ms {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Regex,
                PMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| EvalError::BadData(e.to_string()))?,
            );
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers
            .or_matchers
            .iter()
            .map(|ms| convert(ms))
            .collect()
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

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(t),
        })
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

    /// Series for a selector in `[lo, hi]`, stale markers kept.
    fn select(
        &self,
        vs: &VectorSelector,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let sets = selector_matchers(vs)?;
        let mut out: Vec<SeriesSamples> = Vec::new();
        for ms in &sets {
            let got = self.store.select(self.tenant, ms, lo, hi)?;
            if sets.len() == 1 {
                out = got;
            } else {
                for s in got {
                    if !out.iter().any(|o| o.labels == s.labels) {
                        out.push(s);
                    }
                }
            }
        }
        self.add_samples(out.iter().map(|s| s.samples.len()).sum())?;
        Ok(out)
    }

    fn vector_selector(&self, vs: &VectorSelector) -> Result<Value, EvalError> {
        let out = self.selector_steps(vs, |_, v| v, false)?;
        self.add_samples(out.len() * self.n)?;
        Ok(Value::Vector(out))
    }

    /// The timestamps (seconds) of the samples a selector picks at each step.
    pub(crate) fn selector_timestamps(
        &self,
        vs: &VectorSelector,
    ) -> Result<Vec<StepSeries>, EvalError> {
        self.selector_steps(vs, |t, _| t as f64 / 1000.0, true)
    }

    /// For each matching series and step, `pick(t, v)` of the latest sample within the
    /// lookback window (none after a staleness marker); series with no value dropped.
    fn selector_steps(
        &self,
        vs: &VectorSelector,
        pick: impl Fn(i64, f64) -> f64,
        drop: bool,
    ) -> Result<Vec<StepSeries>, EvalError> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let lookback = self.limits.lookback_ms;
        let (lo, hi) = match at {
            Some(a) => (a - offset - lookback, a - offset),
            None => (self.start - offset - lookback, self.end - offset),
        };
        let series = self.select(vs, lo, hi)?;
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            self.check_deadline()?;
            let mut windows = Windows::new(&s.samples);
            let values: Vec<Option<f64>> = (0..self.n)
                .map(|i| {
                    let eff = at.unwrap_or_else(|| self.t(i)) - offset;
                    latest(windows.get(eff - lookback, eff)).map(|(t, v)| pick(t, v))
                })
                .collect();
            if values.iter().any(Option::is_some) {
                out.push(StepSeries {
                    labels: if drop { drop_name(&s.labels) } else { s.labels },
                    values,
                });
            }
        }
        Ok(out)
    }

    fn fetch_range(
        &self,
        vs: &VectorSelector,
        range: i64,
        offset: i64,
        at: Option<i64>,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let (lo, hi) = match at {
            Some(a) => (a - offset - range, a - offset),
            None => (self.start - offset - range, self.end - offset),
        };
        let mut series = self.select(vs, lo, hi)?;
        for s in &mut series {
            s.samples.retain(|(_, v)| !is_stale_nan(*v));
        }
        series.retain(|s| !s.samples.is_empty());
        Ok(series)
    }

    fn subquery(&self, sq: &parser::SubqueryExpr) -> Result<Value, EvalError> {
        let range = duration_ms(&sq.range);
        let offset = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .filter(|s| *s > 0)
            .unwrap_or(self.limits.default_subquery_step_ms);
        let (outer_start, outer_end) = match at {
            Some(a) => (a, a),
            None => (self.start, self.end),
        };
        let lo = outer_start - offset - range;
        // Steps aligned to multiples of the step, as Prometheus does.
        let mut start = step * lo.div_euclid(step);
        if start < lo {
            start += step;
        }
        let end = outer_end - offset;
        if end < start {
            return Ok(Value::Range(RangeValue {
                series: Vec::new(),
                range,
                offset,
                at,
            }));
        }
        let n = ((end - start) / step) as usize + 1;
        let inner = Ev {
            store: self.store,
            tenant: self.tenant,
            start,
            end,
            step,
            n,
            limits: self.limits,
            query_start: self.query_start,
            query_end: self.query_end,
            deadline: self.deadline,
            samples: self.samples,
        };
        let series = match inner.eval(&sq.expr)? {
            Value::Vector(v) => v,
            Value::Scalar(vals) => vec![StepSeries {
                labels: Labels::default(),
                values: vals.into_iter().map(Some).collect(),
            }],
            other => {
                return Err(EvalError::BadData(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        let series = series
            .into_iter()
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s
                    .values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (start + i as i64 * step, v)))
                    .collect();
                (!samples.is_empty()).then_some(SeriesSamples {
                    labels: s.labels,
                    samples,
                })
            })
            .collect();
        Ok(Value::Range(RangeValue {
            series,
            range,
            offset,
            at,
        }))
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

/// The latest sample at or before `t` and no older than `lookback`; none when it is a
/// staleness marker.
/// The newest sample of a lookback window, unless it is a staleness marker.
fn latest(window: &[(i64, f64)]) -> Option<(i64, f64)> {
    let &(ts, v) = window.last()?;
    (!is_stale_nan(v)).then_some((ts, v))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward cursor finds the same windows as a search, also when bounds stand
    /// still (`@`) or move back.
    #[test]
    fn windows_agree_with_a_search_whatever_the_bounds() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 10, i as f64)).collect();
        let mut w = Windows::new(&samples);
        let bounds = [
            (-20, -5),
            (0, 0),
            (5, 45),
            (5, 45),
            (40, 200),
            (100, 300),
            (30, 60),
            (490, 700),
            (700, 800),
            (0, 490),
        ];
        for (lo, hi) in bounds {
            assert_eq!(w.get(lo, hi), window(&samples, lo, hi), "[{lo}, {hi}]");
        }
        assert!(Windows::new(&[]).get(0, 10).is_empty());
    }
}
