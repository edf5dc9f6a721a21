//! OTLP metrics → Prometheus series, as Prometheus' OTLP receiver translates them
//! (`otlptranslator`, underscore escaping with suffixes):
//! - names: split on anything not a letter or digit, joined by `_`, the unit appended
//!   (`s` → `seconds`, `By` → `bytes`, `{requests}` dropped, `a/b` → `a_per_b`), `_total`
//!   for monotonic sums, `_ratio` for gauges of unit `1`, `_` before a leading digit;
//! - labels: data point attributes, invalid characters replaced by `_`; `job` from
//!   `service.namespace/service.name`, `instance` from `service.instance.id`; the other
//!   resource attributes go to a `target_info` series;
//! - gauges and non-monotonic sums become gauges, monotonic cumulative sums counters,
//!   cumulative histograms `_bucket{le}`/`_sum`/`_count`, summaries `{quantile}`/`_sum`/
//!   `_count`; exemplars keep `trace_id`/`span_id`; "no recorded value" becomes a
//!   staleness marker.
//!
//! Refused and counted as rejected data points: delta temporality (as Prometheus does
//! without its delta conversion) and exponential histograms (Triad stores no native
//! histograms).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue as OtlpKeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, metric::Data, number_data_point,
};
use triad_model::metric::{Exemplar, Labels, MetricMetadata, format_value, stale_nan};
use triad_model::otlp::value_from_otlp;

use triad_tsdb::AppendBatch;

/// The converted request.
#[derive(Debug, Default)]
pub struct ConvertedMetrics {
    /// Samples, exemplars and metadata.
    pub batch: AppendBatch,
    /// Data points refused.
    pub rejected: u64,
    /// Why, for the sender (the first reason).
    pub message: String,
}

const FLAG_NO_RECORDED_VALUE: u32 = 1;

fn unit_word(u: &str) -> &str {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_word(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Unit text as a name token: only letters, digits and `_`.
fn clean_unit(u: &str) -> String {
    u.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// The Prometheus name of an OTLP metric.
pub fn metric_name(name: &str, unit: &str, counter: bool, gauge: bool) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    if !main.is_empty() && !main.contains(['{', '}']) {
        let word = clean_unit(unit_word(main));
        if !word.is_empty() && !tokens.contains(&word) {
            tokens.push(word);
        }
    }
    if let Some(per) = parts.next().map(str::trim)
        && !per.is_empty()
        && !per.contains(['{', '}'])
    {
        let word = clean_unit(per_unit_word(per));
        if !word.is_empty() && !tokens.contains(&word) {
            tokens.push("per".into());
            tokens.push(word);
        }
    }
    if counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if gauge && unit == "1" {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let name = tokens.join("_");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

/// A label name with invalid characters replaced, as Prometheus' `NormalizeLabel`.
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("key_{out}");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out = format!("key{out}");
    }
    out
}

fn attr_labels(attrs: &[OtlpKeyValue]) -> Vec<(String, String)> {
    attrs
        .iter()
        .filter_map(|kv| {
            let v = value_from_otlp(kv.value.clone()?.clone()).to_text();
            (!kv.key.is_empty()).then(|| (label_name(&kv.key), v))
        })
        .collect()
}

fn exemplar(e: &OtlpExemplar) -> Option<Exemplar> {
    use opentelemetry_proto::tonic::metrics::v1::exemplar::Value;
    let value = match e.value? {
        Value::AsDouble(d) => d,
        Value::AsInt(i) => i as f64,
    };
    let mut labels = attr_labels(&e.filtered_attributes);
    if e.trace_id.len() == 16 {
        labels.push(("trace_id".into(), hex::encode(&e.trace_id)));
    }
    if e.span_id.len() == 8 {
        labels.push(("span_id".into(), hex::encode(&e.span_id)));
    }
    Some(Exemplar {
        labels: Labels::new(labels),
        value,
        timestamp_ms: (e.time_unix_nano / 1_000_000) as i64,
    })
}

struct Builder<'a> {
    out: &'a mut ConvertedMetrics,
    base: Vec<(String, String)>,
}

impl Builder<'_> {
    fn series(&self, name: &str, attrs: &[OtlpKeyValue], extra: Option<(&str, String)>) -> Labels {
        let mut pairs = attr_labels(attrs);
        // Resource labels (job, instance) win over data point attributes of that name.
        pairs.retain(|(k, _)| !self.base.iter().any(|(b, _)| b == k));
        pairs.extend(self.base.iter().cloned());
        if let Some((k, v)) = extra {
            pairs.retain(|(n, _)| n != k);
            pairs.push((k.to_string(), v));
        }
        pairs.push(("__name__".into(), name.to_string()));
        Labels::new(pairs)
    }

    fn push(&mut self, labels: Labels, t_ns: u64, v: f64, flags: u32) {
        let v = if flags & FLAG_NO_RECORDED_VALUE != 0 {
            stale_nan()
        } else {
            v
        };
        self.out
            .batch
            .samples
            .push((labels, (t_ns / 1_000_000) as i64, v));
    }

    fn reject(&mut self, n: usize, why: &str) {
        self.out.rejected += n as u64;
        if self.out.message.is_empty() {
            self.out.message = why.to_string();
        }
    }
}

/// Converts an export request.
pub fn convert(req: ExportMetricsServiceRequest) -> ConvertedMetrics {
    let mut out = ConvertedMetrics::default();
    for rm in req.resource_metrics {
        let res_attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let get = |k: &str| {
            res_attrs
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.clone())
                .map(|v| value_from_otlp(v).to_text())
        };
        let job = match (get("service.namespace"), get("service.name")) {
            (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
            (None, Some(n)) => Some(n),
            _ => None,
        };
        let instance = get("service.instance.id");
        let mut base = Vec::new();
        if let Some(j) = &job {
            base.push(("job".to_string(), j.clone()));
        }
        if let Some(i) = &instance {
            base.push(("instance".to_string(), i.clone()));
        }
        let mut latest_ns = 0u64;
        let mut b = Builder {
            out: &mut out,
            base: base.clone(),
        };
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let Some(data) = m.data else {
                    continue;
                };
                let cumulative = AggregationTemporality::Cumulative as i32;
                match data {
                    Data::Gauge(g) => {
                        let name = metric_name(&m.name, &m.unit, false, true);
                        meta(b.out, &name, "gauge", &m.description, &m.unit);
                        for p in g.data_points {
                            latest_ns = latest_ns.max(p.time_unix_nano);
                            number_point(&mut b, &name, p);
                        }
                    }
                    Data::Sum(s) => {
                        if s.aggregation_temporality != cumulative && s.is_monotonic {
                            b.reject(
                                s.data_points.len(),
                                "delta temporality is not supported: send cumulative sums",
                            );
                            continue;
                        }
                        let counter = s.is_monotonic;
                        let name = metric_name(&m.name, &m.unit, counter, !counter);
                        meta(
                            b.out,
                            &name,
                            if counter { "counter" } else { "gauge" },
                            &m.description,
                            &m.unit,
                        );
                        for p in s.data_points {
                            latest_ns = latest_ns.max(p.time_unix_nano);
                            number_point(&mut b, &name, p);
                        }
                    }
                    Data::Histogram(h) => {
                        if h.aggregation_temporality != cumulative {
                            b.reject(
                                h.data_points.len(),
                                "delta temporality is not supported: send cumulative histograms",
                            );
                            continue;
                        }
                        let name = metric_name(&m.name, &m.unit, false, false);
                        meta(b.out, &name, "histogram", &m.description, &m.unit);
                        for p in h.data_points {
                            latest_ns = latest_ns.max(p.time_unix_nano);
                            let t = p.time_unix_nano;
                            let mut cum = 0u64;
                            let bucket = format!("{name}_bucket");
                            let mut bounds: Vec<f64> = p.explicit_bounds.clone();
                            bounds.push(f64::INFINITY);
                            for (i, ub) in bounds.iter().enumerate() {
                                let count = if *ub == f64::INFINITY {
                                    p.count
                                } else {
                                    cum += p.bucket_counts.get(i).copied().unwrap_or(0);
                                    cum
                                };
                                let labels = b.series(
                                    &bucket,
                                    &p.attributes,
                                    Some(("le", format_value(*ub))),
                                );
                                let lower = if i == 0 {
                                    f64::NEG_INFINITY
                                } else {
                                    bounds[i - 1]
                                };
                                for e in p.exemplars.iter().filter_map(exemplar) {
                                    if e.value > lower && e.value <= *ub {
                                        b.out.batch.exemplars.push((labels.clone(), e));
                                    }
                                }
                                b.push(labels, t, count as f64, p.flags);
                            }
                            if let Some(sum) = p.sum {
                                let l = b.series(&format!("{name}_sum"), &p.attributes, None);
                                b.push(l, t, sum, p.flags);
                            }
                            let l = b.series(&format!("{name}_count"), &p.attributes, None);
                            b.push(l, t, p.count as f64, p.flags);
                        }
                    }
                    Data::Summary(s) => {
                        let name = metric_name(&m.name, &m.unit, false, false);
                        meta(b.out, &name, "summary", &m.description, &m.unit);
                        for p in s.data_points {
                            latest_ns = latest_ns.max(p.time_unix_nano);
                            let t = p.time_unix_nano;
                            for q in &p.quantile_values {
                                let l = b.series(
                                    &name,
                                    &p.attributes,
                                    Some(("quantile", format_value(q.quantile))),
                                );
                                b.push(l, t, q.value, p.flags);
                            }
                            let l = b.series(&format!("{name}_sum"), &p.attributes, None);
                            b.push(l, t, p.sum, p.flags);
                            let l = b.series(&format!("{name}_count"), &p.attributes, None);
                            b.push(l, t, p.count as f64, p.flags);
                        }
                    }
                    Data::ExponentialHistogram(h) => {
                        b.reject(
                            h.data_points.len(),
                            "exponential histograms are not supported: configure explicit-bucket histograms",
                        );
                    }
                }
            }
        }
        // target_info carries the resource attributes that are not job/instance.
        let info: Vec<(String, String)> = res_attrs
            .iter()
            .filter(|kv| {
                !matches!(
                    kv.key.as_str(),
                    "service.name" | "service.namespace" | "service.instance.id"
                )
            })
            .filter_map(|kv| {
                let v = value_from_otlp(kv.value.clone()?).to_text();
                Some((label_name(&kv.key), v))
            })
            .collect();
        if !info.is_empty() && latest_ns > 0 && (job.is_some() || instance.is_some()) {
            let mut pairs = info;
            pairs.retain(|(k, _)| !base.iter().any(|(b, _)| b == k));
            pairs.extend(base.iter().cloned());
            pairs.push(("__name__".into(), "target_info".into()));
            out.batch
                .samples
                .push((Labels::new(pairs), (latest_ns / 1_000_000) as i64, 1.0));
            meta(&mut out, "target_info", "gauge", "Target metadata", "");
        }
    }
    out
}

fn number_point(
    b: &mut Builder<'_>,
    name: &str,
    p: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
) {
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    };
    let labels = b.series(name, &p.attributes, None);
    for e in p.exemplars.iter().filter_map(exemplar) {
        b.out.batch.exemplars.push((labels.clone(), e));
    }
    b.push(labels, p.time_unix_nano, v, p.flags);
}

fn meta(out: &mut ConvertedMetrics, name: &str, kind: &str, help: &str, unit: &str) {
    let family = match kind {
        "counter" => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    out.batch.metadata.push((
        family.to_string(),
        MetricMetadata {
            metric_type: kind.into(),
            help: help.into(),
            unit: match unit.split('/').next().unwrap_or("").trim() {
                // Annotations such as `{request}` name no unit.
                u if u.contains(['{', '}']) => String::new(),
                u => clean_unit(unit_word(u)),
            },
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_prometheus_translates_them() {
        assert_eq!(
            metric_name("http.server.request.duration", "s", false, false),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            metric_name("http.server.requests", "{request}", true, false),
            "http_server_requests_total"
        );
        assert_eq!(
            metric_name("system.memory.usage", "By", false, true),
            "system_memory_usage_bytes"
        );
        assert_eq!(
            metric_name("cpu.utilization", "1", false, true),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("net.io", "By/s", true, false),
            "net_io_bytes_per_second_total"
        );
        assert_eq!(
            metric_name("requests_total", "", true, false),
            "requests_total"
        );
        assert_eq!(metric_name("2xx.count", "", false, true), "_2xx_count");
        assert_eq!(label_name("http.route"), "http_route");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("_x"), "key_x");
        assert_eq!(label_name("__x"), "__x");
    }
}
