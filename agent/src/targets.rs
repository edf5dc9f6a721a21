//! The collectors an agent forwards to: `agent.collector_endpoint` names one or several
//! (comma-separated), and a name that resolves to several addresses — a Kubernetes
//! headless Service — stands for each of them (resolved again every
//! [`RESOLVE_EVERY`]).
//!
//! Batches are spread over the healthy collectors in turn. A collector that fails a
//! send is skipped for a backoff that doubles with each failure in a row (with
//! jitter, at least the delay it asked for), and tried again after it; the batch goes
//! to the next healthy one at once. Whichever collector stores a batch acknowledges
//! it: the buffer and the checkpoints work as with one collector.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

/// How often names are resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// One collector address.
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub url: String,
    /// Its connection (lazy).
    pub channel: Channel,
    /// Skipped until then after a failure.
    down_until: Option<Instant>,
    /// The next failure's backoff.
    backoff: Duration,
}

/// The collectors; see the module docs.
pub struct Targets {
    /// As configured.
    configured: Vec<String>,
    list: Vec<Target>,
    /// Where the next search for a healthy target starts.
    next: usize,
    resolved_at: Option<Instant>,
    timeout: Duration,
    first_backoff: Duration,
    max_backoff: Duration,
}

fn channel(url: &str, timeout: Duration) -> crate::Result<Channel> {
    let bad = |reason: String| crate::Error::Endpoint {
        endpoint: url.to_string(),
        reason,
    };
    triad_receiver::client::grpc_channel(url, |endpoint| {
        endpoint
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .tcp_nodelay(true)
    })
    .map_err(bad)
}

/// `http://host:port` split into scheme, host and port (80/443 by default).
fn split_url(url: &str) -> Option<(&str, &str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']')?;
        let port = tail
            .strip_prefix(':')
            .map_or(Some(default), |p| p.parse().ok())?;
        return Some((scheme, host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((scheme, host, port.parse().ok()?)),
        None => Some((scheme, authority, default)),
    }
}

impl Targets {
    /// The collectors of `endpoints` (comma-separated URLs). Connects lazily.
    pub fn new(
        endpoints: &str,
        timeout: Duration,
        first_backoff: Duration,
        max_backoff: Duration,
    ) -> crate::Result<Targets> {
        let configured: Vec<String> = endpoints
            .split(',')
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if configured.is_empty() {
            return Err(crate::Error::Endpoint {
                endpoint: endpoints.to_string(),
                reason: "no collector endpoint".into(),
            });
        }
        let mut list = Vec::with_capacity(configured.len());
        for url in &configured {
            list.push(Target {
                channel: channel(url, timeout)?,
                url: url.clone(),
                down_until: None,
                backoff: first_backoff,
            });
        }
        Ok(Targets {
            configured,
            list,
            next: random_start(),
            resolved_at: None,
            timeout,
            first_backoff,
            max_backoff,
        })
    }

    /// Resolves the configured names again when due: a name with several addresses
    /// becomes a target per address. Targets that stay keep their health.
    pub async fn resolve(&mut self) {
        if self
            .resolved_at
            .is_some_and(|t| t.elapsed() < RESOLVE_EVERY)
        {
            return;
        }
        self.resolved_at = Some(Instant::now());
        let mut urls = Vec::new();
        for url in &self.configured {
            let Some((scheme, host, port)) = split_url(url) else {
                urls.push(url.clone());
                continue;
            };
            if host.parse::<IpAddr>().is_ok() {
                urls.push(url.clone());
                continue;
            }
            match tokio::net::lookup_host((host, port)).await {
                Ok(addrs) => {
                    let mut found: Vec<String> = addrs.map(|a| format!("{scheme}://{a}")).collect();
                    found.sort();
                    found.dedup();
                    if found.len() > 1 {
                        urls.extend(found);
                    } else {
                        urls.push(url.clone());
                    }
                }
                // Unresolvable now: keep the name; the send fails and backs off.
                Err(_) => urls.push(url.clone()),
            }
        }
        if urls.iter().eq(self.list.iter().map(|t| &t.url)) {
            return;
        }
        let mut old = std::mem::take(&mut self.list);
        for url in urls {
            let target = match old.iter().position(|t| t.url == url) {
                Some(i) => old.swap_remove(i),
                None => match channel(&url, self.timeout) {
                    Ok(channel) => Target {
                        url,
                        channel,
                        down_until: None,
                        backoff: self.first_backoff,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping a resolved collector address");
                        continue;
                    }
                },
            };
            self.list.push(target);
        }
        tracing::info!(collectors = ?self.list.iter().map(|t| &t.url).collect::<Vec<_>>(), "forwarding to");
        self.next %= self.list.len().max(1);
    }

    /// The next healthy target (round robin), or how long until one is due.
    pub fn pick(&mut self) -> Result<usize, Duration> {
        let now = Instant::now();
        let n = self.list.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.list[i].down_until.is_none_or(|t| t <= now) {
                return Ok(i);
            }
        }
        Err(self
            .list
            .iter()
            .filter_map(|t| t.down_until)
            .min()
            .map_or(self.first_backoff, |t| t.saturating_duration_since(now)))
    }

    /// Target `i`.
    pub fn get(&self, i: usize) -> &Target {
        &self.list[i]
    }

    /// Target `i` stored a batch: healthy again, and the next batch goes to the next one.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(t) = self.list.get_mut(i) {
            t.down_until = None;
            t.backoff = self.first_backoff;
        }
        self.next = (i + 1) % self.list.len().max(1);
    }

    /// Target `i` failed: skipped for its backoff (jittered, at least `hint`), which
    /// doubles for the next failure. Returns the wait.
    pub fn failed(
        &mut self,
        i: usize,
        hint: Option<Duration>,
        jitter: impl Fn(Duration) -> Duration,
    ) -> Duration {
        let max = self.max_backoff;
        let Some(t) = self.list.get_mut(i) else {
            return self.first_backoff;
        };
        let wait = jitter(t.backoff).max(hint.unwrap_or_default());
        t.down_until = Some(Instant::now() + wait);
        t.backoff = (t.backoff * 2).min(max);
        wait
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Where an agent's round robin starts: random, so that many agents started together
/// do not all send their first batches to the first collector.
fn random_start() -> usize {
    use std::hash::{BuildHasher, Hasher};
    (std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 65_536) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(endpoints: &str) -> Targets {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        Targets::new(
            endpoints,
            Duration::from_secs(1),
            Duration::from_millis(100),
            Duration::from_secs(10),
        )
        .unwrap()
    }

    #[test]
    fn urls_split_into_scheme_host_and_port() {
        assert_eq!(split_url("http://c:4317"), Some(("http", "c", 4317)));
        assert_eq!(split_url("https://c"), Some(("https", "c", 443)));
        assert_eq!(split_url("http://[::1]:4317"), Some(("http", "::1", 4317)));
        assert_eq!(split_url("http://c:x"), None);
    }

    #[test]
    fn batches_rotate_over_healthy_collectors_and_skip_failing_ones() {
        let mut t = targets("http://10.0.0.1:4317, http://10.0.0.2:4317/");
        assert_eq!(t.len(), 2);
        t.next = 0;
        assert_eq!(t.pick(), Ok(0));
        t.succeeded(0);
        assert_eq!(t.pick(), Ok(1), "the next batch goes to the next collector");
        let wait = t.failed(1, None, |d| d);
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(t.pick(), Ok(0), "a failing collector is skipped");
        let wait = t.failed(0, Some(Duration::from_secs(2)), |d| d);
        assert_eq!(wait, Duration::from_secs(2), "at least the delay asked for");
        let until = t.pick().unwrap_err();
        assert!(
            until <= Duration::from_millis(100),
            "{until:?}: the earliest is due first"
        );
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(t.pick(), Ok(1), "tried again after its backoff");
        assert_eq!(
            t.failed(1, None, |d| d),
            Duration::from_millis(200),
            "doubled"
        );
        t.succeeded(1);
        assert_eq!(
            t.failed(1, None, |d| d),
            Duration::from_millis(100),
            "reset by a success"
        );
    }

    #[test]
    fn no_endpoint_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        assert!(
            Targets::new(
                " , ",
                Duration::from_secs(1),
                Duration::ZERO,
                Duration::ZERO
            )
            .is_err()
        );
    }
}
