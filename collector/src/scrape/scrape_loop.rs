//! One loop per target: scrape every interval (with Prometheus' offset), append,
//! report `up` and the scrape series, and mark vanished series stale.

use super::*;

pub(super) async fn scrape_loop(
    t: Target,
    store: Arc<MetricStore>,
    metrics: ScrapeMetrics,
    external: Vec<(String, String)>,
    cancel: CancellationToken,
) {
    let job = JobLabel { job: t.job.clone() };
    // Spread targets over the interval, as Prometheus does, by a hash of the target.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.key().hash(&mut h);
    let offset = Duration::from_millis(h.finish() % (t.interval.as_millis().max(1) as u64));
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(offset) => {}
    }
    let mut tick = tokio::time::interval(t.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut cache = SeriesCache::default();
    let mut buffers = Buffers::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = triad_model::now_ns() / 1_000_000;
        let started = Instant::now();
        metrics.scrapes.get_or_create(&job).inc();
        let fetched = match tokio::time::timeout(t.timeout, fetch(&t, &mut buffers)).await {
            Ok(r) => r,
            Err(_) => Err(failure(
                "timeout",
                format!("scrape timed out after {:?}", t.timeout),
            )),
        };
        cache.generation += 1;
        let result = fetched
            .and_then(|(text, format)| convert(&t, text, format, now, &external, &mut cache));
        let duration = started.elapsed().as_secs_f64();
        let mut batch = AppendBatch::default();
        let (up, scraped, post, added) = match result {
            Ok(s) => {
                let post = s.samples.len();
                batch.samples = s.samples;
                batch.exemplars = s.exemplars;
                batch.metadata = s.metadata;
                (1.0, s.scraped, post, s.added)
            }
            Err(f) => {
                metrics
                    .failures
                    .get_or_create(&FailureLabels {
                        job: t.job.clone(),
                        reason: f.reason,
                    })
                    .inc();
                tracing::debug!(target_url = %t.url, job = %t.job, reason = f.reason, error = %f.message, "scrape failed");
                (0.0, 0, 0, 0)
            }
        };
        for gone in cache.finish(up == 0.0) {
            batch.samples.push((gone, now, stale_nan()));
        }
        for (name, v) in
            REPORT_SERIES
                .iter()
                .zip([up, duration, scraped as f64, post as f64, added as f64])
        {
            batch.samples.push((report_labels(&t, name), now, v));
        }
        let stored = post as u64;
        if append(&store, batch).await {
            metrics.samples.get_or_create(&job).inc_by(stored);
        } else {
            metrics
                .failures
                .get_or_create(&FailureLabels {
                    job: t.job.clone(),
                    reason: "store",
                })
                .inc();
        }
    }
    // The target went away (or Triad stops): its series end here.
    let now = triad_model::now_ns() / 1_000_000;
    let mut batch = AppendBatch::default();
    cache.generation += 1;
    for l in cache.finish(true) {
        batch.samples.push((l, now, stale_nan()));
    }
    for name in REPORT_SERIES {
        batch
            .samples
            .push((report_labels(&t, name), now, stale_nan()));
    }
    append(&store, batch).await;
}

pub(super) async fn append(store: &Arc<MetricStore>, batch: AppendBatch) -> bool {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.append(DEFAULT_TENANT, &batch, false)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storing scraped samples failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "storing scraped samples panicked");
            false
        }
    }
}
