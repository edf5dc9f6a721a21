//! Aggregation operators (`sum`, `avg`, …, `topk`, `quantile`, `count_values`) with
//! `by` / `without`, computed per step as Prometheus 2.42 does.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use triad_model::metric::is_label_name;
use triad_model::metric::{Labels, METRIC_NAME};

use super::StepSeries;
use super::eval::{Ev, EvalError, Value};
use super::format_value;
use super::quantile::quantile;

/// The labels a series is grouped by.
fn group_key(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(ls)) => {
            let keep = &ls.labels;
            labels.without(|n| !keep.iter().any(|k| k == n))
        }
        Some(LabelModifier::Exclude(ls)) => {
            let drop = &ls.labels;
            labels.without(|n| n == METRIC_NAME || drop.iter().any(|k| k == n))
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Acc {
    count: f64,
    value: f64,
    mean: f64,
}

/// Evaluates an aggregation.
pub(crate) fn aggregate(ev: &Ev<'_>, agg: &AggregateExpr) -> Result<Value, EvalError> {
    let op = agg.op.to_string();
    let input = ev.vector_arg(&agg.expr)?;
    // Group of each input series, and the groups' labels in order of appearance.
    let mut group_of = Vec::with_capacity(input.len());
    let mut groups: Vec<Labels> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in &input {
        let key = group_key(&s.labels, &agg.modifier);
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(key);
            groups.len() - 1
        });
        group_of.push(g);
    }
    match op.as_str() {
        "topk" | "bottomk" => {
            let param = agg
                .param
                .as_ref()
                .ok_or_else(|| EvalError::BadData(format!("{op} needs a parameter")))?;
            let k = ev.scalar_arg(param)?;
            select_k(ev, input, &group_of, groups.len(), &k, op == "topk")
        }
        "quantile" => {
            let param = agg
                .param
                .as_ref()
                .ok_or_else(|| EvalError::BadData("quantile needs a parameter".into()))?;
            let q = ev.scalar_arg(param)?;
            let mut out: Vec<StepSeries> = groups
                .iter()
                .map(|l| StepSeries {
                    labels: l.clone(),
                    values: vec![None; ev.n],
                })
                .collect();
            for (i, qi) in q.iter().enumerate() {
                let mut vals: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
                for (s, g) in input.iter().zip(&group_of) {
                    if let Some(v) = s.values[i] {
                        vals[*g].push(v);
                    }
                }
                for (g, mut vs) in vals.into_iter().enumerate() {
                    if !vs.is_empty() {
                        out[g].values[i] = Some(quantile(*qi, &mut vs));
                    }
                }
            }
            Ok(Value::Vector(out))
        }
        "count_values" => {
            let param = agg
                .param
                .as_ref()
                .ok_or_else(|| EvalError::BadData("count_values needs a parameter".into()))?;
            let label = ev.string_arg(param)?;
            if !is_label_name(&label) {
                return Err(EvalError::Execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            // As Prometheus: each series first gets the value label (`by` keeps it too),
            // then is grouped, so grouping by the value label itself counts the values.
            let modifier = match &agg.modifier {
                Some(LabelModifier::Include(ls)) => {
                    let mut ls = ls.clone();
                    if !ls.labels.contains(&label) {
                        ls.labels.push(label.clone());
                    }
                    Some(LabelModifier::Include(ls))
                }
                None => Some(LabelModifier::Include(promql_parser::label::Labels::new(
                    vec![label.as_str()],
                ))),
                other => other.clone(),
            };
            let mut out: Vec<StepSeries> = Vec::new();
            let mut out_index: HashMap<Labels, usize> = HashMap::new();
            for i in 0..ev.n {
                let mut counts: Vec<(Labels, f64)> = Vec::new();
                let mut at: HashMap<Labels, usize> = HashMap::new();
                for s in &input {
                    let Some(v) = s.values[i] else { continue };
                    let mut pairs = s.labels.without(|n| n == label).to_vec();
                    pairs.push((label.clone(), format_value(v)));
                    let key = group_key(&Labels::new(pairs), &modifier);
                    match at.get(&key) {
                        Some(&k) => counts[k].1 += 1.0,
                        None => {
                            at.insert(key.clone(), counts.len());
                            counts.push((key, 1.0));
                        }
                    }
                }
                for (labels, c) in counts {
                    let idx = *out_index.entry(labels.clone()).or_insert_with(|| {
                        out.push(StepSeries {
                            labels,
                            values: vec![None; ev.n],
                        });
                        out.len() - 1
                    });
                    out[idx].values[i] = Some(c);
                }
            }
            Ok(Value::Vector(out))
        }
        "sum" | "avg" | "count" | "min" | "max" | "group" | "stddev" | "stdvar" => {
            let mut out: Vec<StepSeries> = groups
                .iter()
                .map(|l| StepSeries {
                    labels: l.clone(),
                    values: vec![None; ev.n],
                })
                .collect();
            for i in 0..ev.n {
                ev.check_deadline()?;
                let mut accs: Vec<Acc> = vec![Acc::default(); groups.len()];
                for (s, g) in input.iter().zip(&group_of) {
                    let Some(v) = s.values[i] else { continue };
                    let a = &mut accs[*g];
                    if a.count == 0.0 {
                        *a = Acc {
                            count: 1.0,
                            value: if matches!(op.as_str(), "stddev" | "stdvar") {
                                0.0
                            } else {
                                v
                            },
                            mean: v,
                        };
                        continue;
                    }
                    a.count += 1.0;
                    match op.as_str() {
                        "sum" => a.value += v,
                        "avg" => {
                            if a.mean.is_infinite() {
                                if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                                    continue;
                                }
                                if !v.is_infinite() && !v.is_nan() {
                                    continue;
                                }
                            }
                            a.mean += v / a.count - a.mean / a.count;
                        }
                        "min" if (a.value > v || a.value.is_nan()) => {
                            a.value = v;
                        }
                        "max" if (a.value < v || a.value.is_nan()) => {
                            a.value = v;
                        }
                        "stddev" | "stdvar" => {
                            let delta = v - a.mean;
                            a.mean += delta / a.count;
                            a.value += delta * (v - a.mean);
                        }
                        _ => {}
                    }
                }
                for (g, a) in accs.iter().enumerate() {
                    if a.count == 0.0 {
                        continue;
                    }
                    out[g].values[i] = Some(match op.as_str() {
                        "sum" | "min" | "max" => a.value,
                        "avg" => a.mean,
                        "count" => a.count,
                        "group" => 1.0,
                        "stdvar" => a.value / a.count,
                        _ => (a.value / a.count).sqrt(),
                    });
                }
            }
            Ok(Value::Vector(out))
        }
        other => Err(EvalError::BadData(format!(
            "aggregation {other:?} is not supported"
        ))),
    }
}

fn select_k(
    ev: &Ev<'_>,
    input: Vec<StepSeries>,
    group_of: &[usize],
    n_groups: usize,
    k: &[f64],
    top: bool,
) -> Result<Value, EvalError> {
    let mut keep: Vec<Vec<Option<f64>>> = vec![vec![None; ev.n]; input.len()];
    for i in 0..ev.n {
        let ki = k[i];
        if ki.is_nan() || ki < 1.0 {
            continue;
        }
        let ki = if ki > input.len() as f64 {
            input.len()
        } else {
            ki as usize
        };
        // Prometheus' heap, step for step, so that ties pick the same series.
        let less = |a: f64, b: f64| a.is_nan() || if top { a < b } else { a > b };
        let mut heaps: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n_groups];
        for (si, (s, g)) in input.iter().zip(group_of).enumerate() {
            let Some(v) = s.values[i] else { continue };
            let h = &mut heaps[*g];
            if h.len() < ki {
                h.push((si, v));
                let last = h.len() - 1;
                heap_up(h, last, &less);
            } else if let Some(&(_, min)) = h.first() {
                let replace = if top { min < v } else { min > v } || (min.is_nan() && !v.is_nan());
                if replace {
                    h[0] = (si, v);
                    if ki > 1 {
                        heap_fix(h, 0, &less);
                    }
                }
            }
        }
        for h in heaps {
            for (si, v) in h {
                keep[si][i] = Some(v);
            }
        }
    }
    let mut out: Vec<(usize, f64, StepSeries)> = input
        .into_iter()
        .zip(keep)
        .zip(group_of)
        .filter(|((_, vals), _)| vals.iter().any(Option::is_some))
        .map(|((s, values), g)| {
            (
                *g,
                values[0].unwrap_or(f64::NAN),
                StepSeries {
                    labels: s.labels,
                    values,
                },
            )
        })
        .collect();
    // For an instant query, Prometheus lists topk's result largest first (bottomk's
    // smallest first) within each group, the groups in the order they first appeared.
    if ev.n == 1 {
        out.sort_by(|a, b| {
            let by_value = if top {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            };
            a.0.cmp(&b.0).then(by_value)
        });
    }
    Ok(Value::Vector(out.into_iter().map(|(_, _, s)| s).collect()))
}

/// Go's `container/heap` sift-up over (series, value), ordered by `less` on values.
fn heap_up(h: &mut [(usize, f64)], mut j: usize, less: &impl Fn(f64, f64) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

/// Go's `heap.Fix`: sift down, else up.
fn heap_fix(h: &mut [(usize, f64)], i0: usize, less: &impl Fn(f64, f64) -> bool) {
    let n = h.len();
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && less(h[j1 + 1].1, h[j1].1) {
            j = j1 + 1;
        }
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    if i == i0 {
        heap_up(h, i0, less);
    }
}
