//! PromQL functions, as Prometheus 2.42 computes them.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Call, Expr};
use triad_model::metric::is_label_name;
use triad_model::metric::{Labels, METRIC_NAME};

use super::StepSeries;
use super::eval::{Ev, EvalError, RangeValue, Value, drop_name, merge_same_labels};
use super::quantile::{histogram_quantile, quantile};
use super::selector::{Windows, window};

/// Evaluates a function call.
pub(crate) fn call(ev: &Ev<'_>, c: &Call) -> Result<Value, EvalError> {
    let args = &c.args.args;
    let arg = |i: usize| -> Result<&Expr, EvalError> {
        args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
            EvalError::BadData(format!("missing argument {} of {}", i + 1, c.func.name))
        })
    };
    let name = c.func.name;
    match name {
        "time" => Ok(Value::Scalar(
            (0..ev.n).map(|i| ev.t(i) as f64 / 1000.0).collect(),
        )),
        "vector" => {
            let s = ev.scalar_arg(arg(0)?)?;
            Ok(Value::Vector(vec![StepSeries {
                labels: Labels::default(),
                values: s.into_iter().map(Some).collect(),
            }]))
        }
        "scalar" => {
            let v = ev.vector_arg(arg(0)?)?;
            Ok(Value::Scalar(
                (0..ev.n)
                    .map(|i| {
                        let mut vals = v.iter().filter_map(|s| s.values[i]);
                        match (vals.next(), vals.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sgn" | "acos"
        | "acosh" | "asin" | "asinh" | "atan" | "atanh" | "cos" | "cosh" | "sin" | "sinh"
        | "tan" | "tanh" | "deg" | "rad" => {
            let f = simple(name);
            map_values(ev.vector_arg(arg(0)?)?, f)
        }
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; ev.n])),
        "round" => {
            let v = ev.vector_arg(arg(0)?)?;
            let to = match args.get(1) {
                Some(e) => ev.scalar_arg(e)?,
                None => vec![1.0; ev.n],
            };
            map_values_at(v, |i, x| {
                let inv = 1.0 / to[i];
                Some((x * inv + 0.5).floor() / inv)
            })
        }
        "clamp" => {
            let v = ev.vector_arg(arg(0)?)?;
            let lo = ev.scalar_arg(arg(1)?)?;
            let hi = ev.scalar_arg(arg(2)?)?;
            // Only max < min empties the result: a NaN bound makes every value NaN.
            map_values_at(v, |i, x| {
                (hi[i] >= lo[i] || hi[i].is_nan() || lo[i].is_nan())
                    .then(|| go_max(lo[i], go_min(hi[i], x)))
            })
        }
        "clamp_min" => {
            let v = ev.vector_arg(arg(0)?)?;
            let lo = ev.scalar_arg(arg(1)?)?;
            map_values_at(v, |i, x| Some(go_max(lo[i], x)))
        }
        "clamp_max" => {
            let v = ev.vector_arg(arg(0)?)?;
            let hi = ev.scalar_arg(arg(1)?)?;
            map_values_at(v, |i, x| Some(go_min(hi[i], x)))
        }
        "year" | "month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "days_in_month" => {
            let v = match args.first() {
                Some(e) => ev.vector_arg(e)?,
                None => vec![StepSeries {
                    labels: Labels::default(),
                    values: (0..ev.n).map(|i| Some(ev.t(i) as f64 / 1000.0)).collect(),
                }],
            };
            map_values(v, move |x| date_part(name, x))
        }
        "timestamp" => {
            let mut a = arg(0)?;
            while let Expr::Paren(p) = a {
                a = &p.expr;
            }
            if let Expr::VectorSelector(vs) = a {
                return Ok(Value::Vector(merge_same_labels(
                    ev.selector_timestamps(vs)?,
                )?));
            }
            let v = ev.vector_arg(a)?;
            map_values_at(v, |i, _| Some(ev.t(i) as f64 / 1000.0))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.vector_arg(arg(0)?)?;
            if ev.n == 1 {
                let key = |s: &StepSeries| s.values[0].unwrap_or(f64::NAN);
                // NaN last in both directions, as Prometheus 2.42 sorts.
                v.sort_by(|a, b| {
                    let (x, y) = (key(a), key(b));
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if name == "sort" => x.total_cmp(&y),
                        _ => y.total_cmp(&x),
                    }
                });
            }
            Ok(Value::Vector(v))
        }
        "label_replace" => label_replace(ev, args),
        "label_join" => label_join(ev, args),
        "absent" => {
            let v = ev.vector_arg(arg(0)?)?;
            let labels = absent_labels(arg(0)?);
            let values: Vec<Option<f64>> = (0..ev.n)
                .map(|i| (!v.iter().any(|s| s.values[i].is_some())).then_some(1.0))
                .collect();
            Ok(Value::Vector(non_empty(vec![StepSeries {
                labels,
                values,
            }])))
        }
        "absent_over_time" => {
            let r = ev.range_arg(arg(0)?)?;
            let labels = absent_labels(arg(0)?);
            let values: Vec<Option<f64>> = (0..ev.n)
                .map(|i| {
                    let (lo, hi) = bounds(ev, &r, i);
                    (!r.series
                        .iter()
                        .any(|s| !window(&s.samples, lo, hi).is_empty()))
                    .then_some(1.0)
                })
                .collect();
            Ok(Value::Vector(non_empty(vec![StepSeries {
                labels,
                values,
            }])))
        }
        "histogram_quantile" => {
            let q = ev.scalar_arg(arg(0)?)?;
            let v = ev.vector_arg(arg(1)?)?;
            histogram_quantile(ev, &q, v)
        }
        "rate" | "increase" | "delta" => {
            let r = ev.range_arg(arg(0)?)?;
            let (counter, rate) = match name {
                "rate" => (true, true),
                "increase" => (true, false),
                _ => (false, false),
            };
            over_range(ev, &r, true, |w, lo, hi| {
                extrapolated_rate(w, lo, hi, r.range, counter, rate)
            })
        }
        "irate" | "idelta" => {
            let r = ev.range_arg(arg(0)?)?;
            let is_rate = name == "irate";
            over_range(ev, &r, true, |w, _, _| instant_value(w, is_rate))
        }
        "deriv" => {
            let r = ev.range_arg(arg(0)?)?;
            over_range(ev, &r, true, |w, _, _| {
                (w.len() >= 2).then(|| linear_regression(w, w[0].0).0)
            })
        }
        "predict_linear" => {
            let r = ev.range_arg(arg(0)?)?;
            let d = ev.scalar_arg(arg(1)?)?;
            over_range_at(ev, &r, true, |i, w, _, _| {
                (w.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w, ev.t(i));
                    slope * d[i] + intercept
                })
            })
        }
        "resets" => {
            let r = ev.range_arg(arg(0)?)?;
            over_range(ev, &r, true, |w, _, _| {
                Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64)
            })
        }
        "changes" => {
            let r = ev.range_arg(arg(0)?)?;
            over_range(ev, &r, true, |w, _, _| {
                Some(
                    w.windows(2)
                        .filter(|p| !(p[1].1 == p[0].1 || (p[1].1.is_nan() && p[0].1.is_nan())))
                        .count() as f64,
                )
            })
        }
        "avg_over_time" => over_time(ev, arg(0)?, true, |w| {
            let mut mean = 0.0f64;
            for (k, (_, v)) in w.iter().enumerate() {
                let count = (k + 1) as f64;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (*v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                mean += v / count - mean / count;
            }
            mean
        }),
        "sum_over_time" => over_time(ev, arg(0)?, true, |w| w.iter().map(|(_, v)| v).sum()),
        "count_over_time" => over_time(ev, arg(0)?, true, |w| w.len() as f64),
        "min_over_time" => over_time(ev, arg(0)?, true, |w| {
            w.iter().fold(
                w[0].1,
                |m, (_, v)| if *v < m || m.is_nan() { *v } else { m },
            )
        }),
        "max_over_time" => over_time(ev, arg(0)?, true, |w| {
            w.iter().fold(
                w[0].1,
                |m, (_, v)| if *v > m || m.is_nan() { *v } else { m },
            )
        }),
        "last_over_time" => over_time(ev, arg(0)?, false, |w| w[w.len() - 1].1),
        "present_over_time" => over_time(ev, arg(0)?, true, |_| 1.0),
        "stddev_over_time" => over_time(ev, arg(0)?, true, |w| variance(w).sqrt()),
        "stdvar_over_time" => over_time(ev, arg(0)?, true, variance),
        "quantile_over_time" => {
            let q = ev.scalar_arg(arg(0)?)?;
            let r = ev.range_arg(arg(1)?)?;
            over_range_at(ev, &r, true, |i, w, _, _| {
                let mut vals: Vec<f64> = w.iter().map(|(_, v)| *v).collect();
                Some(quantile(q[i], &mut vals))
            })
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let r = ev.range_arg(arg(0)?)?;
            let sf = ev.scalar_arg(arg(1)?)?;
            let tf = ev.scalar_arg(arg(2)?)?;
            for i in 0..ev.n {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return Err(EvalError::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        sf[i]
                    )));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return Err(EvalError::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        tf[i]
                    )));
                }
            }
            over_range_at(ev, &r, true, |i, w, _, _| holt_winters(w, sf[i], tf[i]))
        }
        other => Err(EvalError::BadData(format!(
            "function {other:?} is not supported"
        ))),
    }
}

fn simple(name: &str) -> fn(f64) -> f64 {
    match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |x: f64| x * 180.0 / std::f64::consts::PI,
        "rad" => |x: f64| x * std::f64::consts::PI / 180.0,
        _ => |x: f64| x,
    }
}

fn non_empty(v: Vec<StepSeries>) -> Vec<StepSeries> {
    v.into_iter()
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect()
}

fn map_values(v: Vec<StepSeries>, f: impl Fn(f64) -> f64) -> Result<Value, EvalError> {
    map_values_at(v, |_, x| Some(f(x)))
}

/// Applies `f(step, value)` to every value and drops the metric name.
fn map_values_at(
    v: Vec<StepSeries>,
    f: impl Fn(usize, f64) -> Option<f64>,
) -> Result<Value, EvalError> {
    let out = v
        .into_iter()
        .map(|s| StepSeries {
            labels: drop_name(&s.labels),
            values: s
                .values
                .iter()
                .enumerate()
                .map(|(i, x)| x.and_then(|x| f(i, x)))
                .collect(),
        })
        .collect();
    Ok(Value::Vector(non_empty(merge_same_labels(out)?)))
}

/// The window `[lo, hi]` a range value shows at step `i`.
fn bounds(ev: &Ev<'_>, r: &RangeValue, i: usize) -> (i64, i64) {
    let eff = r.at.unwrap_or_else(|| ev.t(i)) - r.offset;
    (eff - r.range, eff)
}

fn over_range(
    ev: &Ev<'_>,
    r: &RangeValue,
    drop: bool,
    f: impl Fn(&[(i64, f64)], i64, i64) -> Option<f64>,
) -> Result<Value, EvalError> {
    over_range_at(ev, r, drop, |_, w, lo, hi| f(w, lo, hi))
}

/// Slides the window over every series; `f(step, window, lo, hi)` gives the value.
fn over_range_at(
    ev: &Ev<'_>,
    r: &RangeValue,
    drop: bool,
    f: impl Fn(usize, &[(i64, f64)], i64, i64) -> Option<f64>,
) -> Result<Value, EvalError> {
    let mut out = Vec::with_capacity(r.series.len());
    for s in &r.series {
        ev.check_deadline()?;
        let mut windows = Windows::new(&s.samples);
        let values: Vec<Option<f64>> = (0..ev.n)
            .map(|i| {
                let (lo, hi) = bounds(ev, r, i);
                let w = windows.get(lo, hi);
                if w.is_empty() { None } else { f(i, w, lo, hi) }
            })
            .collect();
        if values.iter().any(Option::is_some) {
            out.push(StepSeries {
                labels: if drop {
                    drop_name(&s.labels)
                } else {
                    s.labels.clone()
                },
                values,
            });
        }
    }
    Ok(Value::Vector(merge_same_labels(out)?))
}

fn over_time(
    ev: &Ev<'_>,
    a: &Expr,
    drop: bool,
    f: impl Fn(&[(i64, f64)]) -> f64,
) -> Result<Value, EvalError> {
    let r = ev.range_arg(a)?;
    over_range(ev, &r, drop, |w, _, _| Some(f(w)))
}

/// Prometheus' `extrapolatedRate`: the change over the window, extrapolated to its
/// edges unless the series starts or ends too far inside it.
fn extrapolated_rate(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first_t, first_v) = w[0];
    let (last_t, last_v) = w[w.len() - 1];
    let mut result = last_v - first_v;
    if counter {
        let mut prev = first_v;
        for &(_, v) in &w[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    result *= interval / sampled;
    if rate {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

fn instant_value(w: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (lt, lv) = w[w.len() - 1];
    let (pt, pv) = w[w.len() - 2];
    let mut result = if is_rate && lv < pv { lv } else { lv - pv };
    let interval = lt - pt;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept at `intercept_time`, x in seconds.
fn linear_regression(w: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let init = w[0].1;
    if w.iter().all(|(_, v)| *v == init) {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (mut n, mut sx, mut sy, mut sxy, mut sx2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(t, v) in w {
        let x = (t - intercept_time) as f64 / 1e3;
        n += 1.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sx2 += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Population variance (Welford).
fn variance(w: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
}

fn holt_winters(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].1);
    let mut b = w[1].1 - w[0].1;
    for (i, &(_, v)) in w.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

fn date_part(name: &str, x: f64) -> f64 {
    let secs = x as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "year" => y as f64,
        "month" => m as f64,
        "day_of_month" => d as f64,
        "day_of_week" => ((days + 4).rem_euclid(7)) as f64,
        "day_of_year" => (days - days_from_civil(y, 1, 1) + 1) as f64,
        "hour" => (rem / 3600) as f64,
        "minute" => ((rem % 3600) / 60) as f64,
        "days_in_month" => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        }
        _ => f64::NAN,
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut empty: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, PMatchOp::Equal) && !set.iter().any(|(n, _)| *n == m.name) {
            set.push((m.name.clone(), m.value.clone()));
        } else {
            empty.push(m.name.clone());
        }
    }
    set.retain(|(n, _)| !empty.contains(n));
    Labels::new(set)
}

fn label_replace(ev: &Ev<'_>, args: &[Box<Expr>]) -> Result<Value, EvalError> {
    if args.len() != 5 {
        return Err(EvalError::BadData("label_replace takes 5 arguments".into()));
    }
    let v = ev.vector_arg(&args[0])?;
    let dst = ev.string_arg(&args[1])?;
    let repl = ev.string_arg(&args[2])?;
    let src = ev.string_arg(&args[3])?;
    let re_text = ev.string_arg(&args[4])?;
    let re = regex::Regex::new(&format!("^(?s:{re_text})$")).map_err(|e| {
        EvalError::Execution(format!(
            "invalid regular expression in label_replace(): {e}"
        ))
    })?;
    if !is_label_name(&dst) {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let out = v
        .into_iter()
        .map(|s| {
            let src_val = s.labels.get(&src).unwrap_or("");
            let labels = match re.captures(src_val) {
                Some(caps) => {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    let mut pairs = s.labels.without(|n| n == dst).to_vec();
                    if !res.is_empty() {
                        pairs.push((dst.clone(), res));
                    }
                    Labels::new(pairs)
                }
                None => s.labels.clone(),
            };
            StepSeries {
                labels,
                values: s.values,
            }
        })
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}

fn label_join(ev: &Ev<'_>, args: &[Box<Expr>]) -> Result<Value, EvalError> {
    if args.len() < 3 {
        return Err(EvalError::BadData(
            "label_join takes at least 3 arguments".into(),
        ));
    }
    let v = ev.vector_arg(&args[0])?;
    let dst = ev.string_arg(&args[1])?;
    let sep = ev.string_arg(&args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = ev.string_arg(a)?;
        if !is_label_name(&s) {
            return Err(EvalError::Execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !is_label_name(&dst) {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let out = v
        .into_iter()
        .map(|s| {
            let joined = srcs
                .iter()
                .map(|n| s.labels.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&sep);
            let mut pairs = s.labels.without(|n| n == dst).to_vec();
            if !joined.is_empty() {
                pairs.push((dst.clone(), joined));
            }
            StepSeries {
                labels: Labels::new(pairs),
                values: s.values,
            }
        })
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}

/// Go's `math.Max`: NaN if either is NaN (Rust's `f64::max` returns the other).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN if either is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_go() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("day_of_week", 0.0), 4.0);
    }
}
