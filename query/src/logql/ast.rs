//! The parsed form of a LogQL query.

use regex::Regex;
use triad_model::metric::Matcher;

/// A parsed query: a log query, or a metric query whose range aggregations are computed
/// over logs and whose outer parts (vector aggregations, binary operations, `vector()`,
/// `label_replace`…) are PromQL, evaluated by Triad's PromQL engine.
#[derive(Debug)]
pub enum Query {
    /// `{…} | …`: log lines.
    Log(LogExpr),
    /// A metric query.
    Metric(MetricQuery),
}

/// A metric query: `promql` refers to range aggregation `i` as the series
/// `__logql_<i>` of `ranges[i]`.
#[derive(Debug)]
pub struct MetricQuery {
    /// The query with each range aggregation replaced by its series name.
    pub promql: String,
    /// The range aggregations, in order.
    pub ranges: Vec<RangeAgg>,
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// `{name op "value", …}`.
    pub matchers: Vec<Matcher>,
    /// Stages, in order.
    pub stages: Vec<Stage>,
}

/// A line filter's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// `|=`: contains.
    Contains,
    /// `!=`: does not contain.
    NotContains,
    /// `|~`: matches the regular expression.
    Regex,
    /// `!~`: does not match it.
    NotRegex,
    /// `|>`: matches the pattern.
    Pattern,
    /// `!>`: does not match it.
    NotPattern,
}

/// One alternative of a line filter (`|= "a" or "b"`).
#[derive(Debug, Clone)]
pub enum LineNeedle {
    /// A substring.
    Text(String),
    /// A regular expression (unanchored, as Loki's).
    Regex(Regex),
    /// A pattern (`<_> GET <_>`).
    Pattern(Pattern),
}

/// A pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// A line filter: the line must (or must not) contain one of the needles.
    Line {
        /// The operator.
        op: LineOp,
        /// Alternatives joined with `or`.
        needles: Vec<LineNeedle>,
        /// The alternatives as written (for the index prefilter).
        texts: Vec<String>,
    },
    /// `| json` or `| json a="b.c", …`.
    Json(Vec<(String, Vec<PathPart>)>),
    /// `| logfmt [--strict] [--keep-empty] [a, b="c"]`.
    Logfmt {
        /// Extract only these (label, key); all when empty.
        params: Vec<(String, String)>,
        /// Fail on a malformed pair instead of skipping it.
        strict: bool,
        /// Keep keys with empty values.
        keep_empty: bool,
    },
    /// `| regexp "(?P<name>…)"`: named groups become labels.
    Regexp(Regex),
    /// `| pattern "<ip> - <_> …"`.
    PatternParser(Pattern),
    /// `| unpack`: a JSON object's fields become labels, `_entry` becomes the line.
    Unpack,
    /// `| decolorize`: ANSI colour codes removed from the line.
    Decolorize,
    /// A label filter expression.
    Filter(LabelFilter),
    /// `| line_format "{{.a}}"`.
    LineFormat(Template),
    /// `| label_format a=b, c="{{.d}}"`.
    LabelFormat(Vec<(String, LabelFmt)>),
    /// `| drop a, b="c"`.
    Drop(Vec<NameOrMatcher>),
    /// `| keep a, b="c"`.
    Keep(Vec<NameOrMatcher>),
    /// `| unwrap [bytes|duration|duration_seconds](label)`.
    Unwrap {
        /// The label whose value becomes the sample.
        label: String,
        /// How the value is read.
        conv: Conversion,
    },
}

/// How `unwrap` reads a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// A float.
    Float,
    /// A byte size (`5KB`).
    Bytes,
    /// A duration in seconds (`1m30s`).
    Duration,
}

/// One step of a JSON path: `.a`, `["a"]`, `[0]`.
#[derive(Debug, Clone, PartialEq)]
pub enum PathPart {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A parsed pattern: literal text and captures.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The parts in order.
    pub parts: Vec<PatternPart>,
}

/// A part of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternPart {
    /// Text that must be there.
    Literal(String),
    /// `<name>` (`None` for `<_>`): everything up to the next literal.
    Capture(Option<String>),
}

/// A compiled `line_format` / `label_format` template.
#[derive(Clone)]
pub struct Template {
    /// As written.
    pub source: String,
    /// Compiled, with `__line__`/`__timestamp__` turned into fields of the data.
    pub compiled: std::sync::Arc<gtmpl::Template>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

/// A `label_format` assignment.
#[derive(Debug, Clone)]
pub enum LabelFmt {
    /// `a=b`: label `b` renamed to `a`.
    Rename(String),
    /// `a="{{…}}"`.
    Template(Template),
}

/// A `drop`/`keep` argument.
#[derive(Debug, Clone)]
pub enum NameOrMatcher {
    /// A label name.
    Name(String),
    /// A label with a given value.
    Matcher(Matcher),
}

/// Comparison of a label filter on numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` or `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

impl CmpOp {
    /// Applies the comparison.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// Both hold.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either holds.
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// A string comparison (`=`, `!=`, `=~`, `!~`).
    Str(Matcher),
    /// A comparison of the label's value read as `conv` with `value`.
    Num {
        /// The label.
        name: String,
        /// The comparison.
        op: CmpOp,
        /// The right-hand side (seconds for durations, bytes for sizes).
        value: f64,
        /// How the label's value is read.
        conv: Conversion,
    },
}

/// A range aggregation's function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    /// `count_over_time`.
    Count,
    /// `rate`.
    Rate,
    /// `bytes_over_time`.
    Bytes,
    /// `bytes_rate`.
    BytesRate,
    /// `absent_over_time`.
    Absent,
    /// `sum_over_time`.
    Sum,
    /// `avg_over_time`.
    Avg,
    /// `min_over_time`.
    Min,
    /// `max_over_time`.
    Max,
    /// `stdvar_over_time`.
    Stdvar,
    /// `stddev_over_time`.
    Stddev,
    /// `quantile_over_time`.
    Quantile,
    /// `first_over_time`.
    First,
    /// `last_over_time`.
    Last,
}

impl RangeFn {
    /// The function of a name.
    pub fn of(name: &str) -> Option<RangeFn> {
        Some(match name {
            "count_over_time" => RangeFn::Count,
            "rate" => RangeFn::Rate,
            "bytes_over_time" => RangeFn::Bytes,
            "bytes_rate" => RangeFn::BytesRate,
            "absent_over_time" => RangeFn::Absent,
            "sum_over_time" => RangeFn::Sum,
            "avg_over_time" => RangeFn::Avg,
            "min_over_time" => RangeFn::Min,
            "max_over_time" => RangeFn::Max,
            "stdvar_over_time" => RangeFn::Stdvar,
            "stddev_over_time" => RangeFn::Stddev,
            "quantile_over_time" => RangeFn::Quantile,
            "first_over_time" => RangeFn::First,
            "last_over_time" => RangeFn::Last,
            _ => return None,
        })
    }

    /// Whether the function reads unwrapped values (and needs `| unwrap`); `rate`
    /// takes them or counts lines.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeFn::Count | RangeFn::Rate | RangeFn::Bytes | RangeFn::BytesRate | RangeFn::Absent
        )
    }
}

/// `by (…)` / `without (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Keep only these labels.
    By(Vec<String>),
    /// Drop these labels.
    Without(Vec<String>),
}

/// A range aggregation over logs: `count_over_time({…} |= "x" [5m])`.
#[derive(Debug, Clone)]
pub struct RangeAgg {
    /// The function.
    pub func: RangeFn,
    /// `quantile_over_time`'s φ.
    pub param: Option<f64>,
    /// The selector and pipeline (including `unwrap`).
    pub log: LogExpr,
    /// Window, ns.
    pub range_ns: i64,
    /// `offset`, ns.
    pub offset_ns: i64,
    /// `by`/`without` after the call (for the unwrapped functions).
    pub grouping: Option<Grouping>,
}
