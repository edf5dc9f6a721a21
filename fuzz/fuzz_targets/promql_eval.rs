//! PromQL evaluated, not only parsed: any query text over a small real TSDB (two
//! series, a counter and a gauge, a few minutes of samples), instant and range. Nothing
//! may panic; every error is a value.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use triad_model::metric::Labels;
use triad_tsdb::AppendBatch;
use triad_tsdb::metric_store::MetricStore;

fn store() -> &'static MetricStore {
    static STORE: OnceLock<(tempfile::TempDir, MetricStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = MetricStore::open(
                dir.path(),
                Default::default(),
                &mut prometheus_client::registry::Registry::default(),
            )
            .expect("store");
            let l = |name: &str, job: &str| {
                Labels::new(vec![
                    ("__name__".into(), name.into()),
                    ("job".into(), job.into()),
                ])
            };
            let mut batch = AppendBatch::default();
            for i in 0..40i64 {
                batch.samples.push((l("http_requests_total", "api"), i * 15_000, (i * 3) as f64));
                batch.samples.push((l("queue_depth", "worker"), i * 15_000, (i % 7) as f64));
            }
            store.append("t", &batch, false).expect("append");
            (dir, store)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = triad_promql::Limits {
        max_samples: 100_000,
        timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let engine = triad_promql::Engine::new(store(), "t", limits);
    let _ = engine.instant(text, 300_000);
    let _ = engine.range(text, 0, 600_000, 30_000);
});
