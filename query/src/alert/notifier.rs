//! The notifier: alerts from rule evaluation are routed, grouped, deduplicated against
//! the notification log, filtered by silences and POSTed to webhooks as Alertmanager's
//! webhook JSON (version 4) plus an `evidence` object per alert.
//!
//! One task owns all state. Every [`TICK`] it flushes the groups that are due (after
//! `group_wait` for a new group, then every `group_interval`); each delivery runs in its
//! own task with retries and exponential backoff until it succeeds or the group's
//! interval is over, and a group never has two deliveries in flight. The notification
//! log is written after each successful delivery only, so a restart repeats nothing that
//! was delivered and loses nothing that was not.
//!
//! It works only while this process leads alerting. When it takes over (at start, or
//! from another process that died), it re-reads the notification log, and once every
//! alerting rule was evaluated it resolves the alerts the log says were notified firing
//! but that no rule reports any more, firing or pending: they ended while nobody was
//! evaluating (Alertmanager resolves an alert that is no longer sent to it the same
//! way). Alerts still firing are not notified again before their repeat interval.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_model::alerting::WebhookReceiver;
use triad_model::metric::Labels;

use super::evidence::{AlertRef, EvidenceSource};
use super::metrics::AlertMetrics;
use super::nlog::{Entry, LoggedAlert, NotificationLog};
use super::route::Route;
use super::silence::Silences;
use crate::time::format_rfc3339;

/// How often due groups are looked for.
const TICK: Duration = Duration::from_millis(250);
/// First retry delay; doubled after each failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// After taking over, how long at most to wait for every rule's first evaluation before
/// resolving the notified alerts no rule reports (a rule that fails to evaluate must
/// not keep them firing forever).
const ADOPT_AFTER_MAX: Duration = Duration::from_secs(300);
/// Updates waiting for the notifier (one per alerting rule evaluation); rule evaluation
/// waits when it is full.
pub const UPDATE_QUEUE: usize = 1024;

/// An alert as the notifier tracks it.
#[derive(Debug, Clone)]
pub struct NotifyAlert {
    /// The tenant whose rule (or post) it comes from: its silences mute it, its data
    /// is the evidence.
    pub tenant: String,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Vec<(String, String)>,
    /// When it started firing, ms.
    pub starts_at_ms: i64,
    /// When the condition started to hold, ms (the evidence window starts before it).
    pub active_at_ms: i64,
    /// When it resolved, ms; `None` while firing.
    pub ends_at_ms: Option<i64>,
    /// The rule's expression.
    pub expr: String,
    /// Link to the expression.
    pub generator_url: String,
}

/// Everything an alerting rule's evaluation produced: its firing alerts and the resolved
/// ones still within retention. Alerts of the rule missing from the next update resolve.
#[derive(Debug)]
pub struct Update {
    /// Identifies the rule.
    pub rule_key: String,
    /// Its alerts.
    pub alerts: Vec<NotifyAlert>,
    /// Fingerprints of its pending alerts (after a takeover, an alert notified firing
    /// that is pending again is waiting for its `for`, not over).
    pub pending: Vec<u64>,
}

impl NotifyAlert {
    fn logged(&self) -> LoggedAlert {
        LoggedAlert {
            tenant: Some(self.tenant.clone()),
            labels: self.labels.to_vec(),
            annotations: self.annotations.clone(),
            starts_at_ms: self.starts_at_ms,
            active_at_ms: self.active_at_ms,
            expr: self.expr.clone(),
            generator_url: self.generator_url.clone(),
        }
    }
}

/// Alertmanager's fingerprint of a label set (FNV-1a over sorted names and values).
pub fn fingerprint(labels: &Labels) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels.iter() {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}

struct Group {
    key: String,
    receiver: String,
    group_labels: Labels,
    route: Route,
    alerts: BTreeSet<u64>,
    next_flush: Instant,
    in_flight: bool,
}

/// What a delivery task reports back.
struct Delivered {
    group: String,
    group_key: String,
    receiver: String,
    entry: Result<Entry, String>,
    /// Resolved alerts the notification covered (removed from the group on success).
    resolved: BTreeSet<u64>,
}

/// Settings and shared parts of the notifier.
pub struct NotifierParts {
    /// Routing tree.
    pub route: Route,
    /// Receivers by name.
    pub receivers: HashMap<String, WebhookReceiver>,
    /// Notification log.
    pub nlog: NotificationLog,
    /// Silences.
    pub silences: Arc<Silences>,
    /// Evidence lookup.
    pub evidence: Arc<EvidenceSource>,
    /// This Triad's URL.
    pub external_url: String,
    /// HTTP client for the webhooks.
    pub client: reqwest::Client,
    /// Telemetry.
    pub metrics: AlertMetrics,
    /// Set while this process leads alerting.
    pub leading: Arc<AtomicBool>,
    /// How many alerting rules report updates.
    pub rules: usize,
    /// `alerting.tenant` (alerts logged before alerts had tenants are its).
    pub primary_tenant: String,
}

/// What the notifier tracks: alerts, who reports them, their groups.
#[derive(Default)]
struct Tracked {
    alerts: HashMap<u64, NotifyAlert>,
    by_rule: HashMap<String, BTreeSet<u64>>,
    pending_by_rule: HashMap<String, BTreeSet<u64>>,
    groups: BTreeMap<String, Group>,
}

/// This process's time as the leader.
struct Lead {
    /// Rules that reported since it took over.
    reported: HashSet<String>,
    since: Instant,
    /// Whether the notified alerts nobody reports were resolved yet.
    adopted: bool,
}

/// Runs the notifier until `cancel` fires and the channel is drained.
pub async fn run(
    mut parts: NotifierParts,
    mut rx: mpsc::Receiver<Update>,
    cancel: CancellationToken,
) {
    let mut t = Tracked::default();
    let mut lead: Option<Lead> = None;
    let mut deliveries: JoinSet<Delivered> = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_takeover = Instant::now();
    loop {
        let leads = parts.leading.load(Ordering::Acquire);
        if leads && lead.is_none() && Instant::now() >= next_takeover {
            match take_over(&mut parts).await {
                Ok(()) => {
                    t = Tracked::default();
                    lead = Some(Lead {
                        reported: HashSet::new(),
                        since: Instant::now(),
                        adopted: false,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the notification log to take over notifications; retrying");
                    next_takeover = Instant::now() + Duration::from_secs(2);
                }
            }
        } else if !leads && lead.is_some() {
            // Another process notifies now: forget everything (deliveries in flight
            // still record what they delivered).
            t = Tracked::default();
            lead = None;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            u = rx.recv() => match u {
                Some(u) => if let Some(l) = &mut lead {
                    l.reported.insert(u.rule_key.clone());
                    apply(&parts, u, &mut t);
                },
                None => break,
            },
            Some(done) = deliveries.join_next(), if !deliveries.is_empty() => {
                match done {
                    Ok(d) => finish(&mut parts, d, &mut t.groups).await,
                    Err(e) => tracing::error!(error = %e, "notification task failed"),
                }
            }
            _ = tick.tick() => {
                let Some(l) = &mut lead else { continue };
                if !l.adopted
                    && (l.reported.len() >= parts.rules || l.since.elapsed() >= ADOPT_AFTER_MAX)
                {
                    l.adopted = true;
                    let n = adopt_orphans(&parts, &mut t);
                    if n > 0 {
                        tracing::info!(alerts = n, "alerts notified firing that no rule reports any more resolve now");
                    }
                }
                flush_due(&mut parts, &mut t, &mut deliveries, &cancel).await;
                // Forget alerts no group holds any more.
                let held: BTreeSet<u64> = t.groups.values().flat_map(|g| g.alerts.iter().copied()).collect();
                t.alerts.retain(|fp, _| held.contains(fp));
                for set in t.by_rule.values_mut() {
                    set.retain(|fp| t.alerts.contains_key(fp));
                }
                let firing = t.alerts.values().filter(|a| a.ends_at_ms.is_none()).count();
                parts.metrics.notifier_alerts.set(firing as i64);
            }
        }
    }
    // Let deliveries in flight finish (they stop retrying on cancellation).
    while let Some(done) = deliveries.join_next().await {
        if let Ok(d) = done {
            finish(&mut parts, d, &mut t.groups).await;
        }
    }
}

/// Becoming the process that notifies: what was notified and silenced is read afresh
/// (another process may have written it since this one last did).
async fn take_over(parts: &mut NotifierParts) -> Result<(), String> {
    parts.nlog.refresh().await.map_err(|e| e.to_string())?;
    parts.silences.refresh().await.map_err(|e| e.to_string())?;
    tracing::info!(
        groups = parts.nlog.entries().count(),
        "notifications: this process notifies now"
    );
    Ok(())
}

/// The key of the notification group of an alert of `tenant` on a route: Alertmanager's
/// (`{route}:{group labels}`), with the tenant before it for the tenants of
/// `alerting.tenants`, so that one notification never holds two tenants' alerts even
/// when they share a receiver and the route does not group by `tenant`.
fn group_key(primary_tenant: &str, tenant: &str, route_key: &str, group_labels: &Labels) -> String {
    if tenant == primary_tenant {
        format!("{route_key}:{group_labels}")
    } else {
        format!("{tenant}/{route_key}:{group_labels}")
    }
}

/// Puts an alert in the groups of every route it matches.
fn place(parts: &NotifierParts, fp: u64, a: &NotifyAlert, groups: &mut BTreeMap<String, Group>) {
    for route in parts.route.matching(&a.labels) {
        let group_labels = route.group_labels(&a.labels);
        let key = group_key(&parts.primary_tenant, &a.tenant, &route.key, &group_labels);
        let g = groups
            .entry(format!("{}\u{0}{key}", route.receiver))
            .or_insert_with(|| Group {
                key,
                receiver: route.receiver.clone(),
                group_labels,
                route: route.clone(),
                alerts: BTreeSet::new(),
                next_flush: Instant::now() + route.group_wait,
                in_flight: false,
            });
        g.alerts.insert(fp);
    }
}

fn apply(parts: &NotifierParts, u: Update, t: &mut Tracked) {
    let now_ms = triad_model::now_ns() / 1_000_000;
    let mut current = BTreeSet::new();
    for a in u.alerts {
        let fp = fingerprint(&a.labels);
        current.insert(fp);
        place(parts, fp, &a, &mut t.groups);
        t.alerts.insert(fp, a);
    }
    t.pending_by_rule
        .insert(u.rule_key.clone(), u.pending.into_iter().collect());
    // Alerts the rule no longer reports: resolved now if they were firing.
    let before = t
        .by_rule
        .insert(u.rule_key, current.clone())
        .unwrap_or_default();
    for fp in before.difference(&current) {
        if let Some(a) = t.alerts.get_mut(fp)
            && a.ends_at_ms.is_none()
        {
            a.ends_at_ms = Some(now_ms);
        }
    }
}

/// After a takeover and every rule's first evaluation: the alerts the notification log
/// says are firing that no rule reports (firing, resolved or pending) resolve now.
/// Returns how many.
fn adopt_orphans(parts: &NotifierParts, t: &mut Tracked) -> usize {
    let now_ms = triad_model::now_ns() / 1_000_000;
    let reported: HashSet<u64> = t
        .by_rule
        .values()
        .chain(t.pending_by_rule.values())
        .flatten()
        .copied()
        .collect();
    let mut orphans = Vec::new();
    for logged in parts.nlog.entries() {
        for (fp, a) in &logged.entry.alerts {
            if logged.entry.firing.contains(fp)
                && !reported.contains(fp)
                && !t.alerts.contains_key(fp)
            {
                orphans.push((*fp, a.clone()));
            }
        }
    }
    let n = orphans.len();
    for (fp, a) in orphans {
        let alert = NotifyAlert {
            // Logged before alerts had tenants: the alerting tenant's.
            tenant: a.tenant.unwrap_or_else(|| parts.primary_tenant.clone()),
            labels: Labels::new(a.labels),
            annotations: a.annotations,
            starts_at_ms: a.starts_at_ms,
            active_at_ms: a.active_at_ms,
            ends_at_ms: Some(now_ms),
            expr: a.expr,
            generator_url: a.generator_url,
        };
        place(parts, fp, &alert, &mut t.groups);
        t.alerts.insert(fp, alert);
    }
    n
}

async fn flush_due(
    parts: &mut NotifierParts,
    t: &mut Tracked,
    deliveries: &mut JoinSet<Delivered>,
    cancel: &CancellationToken,
) {
    let now = Instant::now();
    let now_ms = triad_model::now_ns() / 1_000_000;
    if !t
        .groups
        .values()
        .any(|g| !g.in_flight && g.next_flush <= now)
    {
        return;
    }
    // Silences added through another process's API count from the next flush.
    if let Err(e) = parts.silences.refresh().await {
        tracing::warn!(error = %e, "cannot read silences; using the ones read last");
    }
    let alerts = &t.alerts;
    let mut empty = Vec::new();
    for (id, g) in t.groups.iter_mut() {
        if g.in_flight || g.next_flush > now {
            continue;
        }
        g.next_flush = now + g.route.group_interval;
        g.alerts.retain(|fp| alerts.contains_key(fp));
        let Some(hook) = parts.receivers.get(&g.receiver).cloned() else {
            continue;
        };
        let mut firing = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        let mut muted = 0;
        let mut muted_resolved = Vec::new();
        for fp in &g.alerts {
            let a = &alerts[fp];
            if !parts
                .silences
                .muting(&a.tenant, &a.labels, now_ms)
                .is_empty()
            {
                muted += 1;
                if a.ends_at_ms.is_some() {
                    muted_resolved.push(*fp);
                }
                continue;
            }
            if a.ends_at_ms.is_some() {
                resolved.insert(*fp);
            } else {
                firing.insert(*fp);
            }
        }
        parts.metrics.silenced.inc_by(muted);
        // A silenced alert that ended is done with: nobody hears of it.
        g.alerts.retain(|fp| !muted_resolved.contains(fp));
        let repeat_ms = g.route.repeat_interval.as_millis() as i64;
        let entry = Entry {
            alerts: firing.iter().map(|fp| (*fp, alerts[fp].logged())).collect(),
            firing: firing.clone(),
            resolved: resolved.clone(),
            sent_at_ms: now_ms,
        };
        if !parts
            .nlog
            .needs_update(&g.key, &g.receiver, &entry, hook.send_resolved, repeat_ms)
        {
            // Resolved alerts that need no notification are done with.
            g.alerts.retain(|fp| !resolved.contains(fp));
            if g.alerts.is_empty() {
                empty.push(id.clone());
            }
            continue;
        }
        let mut chosen: Vec<NotifyAlert> = firing.iter().map(|fp| alerts[fp].clone()).collect();
        if hook.send_resolved {
            chosen.extend(resolved.iter().map(|fp| alerts[fp].clone()));
        }
        if chosen.is_empty() {
            // Nothing to tell this receiver (everything resolved, silenced or not sent
            // resolved), but the log must forget the firing alerts (Alertmanager's
            // retry stage sends nothing and its log stage records).
            if let Err(e) = parts.nlog.record(&g.key, &g.receiver, entry).await {
                tracing::error!(error = %e, "cannot write the notification log");
            }
            g.alerts.retain(|fp| !resolved.contains(fp));
            if g.alerts.is_empty() {
                empty.push(id.clone());
            }
            continue;
        }
        g.in_flight = true;
        let job = Delivery {
            group: id.clone(),
            group_key: g.key.clone(),
            group_labels: g.group_labels.clone(),
            hook,
            alerts: chosen,
            external_url: parts.external_url.clone(),
            evidence: parts.evidence.clone(),
            client: parts.client.clone(),
            deadline: now + g.route.group_interval,
            metrics: parts.metrics.clone(),
            cancel: cancel.clone(),
        };
        deliveries.spawn(async move {
            let result = job.run().await;
            Delivered {
                group: job.group,
                group_key: job.group_key,
                receiver: job.hook.name,
                entry: result.map(|()| entry),
                resolved,
            }
        });
    }
    for id in empty {
        t.groups.remove(&id);
    }
}

async fn finish(parts: &mut NotifierParts, d: Delivered, groups: &mut BTreeMap<String, Group>) {
    match d.entry {
        Ok(entry) => {
            // Recorded even when this process stopped leading meanwhile: it was
            // delivered, and whoever notifies next must know.
            if let Err(e) = parts.nlog.record(&d.group_key, &d.receiver, entry).await {
                tracing::error!(error = %e, "cannot write the notification log");
            }
            if let Some(g) = groups.get_mut(&d.group) {
                g.in_flight = false;
                g.alerts.retain(|fp| !d.resolved.contains(fp));
                if g.alerts.is_empty() {
                    groups.remove(&d.group);
                }
            }
        }
        Err(e) => {
            if let Some(g) = groups.get_mut(&d.group) {
                g.in_flight = false;
            }
            tracing::warn!(group = %d.group_key, receiver = %d.receiver, error = %e, "notification not delivered; retrying at the next group interval");
        }
    }
}

struct Delivery {
    group: String,
    group_key: String,
    group_labels: Labels,
    hook: WebhookReceiver,
    alerts: Vec<NotifyAlert>,
    external_url: String,
    evidence: Arc<EvidenceSource>,
    client: reqwest::Client,
    deadline: Instant,
    metrics: AlertMetrics,
    cancel: CancellationToken,
}

impl Delivery {
    async fn run(&self) -> Result<(), String> {
        let payload = {
            let ev = self.evidence.clone();
            let alerts = self.alerts.clone();
            let now_ms = triad_model::now_ns() / 1_000_000;
            let evidence = tokio::task::spawn_blocking(move || {
                alerts
                    .iter()
                    .map(|a| {
                        ev.collect(&AlertRef {
                            tenant: &a.tenant,
                            labels: &a.labels,
                            expr: &a.expr,
                            active_at_ms: a.active_at_ms,
                            end_ms: a.ends_at_ms.unwrap_or(now_ms),
                        })
                    })
                    .collect::<Vec<Json>>()
            })
            .await
            .map_err(|e| format!("evidence task failed: {e}"))?;
            payload(self, &evidence)
        };
        let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = Instant::now();
            let outcome = self.attempt(&body).await;
            self.metrics
                .observe_notification(&self.hook.name, outcome.is_ok(), started.elapsed());
            match outcome {
                Ok(()) => {
                    tracing::info!(group = %self.group_key, receiver = %self.hook.name, alerts = self.alerts.len(), attempt, "notification delivered");
                    return Ok(());
                }
                Err((e, retry)) => {
                    let next = Instant::now() + backoff;
                    if !retry || next > self.deadline || self.cancel.is_cancelled() {
                        return Err(format!("attempt {attempt}: {e}"));
                    }
                    tracing::warn!(receiver = %self.hook.name, attempt, error = %e, "notification failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.cancel.cancelled() => return Err(format!("attempt {attempt}: {e}; shutting down")),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One POST; the error says whether it is worth retrying (Alertmanager does not
    /// retry 4xx answers other than 429).
    async fn attempt(&self, body: &[u8]) -> Result<(), (String, bool)> {
        let mut req = self
            .client
            .post(&self.hook.url)
            .timeout(Duration::from_secs(self.hook.timeout_secs))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::USER_AGENT,
                concat!("Triad/", env!("CARGO_PKG_VERSION")),
            )
            .body(body.to_vec());
        if let Some(t) = &self.hook.bearer_token {
            req = req.bearer_auth(t);
        }
        for (k, v) in &self.hook.headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let s = r.status();
                let retry = s.is_server_error() || s.as_u16() == 429;
                Err((format!("{} answered {s}", self.hook.url), retry))
            }
            Err(e) => Err((format!("{}: {e}", self.hook.url), true)),
        }
    }
}

fn labels_map(pairs: impl Iterator<Item = (String, String)>) -> serde_json::Map<String, Json> {
    pairs.map(|(k, v)| (k, Json::from(v))).collect()
}

/// Go's zero time, which Alertmanager sends as `endsAt` of firing alerts.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn payload(d: &Delivery, evidence: &[Json]) -> Json {
    let mut alerts: Vec<(&NotifyAlert, &Json)> = d.alerts.iter().zip(evidence).collect();
    let truncated = if d.hook.max_alerts > 0 && alerts.len() > d.hook.max_alerts {
        let n = alerts.len() - d.hook.max_alerts;
        alerts.truncate(d.hook.max_alerts);
        n
    } else {
        0
    };
    let firing = d.alerts.iter().any(|a| a.ends_at_ms.is_none());
    let common = |get: &dyn Fn(&NotifyAlert) -> Vec<(String, String)>| {
        let mut it = d.alerts.iter();
        let mut common: BTreeMap<String, String> = it
            .next()
            .map(|a| get(a).into_iter().collect())
            .unwrap_or_default();
        for a in it {
            let theirs: BTreeMap<String, String> = get(a).into_iter().collect();
            common.retain(|k, v| theirs.get(k) == Some(v));
        }
        labels_map(common.into_iter())
    };
    let alerts_json: Vec<Json> = alerts
        .iter()
        .map(|(a, ev)| {
            json!({
                "status": if a.ends_at_ms.is_some() { "resolved" } else { "firing" },
                "labels": labels_map(a.labels.to_vec().into_iter()),
                "annotations": labels_map(a.annotations.iter().cloned()),
                "startsAt": format_rfc3339(a.starts_at_ms * 1_000_000),
                "endsAt": a.ends_at_ms.map_or_else(|| ZERO_TIME.to_string(), |e| format_rfc3339(e * 1_000_000)),
                "generatorURL": a.generator_url,
                "fingerprint": format!("{:016x}", fingerprint(&a.labels)),
                "evidence": ev,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": d.group_key,
        "truncatedAlerts": truncated,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": d.hook.name,
        "groupLabels": labels_map(d.group_labels.to_vec().into_iter()),
        "commonLabels": common(&|a| a.labels.to_vec()),
        "commonAnnotations": common(&|a| a.annotations.clone()),
        "externalURL": d.external_url,
        "alerts": alerts_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tenants_alerts_never_share_a_notification() {
        let labels = Labels::new(vec![("alertname".into(), "High".into())]);
        let ops = group_key("ops", "ops", "{}", &labels);
        let b = group_key("ops", "team-b", "{}", &labels);
        assert_eq!(
            ops,
            format!("{{}}:{labels}"),
            "Alertmanager's key, as before tenants"
        );
        assert_ne!(ops, b);
        assert_ne!(b, group_key("ops", "team-c", "{}", &labels));
    }

    #[test]
    fn fingerprint_is_alertmanagers() {
        // Cases of prometheus/common's model/signature_test.go.
        let empty = Labels::new(vec![]);
        assert_eq!(fingerprint(&empty), 14_695_981_039_346_656_037);
        let l = Labels::new(vec![
            ("name".into(), "garland, briggs".into()),
            ("fear".into(), "love is not enough".into()),
        ]);
        assert_eq!(fingerprint(&l), 5_799_056_148_416_392_346);
    }
}
