//! From an exposition to samples: a target's series cache (a series seen in the last
//! scrape skips label merging, relabeling and sorting; one not seen again becomes
//! stale), target labels merged as Prometheus does (`exported_` unless `honor_labels`),
//! and the scrape's report series.

use super::*;

/// A parsed scrape, ready to append.
pub(super) struct Scraped {
    pub(super) samples: Vec<(Labels, i64, f64)>,
    pub(super) exemplars: Vec<(Labels, Exemplar)>,
    pub(super) metadata: Vec<(String, MetricMetadata)>,
    pub(super) scraped: usize,
    pub(super) added: usize,
}

/// What a target's series text became, and when it was last seen.
pub(super) struct CacheEntry {
    /// `None` when metric relabeling dropped it.
    pub(super) labels: Option<Labels>,
    /// Scrape number of the last scrape that had it.
    pub(super) seen: u64,
}

/// A target's known series, by the text that names them in the exposition
/// (`name{labels}`): a repeat skips label merging, relabeling and sorting, and the
/// entries seen last time but not now are the series to mark stale.
#[derive(Default)]
pub(super) struct SeriesCache {
    /// Entries by series text, in the order first seen.
    pub(super) entries: IndexMap<Box<str>, CacheEntry, foldhash::fast::RandomState>,
    /// Entry index of each sample of the previous scrape, in order. Expositions list
    /// their series in the same order every time, so the n-th sample's guess is
    /// confirmed by comparing bytes (in memory order) before anything is hashed.
    pub(super) order: Vec<u32>,
    pub(super) generation: u64,
}

impl SeriesCache {
    /// The entry index for the series text of the `n`-th sample of a scrape.
    pub(super) fn find(&self, n: usize, key: &str) -> Option<usize> {
        if let Some(&guess) = self.order.get(n)
            && let Some((k, _)) = self.entries.get_index(guess as usize)
            && **k == *key
        {
            return Some(guess as usize);
        }
        self.entries.get_index_of(key)
    }

    /// Ends a scrape: returns the series that were in the previous scrape but not in
    /// this one (all of them when `failed`), and forgets them.
    pub(super) fn finish(&mut self, failed: bool) -> Vec<Labels> {
        let current = self.generation;
        let mut gone = Vec::new();
        self.entries.retain(|_, e| {
            let keep = e.seen == current && !failed;
            if !keep && let Some(l) = &e.labels {
                gone.push(l.clone());
            }
            keep
        });
        if !gone.is_empty() || failed {
            // Indexes moved: the guesses would all miss once; drop them instead.
            self.order.clear();
        }
        gone
    }
}

pub(super) fn sample_labels(
    t: &Target,
    name: &str,
    pairs: &[(String, String)],
    external: &[(String, String)],
) -> Vec<(String, String)> {
    let mut lb: Vec<(String, String)> = Vec::with_capacity(pairs.len() + t.labels.len() + 1);
    lb.push(("__name__".to_string(), name.to_string()));
    lb.extend(pairs.iter().filter(|(k, _)| k != "__name__").cloned());
    for (n, v) in t.labels.iter() {
        let existing = lb.iter().position(|(k, val)| k == n && !val.is_empty());
        match existing {
            Some(_) if t.honor_labels => {}
            Some(i) => {
                // Prometheus keeps the exposition's value as exported_<name>.
                let mut exported = format!("exported_{n}");
                while lb.iter().any(|(k, _)| *k == exported) {
                    exported = format!("exported_{exported}");
                }
                lb[i].0 = exported;
                lb.push((n.to_string(), v.to_string()));
            }
            None => lb.push((n.to_string(), v.to_string())),
        }
    }
    for (n, v) in external {
        if !lb.iter().any(|(k, _)| k == n) {
            lb.push((n.clone(), v.clone()));
        }
    }
    lb
}

pub(super) fn convert(
    t: &Target,
    text: &str,
    format: Format,
    now: i64,
    external: &[(String, String)],
    cache: &mut SeriesCache,
) -> Result<Scraped, ScrapeFailure> {
    let generation = cache.generation;
    // Known series are looked up once, here: the parser skips their labels, and their
    // entries queue up in sample order for the loop below.
    let mut known: VecDeque<usize> = VecDeque::new();
    let mut n = 0;
    let exp = exposition::parse_with(text, format, |series| {
        let found = cache.find(n, series);
        n += 1;
        match found.and_then(|i| Some((i, cache.entries.get_index_mut(i)?.1))) {
            Some((i, e)) => {
                e.seen = generation;
                known.push_back(i);
                true
            }
            None => false,
        }
    })
    .map_err(|e| failure("parse", format!("line {}: {}", e.line, e.message)))?;
    let scraped = exp.samples.len();
    let mut out = Scraped {
        samples: Vec::with_capacity(scraped),
        exemplars: Vec::new(),
        metadata: exp
            .metadata
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    MetricMetadata {
                        metric_type: m
                            .metric_type
                            .map(|t| t.as_str())
                            .unwrap_or("unknown")
                            .to_string(),
                        help: m.help.clone().unwrap_or_default(),
                        unit: m.unit.clone().unwrap_or_default(),
                    },
                )
            })
            .collect(),
        scraped,
        added: 0,
    };
    let mut order = Vec::with_capacity(scraped);
    for s in exp.samples {
        // A known series comes back with an empty name (metric names never are).
        let cached = if s.name.is_empty() {
            known.pop_front()
        } else {
            None
        };
        let key = text.get(s.series.clone()).unwrap_or("");
        // Not known at parse time: new, or repeated within this scrape.
        let index = cached.or_else(|| cache.entries.get_index_of(key));
        let (index, labels) = match index.and_then(|i| Some((i, cache.entries.get_index(i)?.1))) {
            Some((i, e)) => (i, e.labels.clone()),
            None => {
                let lb = sample_labels(t, &s.name, &s.labels, external);
                let labels = relabel::process(lb, &t.metric_relabel)
                    .map(Labels::new)
                    .filter(|l| l.name().is_some());
                out.added += usize::from(labels.is_some());
                let (i, _) = cache.entries.insert_full(
                    key.into(),
                    CacheEntry {
                        labels: labels.clone(),
                        seen: generation,
                    },
                );
                (i, labels)
            }
        };
        order.push(index as u32);
        let Some(labels) = labels else { continue };
        let ts = match s.timestamp_ms {
            Some(ts) if t.honor_timestamps => ts,
            _ => now,
        };
        if let Some(e) = s.exemplar {
            out.exemplars.push((
                labels.clone(),
                Exemplar {
                    labels: Labels::new(e.labels),
                    value: e.value,
                    timestamp_ms: e.timestamp_ms.unwrap_or(ts),
                },
            ));
        }
        out.samples.push((labels, ts, s.value));
    }
    cache.order = order;
    if t.sample_limit > 0 && out.samples.len() as u64 > t.sample_limit {
        return Err(failure(
            "sample_limit",
            format!(
                "{} samples exceed sample_limit {}",
                out.samples.len(),
                t.sample_limit
            ),
        ));
    }
    Ok(out)
}

pub(super) fn report_labels(t: &Target, name: &str) -> Labels {
    let mut pairs = t.labels.to_vec();
    pairs.push(("__name__".into(), name.into()));
    Labels::new(pairs)
}

pub(super) const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];
