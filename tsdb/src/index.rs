//! The inverted label index shared by the head and the blocks: label name → value →
//! sorted series ids, and the evaluation of matchers over it.

use std::collections::BTreeMap;

use triad_model::metric::{MatchOp, Matcher};

/// Postings lists: for each label pair, the ids of the series carrying it, ascending.
#[derive(Debug, Default, Clone)]
pub struct Postings {
    map: BTreeMap<String, BTreeMap<String, Vec<u32>>>,
}

impl Postings {
    /// Adds series `id` with its label pairs. Ids must be added in ascending order for
    /// the lists to stay sorted; [`Postings::sort`] repairs them otherwise.
    pub fn add<'a>(&mut self, id: u32, labels: impl Iterator<Item = (&'a str, &'a str)>) {
        for (name, value) in labels {
            let values = match self.map.get_mut(name) {
                Some(v) => v,
                None => self.map.entry(name.to_string()).or_default(),
            };
            match values.get_mut(value) {
                Some(ids) => ids.push(id),
                None => {
                    values.insert(value.to_string(), vec![id]);
                }
            }
        }
    }

    /// Removes the given ids (sorted) everywhere; drops emptied values and names.
    pub fn remove(&mut self, ids: &[u32]) {
        if ids.is_empty() {
            return;
        }
        for values in self.map.values_mut() {
            for list in values.values_mut() {
                list.retain(|id| ids.binary_search(id).is_err());
            }
            values.retain(|_, l| !l.is_empty());
        }
        self.map.retain(|_, v| !v.is_empty());
    }

    /// Sorts every list (after out-of-order adds).
    pub fn sort(&mut self) {
        for values in self.map.values_mut() {
            for list in values.values_mut() {
                list.sort_unstable();
                list.dedup();
            }
        }
    }

    /// Label names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Values of a label, sorted.
    pub fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.map
            .get(name)
            .into_iter()
            .flat_map(|v| v.keys().map(String::as_str))
    }

    /// Ids of series satisfying every matcher, ascending; `all` lists every id, for
    /// matchers that also accept series lacking the label.
    ///
    /// A matcher that rejects the empty value narrows through its postings; one that
    /// accepts it (`a!="x"`, `a=~".*"`) subtracts the series it rejects.
    pub fn select(&self, matchers: &[Matcher], all: impl FnOnce() -> Vec<u32>) -> Vec<u32> {
        let (narrowing, widening): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| !m.matches_empty());
        let mut result: Option<Vec<u32>> = None;
        // Equality first: the shortest lists, cheapest to intersect.
        let mut narrowing = narrowing;
        narrowing.sort_by_key(|m| m.op != MatchOp::Equal);
        for m in narrowing {
            let ids = self.matching(m);
            result = Some(match result {
                None => ids,
                Some(r) => intersect(&r, &ids),
            });
            if result.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut result = match result {
            Some(r) => r,
            None => all(),
        };
        for m in widening {
            // Series rejected by `m`: those whose value for the label is non-empty and
            // does not match.
            let rejected = self.rejected(m);
            if !rejected.is_empty() {
                result = subtract(&result, &rejected);
            }
        }
        result
    }

    /// Ids of series whose value of `m.name` matches (never the empty value).
    fn matching(&self, m: &Matcher) -> Vec<u32> {
        let Some(values) = self.map.get(&m.name) else {
            return Vec::new();
        };
        if m.op == MatchOp::Equal {
            return values.get(&m.value).cloned().unwrap_or_default();
        }
        let lists: Vec<&Vec<u32>> = values
            .iter()
            .filter(|(v, _)| m.matches(v))
            .map(|(_, l)| l)
            .collect();
        union(&lists)
    }

    fn rejected(&self, m: &Matcher) -> Vec<u32> {
        let Some(values) = self.map.get(&m.name) else {
            return Vec::new();
        };
        let lists: Vec<&Vec<u32>> = values
            .iter()
            .filter(|(v, _)| !m.matches(v))
            .map(|(_, l)| l)
            .collect();
        union(&lists)
    }

    /// Approximate heap bytes (for memory accounting).
    pub fn byte_size(&self) -> usize {
        self.map
            .iter()
            .map(|(n, vs)| {
                n.len()
                    + 48
                    + vs.iter()
                        .map(|(v, l)| v.len() + 48 + l.capacity() * 4)
                        .sum::<usize>()
            })
            .sum()
    }
}

fn union(lists: &[&Vec<u32>]) -> Vec<u32> {
    match lists {
        [] => Vec::new(),
        [one] => (*one).clone(),
        _ => {
            let mut all: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter()
        .copied()
        .filter(|x| b.binary_search(x).is_err())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postings() -> Postings {
        let mut p = Postings::default();
        p.add(0, [("__name__", "up"), ("job", "api")].into_iter());
        p.add(1, [("__name__", "up"), ("job", "web")].into_iter());
        p.add(2, [("__name__", "up")].into_iter());
        p.add(3, [("__name__", "x"), ("job", "api")].into_iter());
        p
    }

    fn sel(p: &Postings, ms: &[Matcher]) -> Vec<u32> {
        p.select(ms, || vec![0, 1, 2, 3])
    }

    #[test]
    fn matchers_select_like_prometheus() {
        let p = postings();
        let eq = |n: &str, v: &str| Matcher::equal(n, v);
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(sel(&p, &[eq("__name__", "up")]), vec![0, 1, 2]);
        assert_eq!(sel(&p, &[eq("__name__", "up"), eq("job", "api")]), vec![0]);
        assert_eq!(
            sel(
                &p,
                &[eq("__name__", "up"), m(MatchOp::NotEqual, "job", "api")]
            ),
            vec![1, 2]
        );
        assert_eq!(sel(&p, &[eq("__name__", "up"), eq("job", "")]), vec![2]);
        assert_eq!(
            sel(&p, &[eq("__name__", "up"), m(MatchOp::Regex, "job", ".+")]),
            vec![0, 1]
        );
        assert_eq!(
            sel(&p, &[m(MatchOp::Regex, "job", "a.*|w.*")]),
            vec![0, 1, 3]
        );
        assert_eq!(
            sel(
                &p,
                &[eq("__name__", "up"), m(MatchOp::NotRegex, "job", "a.*")]
            ),
            vec![1, 2]
        );
        assert!(sel(&p, &[eq("nope", "x")]).is_empty());
    }
}
