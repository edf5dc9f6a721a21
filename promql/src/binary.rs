//! Binary operators: arithmetic, comparisons (filtering or `bool`), `atan2`, and the set
//! operators, with `on` / `ignoring` and `group_left` / `group_right` vector matching.

use std::collections::HashMap;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use triad_model::metric::{Labels, METRIC_NAME};

use super::StepSeries;
use super::eval::{Ev, EvalError, Value, drop_name, merge_same_labels};

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// Arithmetic drops the metric name; in Prometheus 2.42 `atan2` keeps it.
fn drops_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^")
}

/// Prometheus' `vectorElemBinop`: the value and whether a comparison holds.
fn apply(op: &str, l: f64, r: f64) -> (f64, bool) {
    match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// Evaluates a binary expression.
pub(crate) fn binary(ev: &Ev<'_>, b: &BinaryExpr) -> Result<Value, EvalError> {
    let op = b.op.to_string();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.iter()
                .zip(&r)
                .map(|(l, r)| {
                    let (v, keep) = apply(&op, *l, *r);
                    if is_comparison(&op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => vector_scalar(&op, v, &s, false, return_bool),
        (Value::Scalar(s), Value::Vector(v)) => vector_scalar(&op, v, &s, true, return_bool),
        (Value::Vector(l), Value::Vector(r)) => {
            let card = b
                .modifier
                .as_ref()
                .map(|m| m.card.clone())
                .unwrap_or(VectorMatchCardinality::OneToOne);
            let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
            match op.as_str() {
                "and" | "or" | "unless" => set_op(ev, &op, l, r, &matching),
                _ => vector_vector(ev, &op, l, r, &card, &matching, return_bool),
            }
        }
        (l, r) => Err(EvalError::BadData(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    op: &str,
    v: Vec<StepSeries>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
) -> Result<Value, EvalError> {
    let drop = drops_name(op) || return_bool;
    let out: Vec<StepSeries> = v
        .into_iter()
        .map(|series| {
            let values = series
                .values
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let x = (*x)?;
                    let (l, r) = if swap { (s[i], x) } else { (x, s[i]) };
                    let (mut value, keep) = apply(op, l, r);
                    if is_comparison(op) && swap {
                        value = r;
                    }
                    if return_bool {
                        Some(if keep { 1.0 } else { 0.0 })
                    } else {
                        keep.then_some(value)
                    }
                })
                .collect();
            StepSeries {
                labels: if drop {
                    drop_name(&series.labels)
                } else {
                    series.labels
                },
                values,
            }
        })
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}

/// The matching signature of a series: its labels restricted by `on`, or without the
/// `ignoring` labels and the metric name.
fn signature(labels: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.without(|n| !on.labels.iter().any(|k| k == n)),
        Some(LabelModifier::Exclude(ign)) => {
            labels.without(|n| n == METRIC_NAME || ign.labels.iter().any(|k| k == n))
        }
        None => labels.without(|n| n == METRIC_NAME),
    }
}

fn set_op(
    ev: &Ev<'_>,
    op: &str,
    l: Vec<StepSeries>,
    r: Vec<StepSeries>,
    matching: &Option<LabelModifier>,
) -> Result<Value, EvalError> {
    let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut lout: Vec<Vec<Option<f64>>> = vec![vec![None; ev.n]; l.len()];
    let mut rout: Vec<Vec<Option<f64>>> = vec![vec![None; ev.n]; r.len()];
    for i in 0..ev.n {
        match op {
            "and" | "unless" => {
                let present: std::collections::HashSet<&Labels> = r
                    .iter()
                    .zip(&rsig)
                    .filter(|(s, _)| s.values[i].is_some())
                    .map(|(_, sig)| sig)
                    .collect();
                for (k, s) in l.iter().enumerate() {
                    if let Some(v) = s.values[i]
                        && present.contains(&lsig[k]) == (op == "and")
                    {
                        lout[k][i] = Some(v);
                    }
                }
            }
            _ => {
                let mut present = std::collections::HashSet::new();
                for (k, s) in l.iter().enumerate() {
                    if let Some(v) = s.values[i] {
                        lout[k][i] = Some(v);
                        present.insert(&lsig[k]);
                    }
                }
                for (k, s) in r.iter().enumerate() {
                    if let Some(v) = s.values[i]
                        && !present.contains(&rsig[k])
                    {
                        rout[k][i] = Some(v);
                    }
                }
            }
        }
    }
    let out: Vec<StepSeries> = l
        .into_iter()
        .zip(lout)
        .chain(r.into_iter().zip(rout))
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .map(|(s, values)| StepSeries {
            labels: s.labels,
            values,
        })
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}

/// Prometheus' `resultMetric`.
fn result_labels(
    lhs: &Labels,
    rhs: &Labels,
    op: &str,
    card: &VectorMatchCardinality,
    matching: &Option<LabelModifier>,
    return_bool: bool,
) -> Labels {
    let mut pairs = lhs.to_vec();
    if drops_name(op) || return_bool {
        pairs.retain(|(n, _)| n != METRIC_NAME);
    }
    if matches!(card, VectorMatchCardinality::OneToOne) {
        match matching {
            Some(LabelModifier::Include(on)) => {
                pairs.retain(|(n, _)| on.labels.iter().any(|k| k == n))
            }
            Some(LabelModifier::Exclude(ign)) => {
                pairs.retain(|(n, _)| !ign.labels.iter().any(|k| k == n))
            }
            None => {}
        }
    }
    if let Some(include) = card.labels() {
        for name in &include.labels {
            pairs.retain(|(n, _)| n != name);
            if let Some(v) = rhs.get(name) {
                pairs.push((name.clone(), v.to_string()));
            }
        }
    }
    Labels::new(pairs)
}

fn vector_vector(
    ev: &Ev<'_>,
    op: &str,
    l: Vec<StepSeries>,
    r: Vec<StepSeries>,
    card: &VectorMatchCardinality,
    matching: &Option<LabelModifier>,
    return_bool: bool,
) -> Result<Value, EvalError> {
    // group_right: the right side is the "many" side; evaluate with sides swapped.
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if one_to_many { (r, l) } else { (l, r) };
    let many_sig: Vec<Labels> = many
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    let one_sig: Vec<Labels> = one.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    let mut label_cache: HashMap<(usize, usize), Labels> = HashMap::new();
    for i in 0..ev.n {
        ev.check_deadline()?;
        let mut one_by_sig: HashMap<&Labels, usize> = HashMap::new();
        for (k, s) in one.iter().enumerate() {
            if s.values[i].is_none() {
                continue;
            }
            if let Some(prev) = one_by_sig.insert(&one_sig[k], k) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    one_sig[k], one[prev].labels, s.labels
                )));
            }
        }
        let mut matched: HashMap<&Labels, Vec<Labels>> = HashMap::new();
        for (k, s) in many.iter().enumerate() {
            let Some(mv) = s.values[i] else { continue };
            let Some(&j) = one_by_sig.get(&many_sig[k]) else {
                continue;
            };
            let Some(ov) = one[j].values[i] else { continue };
            let (lv, rv) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = apply(op, lv, rv);
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let labels = label_cache
                .entry((k, j))
                .or_insert_with(|| {
                    result_labels(&s.labels, &one[j].labels, op, card, matching, return_bool)
                })
                .clone();
            let inserted = matched.entry(&many_sig[k]).or_default();
            if matches!(card, VectorMatchCardinality::OneToOne) {
                if !inserted.is_empty() {
                    return Err(EvalError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else if inserted.contains(&labels) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            inserted.push(labels.clone());
            let idx = *out_index.entry(labels.clone()).or_insert_with(|| {
                out.push(StepSeries {
                    labels,
                    values: vec![None; ev.n],
                });
                out.len() - 1
            });
            out[idx].values[i] = Some(value);
        }
    }
    Ok(Value::Vector(out))
}
