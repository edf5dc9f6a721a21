//! Selectors: which samples a vector selector, a matrix selector or a subquery reads,
//! the lookback and range windows over them, and the `offset` / `@` arithmetic.

use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, AtModifier, Offset, VectorSelector};
use triad_model::metric::{Labels, MatchOp, Matcher, SeriesSamples, is_stale_nan};

use crate::StepSeries;
use crate::eval::{Ev, EvalError, RangeValue, Value, drop_name};

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

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
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
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(t),
        })
    }

    /// Series for a selector in `[lo, hi]`, stale markers kept.
    pub(crate) fn select(
        &self,
        vs: &VectorSelector,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let sets = selector_matchers(vs)?;
        let mut out: Vec<SeriesSamples> = Vec::new();
        for ms in &sets {
            let (got, warnings) = self.store.select_partial(self.tenant, ms, lo, hi)?;
            if !warnings.is_empty() {
                let mut all = self.warnings.borrow_mut();
                for w in warnings {
                    if !all.contains(&w) {
                        all.push(w);
                    }
                }
            }
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

    pub(crate) fn vector_selector(&self, vs: &VectorSelector) -> Result<Value, EvalError> {
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

    pub(crate) fn fetch_range(
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

    pub(crate) fn subquery(&self, sq: &parser::SubqueryExpr) -> Result<Value, EvalError> {
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
            warnings: self.warnings,
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
            .filter_map(|s| s.into_samples(start, step))
            .collect();
        Ok(Value::Range(RangeValue {
            series,
            range,
            offset,
            at,
        }))
    }
}

/// The newest sample of a lookback window, unless it is a staleness marker.
fn latest(window: &[(i64, f64)]) -> Option<(i64, f64)> {
    let &(ts, v) = window.last()?;
    (!is_stale_nan(v)).then_some((ts, v))
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
