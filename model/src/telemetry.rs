//! Declaring a component's own metrics once.
//!
//! Every crate keeps its metrics in one `metrics.rs` as a struct declared through
//! [`metric_set!`](crate::metric_set): each field's doc comment is both the Rust
//! documentation and the `# HELP` text of the metric, its name is the field's name
//! (or the one given with `as`), and the generated `register` creates every metric and
//! registers it under the set's prefix. Adding a metric is one field; no help text is
//! written twice and no field can be left unregistered.
//!
//! ```
//! use prometheus_client::metrics::counter::Counter;
//! use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
//!
//! triad_model::metric_set! {
//!     /// What the example exports.
//!     pub struct ExampleMetrics in "triad_example" {
//!         /// Requests served.
//!         pub requests as "requests_served": Counter,
//!         /// Latency of one request, seconds.
//!         pub seconds: Histogram = Histogram::new(exponential_buckets(0.001, 2.0, 8)),
//!     }
//! }
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! let m = ExampleMetrics::register(&mut registry);
//! m.requests.inc();
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains("# HELP triad_example_requests_served Requests served."));
//! assert!(text.contains("triad_example_requests_served_total 1"));
//! ```

pub use prometheus_client::registry::Registry;

/// The `# HELP` text of a metric from its doc comment lines: trimmed and joined by
/// spaces, without the trailing period (prometheus-client's encoder adds one).
pub fn help(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    if out.ends_with('.') {
        out.pop();
    }
    out
}

/// Declares a struct of metrics and its `register(&mut Registry) -> Self`; see the
/// [module documentation](crate::telemetry).
///
/// `in "prefix"` puts every name under the prefix; without it the caller passes the
/// (sub-)registry to register into, as components that share a set under different
/// prefixes do. Each field is `/// help` then `[pub] name [as "metric_name"]: Type [= initializer]`;
/// without an initializer the metric is `Type::default()`. The generated
/// `unregistered()` gives a set registered nowhere, for tests and benchmarks.
#[macro_export]
macro_rules! metric_set {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident $(in $prefix:literal)? {
            $(
                $(#[doc = $doc:literal])+
                $fvis:vis $field:ident $(as $mname:literal)? : $ty:ty $(= $init:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            $(
                $(#[doc = $doc])+
                $fvis $field: $ty,
            )*
        }

        impl $name {
            /// Creates the metrics and registers them (under the set's prefix, if it
            /// names one).
            pub fn register(registry: &mut $crate::telemetry::Registry) -> Self {
                let m = Self {
                    $( $field: $crate::metric_set!(@init $ty $(, $init)?), )*
                };
                let r = $crate::metric_set!(@registry registry $(, $prefix)?);
                $(
                    r.register(
                        $crate::metric_set!(@name $field $(, $mname)?),
                        $crate::telemetry::help(&[$($doc),+]),
                        m.$field.clone(),
                    );
                )*
                m
            }

            /// The metrics registered nowhere, for tests and benchmarks.
            #[allow(dead_code)]
            pub fn unregistered() -> Self {
                Self::register(&mut $crate::telemetry::Registry::default())
            }
        }
    };
    (@init $ty:ty) => { <$ty>::default() };
    (@init $ty:ty, $init:expr) => { $init };
    (@registry $r:ident) => { $r };
    (@registry $r:ident, $p:literal) => { $r.sub_registry_with_prefix($p) };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident, $n:literal) => { $n };
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
    struct Kind {
        kind: &'static str,
    }

    crate::metric_set! {
        /// Two metrics.
        struct Two in "triad_test" {
            /// Things seen, by kind,
            /// over two lines.
            seen: Family<Kind, Counter>,
            /// Depth.
            depth as "queue_depth": Gauge,
        }
    }

    #[test]
    fn every_field_is_registered_with_its_doc_as_help() {
        let mut registry = super::Registry::default();
        let m = Two::register(&mut registry);
        m.seen.get_or_create(&Kind { kind: "a" }).inc();
        m.depth.set(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# HELP triad_test_seen Things seen, by kind, over two lines.\n"),
            "{text}"
        );
        assert!(
            text.contains("triad_test_seen_total{kind=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP triad_test_queue_depth Depth.\n"),
            "{text}"
        );
        assert!(text.contains("triad_test_queue_depth 3\n"), "{text}");
    }
}
