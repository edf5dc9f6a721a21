//! Metric series as Prometheus models them: a sorted label set (the metric name is the
//! label `__name__`) and samples of (timestamp ms, f64).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

/// Label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Prometheus' staleness marker: a NaN with this exact bit pattern, written when a series
/// or its target disappears. Queries treat it as "no value from here on".
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is the staleness marker (and not an ordinary NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Whether `s` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Formats a sample value as Prometheus does (Go's `strconv.FormatFloat(v, 'f', -1,
/// 64)`, `+Inf`, `-Inf`, `NaN`); also the text of `le` and `quantile` labels.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// A label set sorted by name, names unique. Cheap to clone.
///
/// Stored as one string (each name and value preceded by its length, see
/// [`push_len`]) in one shared allocation: a series' labels cost one allocation instead
/// of one per string, hashing and comparing them walk one buffer, and clones share it.
/// Equality and hashing are those of the pairs (the encoding is canonical); the order is
/// the pairs' lexicographic order, as for a sorted list of `(name, value)`.
#[derive(Clone, Default)]
pub struct Labels(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// See [`Labels::hint`]; not part of the value.
    hint: AtomicU32,
    /// Number of pairs.
    len: u32,
    /// The encoded pairs.
    text: Box<str>,
}

/// Appends a length as base-64 digits that are ASCII characters (so the buffer stays a
/// `str`): six bits per byte, low first, `0x40` set on every byte but the last. Lengths
/// below 64 take one byte.
fn push_len(out: &mut String, mut n: usize) {
    loop {
        let digit = (n & 0x3f) as u8;
        n >>= 6;
        if n == 0 {
            out.push(char::from(digit));
            return;
        }
        out.push(char::from(digit | 0x40));
    }
}

/// Reads a length written by [`push_len`] at `*pos`, advancing it.
fn read_len(bytes: &[u8], pos: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        n |= usize::from(b & 0x3f) << shift;
        if b & 0x40 == 0 {
            break;
        }
        shift += 6;
    }
    n
}

/// The pairs of an encoded label set, in order.
#[derive(Clone)]
struct Pairs<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let name = self.string();
        let value = self.string();
        Some((name, value))
    }
}

impl<'a> Pairs<'a> {
    fn string(&mut self) -> &'a str {
        let (start, end) = self.span();
        // Always a char boundary: the text is built by `Labels::from_sorted`.
        self.text.get(start..end).unwrap_or("")
    }

    /// The byte range of the next string, advancing past it.
    fn span(&mut self) -> (usize, usize) {
        let n = read_len(self.text.as_bytes(), &mut self.pos);
        let start = self.pos;
        self.pos = start + n;
        (start, self.pos)
    }

    /// The next pair as bytes (no UTF-8 boundary checks: for comparisons, where the
    /// order of bytes is the order of strings).
    fn next_bytes(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.pos >= self.text.len() {
            return None;
        }
        let bytes = self.text.as_bytes();
        let (a, b) = self.span();
        let (c, d) = self.span();
        Some((bytes.get(a..b)?, bytes.get(c..d)?))
    }
}

impl Labels {
    /// Builds a label set: sorts by name, keeps the last value of a repeated name and
    /// drops empty values (an empty value means "no such label" in Prometheus).
    pub fn new(mut pairs: Vec<(String, String)>) -> Labels {
        // The common case (remote_write sends sorted labels) needs no work.
        if !(pairs.windows(2).all(|w| w[0].0 < w[1].0) && pairs.iter().all(|(_, v)| !v.is_empty()))
        {
            pairs.reverse();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, earlier| later.0 == earlier.0);
            pairs.retain(|(_, v)| !v.is_empty());
        }
        Labels::from_sorted(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// Builds a label set from pairs already sorted by name, names unique and values
    /// not empty (the caller's promise: use [`Labels::new`] otherwise).
    pub fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Labels {
        let size: usize = pairs
            .clone()
            .into_iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum();
        let mut text = String::with_capacity(size);
        let mut len = 0u32;
        for (n, v) in pairs {
            push_len(&mut text, n.len());
            text.push_str(n);
            push_len(&mut text, v.len());
            text.push_str(v);
            len += 1;
        }
        Labels(Arc::new(Inner {
            hint: AtomicU32::new(0),
            len,
            text: text.into_boxed_str(),
        }))
    }

    /// Address of the shared allocation, equal for all clones of one label set: a key
    /// that skips hashing the strings. Confirm a hit with [`Labels::same_allocation`].
    pub fn allocation(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }

    /// Whether `other` is a clone of this label set (not merely equal to it).
    pub fn same_allocation(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many handles share this label set's allocation.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// A number a store may keep with this allocation, shared by every clone: where it
    /// keeps the series, so that the next append of a clone finds it without hashing.
    /// Zero until set. Another store may overwrite it; trust it only after confirming
    /// that what it points at holds this very allocation ([`Labels::same_allocation`]).
    pub fn hint(&self) -> u32 {
        self.0.hint.load(AtomicOrdering::Relaxed)
    }

    /// Sets [`Labels::hint`].
    pub fn set_hint(&self, hint: u32) {
        self.0.hint.store(hint, AtomicOrdering::Relaxed);
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        for (n, v) in self.iter() {
            match n.cmp(name) {
                Ordering::Less => {}
                Ordering::Equal => return Some(v),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The metric name (`__name__`), if present.
    pub fn name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        Pairs {
            text: &self.0.text,
            pos: 0,
        }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len as usize
    }

    /// True when there is no label.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// A copy as owned pairs, for editing.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// A copy without the labels for which `drop` is true.
    pub fn without(&self, mut drop: impl FnMut(&str) -> bool) -> Labels {
        let kept: Vec<(&str, &str)> = self.iter().filter(|(n, _)| !drop(n)).collect();
        Labels::from_sorted(kept.iter().copied())
    }

    /// Bytes held by names and values (for memory accounting).
    pub fn byte_size(&self) -> usize {
        self.0.text.len()
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.text == other.0.text
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.text.hash(state);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        let mut a = Pairs {
            text: &self.0.text,
            pos: 0,
        };
        let mut b = Pairs {
            text: &other.0.text,
            pos: 0,
        };
        loop {
            match (a.next_bytes(), b.next_bytes()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match x.cmp(&y) {
                    Ordering::Equal => {}
                    unequal => return unequal,
                },
            }
        }
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `name{a="x", b="y"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (n, v) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored regular expression)
    Regex,
    /// `!~`
    NotRegex,
}

/// A label matcher as in `{job=~"api|web"}`. A missing label has the value `""`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or pattern as written.
    pub value: String,
    regex: Option<regex::Regex>,
}

/// A matcher's regular expression does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {message}")]
pub struct MatcherError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub message: String,
}

impl Matcher {
    /// Builds a matcher; regular expressions are anchored at both ends, as in Prometheus.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?s:{value})$")).map_err(|e| MatcherError {
                    pattern: value.clone(),
                    message: e.to_string(),
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether a label value (`""` when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher accepts a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether a series' labels satisfy the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// Parses one matcher as written in Alertmanager routes and silences: `name="value"`,
/// `name!="v"`, `name=~"re"`, `name!~"re"`; the value may be double- or single-quoted
/// (with `\\`-escapes) or bare.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let s = text.trim();
    let name_len = s
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    let (name, rest) = s.split_at(name_len);
    if name.is_empty() {
        return Err(format!("{text:?} does not start with a label name"));
    }
    let rest = rest.trim_start();
    let (op, rest) = [
        ("=~", MatchOp::Regex),
        ("!~", MatchOp::NotRegex),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ]
    .into_iter()
    .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (op, r.trim())))
    .ok_or_else(|| format!("{text:?} has no operator (=, !=, =~, !~) after {name:?}"))?;
    let value = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let mut out = String::new();
            let mut chars = rest[1..].chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(e) => out.push(e),
                        None => break,
                    },
                    c if c == q => {
                        closed = true;
                        break;
                    }
                    c => out.push(c),
                }
            }
            if !closed || !chars.as_str().trim().is_empty() {
                return Err(format!(
                    "{text:?}: the quoted value is not closed at the end"
                ));
            }
            out
        }
        _ => rest.to_string(),
    };
    Matcher::new(op, name, value).map_err(|e| e.to_string())
}

/// One series and its samples in a time range, oldest first.
#[derive(Debug, Clone)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// (timestamp ms, value), strictly increasing timestamps. May contain staleness
    /// markers.
    pub samples: Vec<(i64, f64)>,
}

/// Merges parts of series from several sources (a head, blocks, object storage, a
/// collector) into one list sorted by labels: the parts of one series become one run
/// sorted by time, and of samples with equal timestamps the first part's is kept — the
/// same sample read from two sources (a block and its published copy) counts once.
/// Series left without samples are dropped.
pub fn merge_series(mut parts: Vec<(Labels, Vec<(i64, f64)>)>) -> Vec<SeriesSamples> {
    // Stable: the parts of one series stay in source order.
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<SeriesSamples> = Vec::with_capacity(parts.len());
    let mut parts = parts.into_iter().peekable();
    while let Some((labels, first)) = parts.next() {
        let mut same = vec![first];
        while let Some((_, more)) = parts.next_if(|(l, _)| *l == labels) {
            same.push(more);
        }
        let samples = merge_samples(same);
        if !samples.is_empty() {
            out.push(SeriesSamples { labels, samples });
        }
    }
    out
}

/// Merges sample runs of one series: sorted by time, the first of equal timestamps
/// kept.
pub fn merge_samples(mut parts: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    match parts.len() {
        0 => Vec::new(),
        1 => parts.pop().unwrap_or_default(),
        _ => {
            let mut all: Vec<(i64, f64)> = parts.into_iter().flatten().collect();
            all.sort_by_key(|(t, _)| *t);
            all.dedup_by_key(|(t, _)| *t);
            all
        }
    }
}

/// An exemplar: a sample of a series tied to a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Exemplar labels (usually `trace_id`, `span_id`).
    pub labels: Labels,
    /// Value.
    pub value: f64,
    /// Timestamp, ms.
    pub timestamp_ms: i64,
}

/// Exemplars of one series.
#[derive(Debug, Clone)]
pub struct SeriesExemplars {
    /// The series' labels.
    pub labels: Labels,
    /// Exemplars, oldest first.
    pub exemplars: Vec<Exemplar>,
}

/// What a metric family is, as the exposition's `# TYPE`, `# HELP` and `# UNIT` said.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset`
    /// or `unknown`.
    pub metric_type: String,
    /// Help text.
    pub help: String,
    /// Unit, often empty.
    pub unit: String,
}

#[cfg(test)]
mod tests {

    #[test]
    fn matchers_parse_as_alertmanager_writes_them() {
        let m = parse_matcher(r#"severity="page""#).unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("severity", MatchOp::Equal, "page")
        );
        let m = parse_matcher(r#" service =~ 'api|web' "#).unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::Regex, "api|web"));
        assert!(m.matches("web") && !m.matches("webx"));
        let m = parse_matcher("env!=prod").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::NotEqual, "prod"));
        let m = parse_matcher(r#"msg!~"a\"b""#).unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::NotRegex, "a\"b"));
        for bad in ["", "=x", "name", r#"a="open"#, r#"a="x" y"#, "a=~(", "1a=b"] {
            assert!(parse_matcher(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    proptest::proptest! {
        /// The one-buffer encoding keeps the pairs, their order and the equality, hash
        /// and order of a sorted list of pairs, for any strings (long, multi-byte,
        /// control characters).
        #[test]
        fn encoded_labels_behave_as_their_pairs(
            a in proptest::collection::btree_map("[a-z_]{1,3}", ".{1,200}", 0..6),
            b in proptest::collection::btree_map("[a-z_]{1,3}", ".{1,200}", 0..6),
        ) {
            let pairs = |m: &std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            let (la, lb) = (Labels::new(pairs(&a)), Labels::new(pairs(&b)));
            proptest::prop_assert_eq!(la.to_vec(), pairs(&a));
            proptest::prop_assert_eq!(la.len(), a.len());
            proptest::prop_assert_eq!(la.cmp(&lb), pairs(&a).cmp(&pairs(&b)));
            proptest::prop_assert_eq!(la == lb, a == b);
            for (k, v) in &a {
                proptest::prop_assert_eq!(la.get(k), Some(v.as_str()));
            }
            let hash = |l: &Labels| {
                use std::hash::{BuildHasher, BuildHasherDefault};
                BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(l)
            };
            if a == b {
                proptest::prop_assert_eq!(hash(&la), hash(&lb));
            }
        }
    }

    #[test]
    fn long_values_and_hints_survive_the_encoding() {
        for n in [0, 1, 63, 64, 4095, 4096, 262_144, 300_000] {
            let v = "é".repeat(n / 2) + &"x".repeat(n % 2);
            let ls = l(&[("__name__", "m"), ("big", &v), ("z", "1")]);
            assert_eq!(
                ls.get("big"),
                if v.is_empty() { None } else { Some(v.as_str()) }
            );
            assert_eq!(ls.get("z"), Some("1"));
            assert_eq!(ls.name(), Some("m"));
        }
        let ls = l(&[("a", "1")]);
        assert_eq!(ls.hint(), 0);
        let clone = ls.clone();
        ls.set_hint(7);
        assert_eq!(clone.hint(), 7, "clones share the hint");
        assert_eq!(ls, l(&[("a", "1")]), "the hint is not part of the value");
        assert_eq!(ls.without(|n| n == "a"), Labels::default());
    }

    #[test]
    fn labels_sort_dedup_and_drop_empty() {
        let ls = l(&[("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(
            ls.to_vec(),
            vec![("a".into(), "1".into()), ("b".into(), "3".into())]
        );
        assert_eq!(ls.get("b"), Some("3"));
        assert_eq!(ls.get("c"), None);
        assert_eq!(
            l(&[("__name__", "up"), ("job", "x")]).to_string(),
            "up{job=\"x\"}"
        );
    }

    #[test]
    fn matchers_follow_prometheus() {
        let re = Matcher::new(MatchOp::Regex, "job", "api|web").unwrap();
        assert!(re.matches("api"));
        assert!(!re.matches("apiserver"), "regexes are anchored");
        assert!(!re.matches_empty());
        let nre = Matcher::new(MatchOp::NotRegex, "job", "a.*").unwrap();
        assert!(nre.matches_empty());
        assert!(!nre.matches("abc"));
        assert!(
            Matcher::new(MatchOp::NotEqual, "x", "")
                .unwrap()
                .matches("y")
        );
        assert!(Matcher::new(MatchOp::Regex, "x", "(").is_err());
        let dotall = Matcher::new(MatchOp::Regex, "x", "a.b").unwrap();
        assert!(dotall.matches("a\nb"));
    }

    #[test]
    fn stale_nan_is_not_any_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
