//! Quantiles: `quantile` (the aggregation and `quantile_over_time`), and
//! `histogram_quantile` over classic `_bucket` series, as Prometheus 2.42 computes them.

use super::StepSeries;
use super::eval::{Ev, EvalError, Value};
use triad_model::metric::{Labels, METRIC_NAME};

/// Prometheus' `quantile`: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

/// `histogram_quantile(φ, buckets)`: per step, groups the `_bucket` series by their
/// labels without `le` and interpolates within the bucket holding the rank.
pub(crate) fn histogram_quantile(
    ev: &Ev<'_>,
    q: &[f64],
    v: Vec<StepSeries>,
) -> Result<Value, EvalError> {
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for (si, s) in v.iter().enumerate() {
        let Some(le) = s.labels.get("le") else {
            continue;
        };
        let Ok(upper) = parse_go_float(le) else {
            continue;
        };
        // Buckets of one histogram share every label but `le` (the metric name too, as
        // in Prometheus: two histograms never mix; their results without the name may
        // then collide, which the caller refuses).
        let key = s.labels.without(|n| n == "le");
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key.without(|n| n == METRIC_NAME), Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((upper, si));
    }
    let mut out = Vec::with_capacity(groups.len());
    for (labels, buckets) in groups {
        let values: Vec<Option<f64>> = (0..ev.n)
            .map(|i| {
                let mut bs: Vec<(f64, f64)> = buckets
                    .iter()
                    .filter_map(|(upper, si)| v[*si].values[i].map(|c| (*upper, c)))
                    .collect();
                (!bs.is_empty()).then(|| bucket_quantile(q[i], &mut bs))
            })
            .collect();
        if values.iter().any(Option::is_some) {
            out.push(StepSeries { labels, values });
        }
    }
    Ok(Value::Vector(out))
}

fn parse_go_float(s: &str) -> Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|_| ()),
    }
}

/// Prometheus' `bucketQuantile` over (upper bound, cumulative count).
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Ensure monotonic counts.
    let mut max = f64::NEG_INFINITY;
    for b in merged.iter_mut() {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let search = &merged[..merged.len() - 1];
    let b = search.partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut start = 0.0;
    let end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantile_interpolates() {
        let mut b = vec![(0.1, 10.0), (0.5, 20.0), (f64::INFINITY, 20.0)];
        assert!((bucket_quantile(0.5, &mut b) - 0.1).abs() < 1e-12);
        let mut b = vec![(0.1, 0.0), (1.0, 10.0), (f64::INFINITY, 10.0)];
        assert!((bucket_quantile(0.5, &mut b) - 0.55).abs() < 1e-12);
        let mut b = vec![(0.1, 1.0)];
        assert!(bucket_quantile(0.5, &mut b).is_nan());
    }
}
