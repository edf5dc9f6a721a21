use super::*;
use triad_model::metric::MatchOp;

fn labels(name: &str, job: &str) -> Labels {
    Labels::new(vec![
        ("__name__".into(), name.into()),
        ("job".into(), job.into()),
    ])
}

fn batch(samples: &[(&Labels, i64, f64)]) -> AppendBatch {
    AppendBatch {
        samples: samples
            .iter()
            .map(|(l, t, v)| ((*l).clone(), *t, *v))
            .collect(),
        ..Default::default()
    }
}

fn opts(range_ms: i64) -> TsdbOptions {
    TsdbOptions {
        block_range_ms: range_ms,
        retention_ms: 0,
        retention_bytes: 0,
        compact: true,
    }
}

fn all_up(db: &Tsdb) -> Vec<SeriesSamples> {
    db.select(&[Matcher::equal("__name__", "up")], i64::MIN, i64::MAX)
        .unwrap()
}

#[test]
fn append_select_and_order_policy() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts(3_600_000), TsdbMetrics::unregistered()).unwrap();
    let a = labels("up", "a");
    let b = labels("up", "b");
    let out = db
        .append(
            &batch(&[(&a, 1000, 1.0), (&b, 1000, 0.0), (&a, 2000, 1.0)]),
            true,
        )
        .unwrap();
    assert_eq!(out.accepted, 3);
    let out = db
        .append(
            &batch(&[
                (&a, 1500, 5.0),
                (&a, 2000, 7.0),
                (&a, 2000, 1.0),
                (&a, 3000, 2.0),
            ]),
            true,
        )
        .unwrap();
    assert_eq!(
        out,
        AppendOutcome {
            accepted: 1,
            out_of_order: 1,
            duplicate_timestamp: 1,
            series_limited: 0,
        }
    );
    let got = all_up(&db);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels, a);
    assert_eq!(got[0].samples, vec![(1000, 1.0), (2000, 1.0), (3000, 2.0)]);
    let got = db
        .select(
            &[Matcher::new(MatchOp::NotEqual, "job", "a").unwrap()],
            0,
            1500,
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, b);
    assert!(
        db.select(&[Matcher::equal("job", "a")], 3001, 9999)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn wal_replay_restores_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let a = labels("up", "a");
    {
        let db = Tsdb::open(dir.path(), opts(3_600_000), TsdbMetrics::unregistered()).unwrap();
        for i in 0..500 {
            db.append(&batch(&[(&a, i * 15_000, i as f64)]), true)
                .unwrap();
        }
        db.append(
            &AppendBatch {
                metadata: vec![(
                    "up".into(),
                    MetricMetadata {
                        metric_type: "gauge".into(),
                        help: "Up.".into(),
                        unit: String::new(),
                    },
                )],
                exemplars: vec![(
                    a.clone(),
                    Exemplar {
                        labels: Labels::new(vec![("trace_id".into(), "abc".into())]),
                        value: 1.0,
                        timestamp_ms: 7,
                    },
                )],
                ..Default::default()
            },
            true,
        )
        .unwrap();
        // Dropped without flush: as after kill -9.
    }
    let db = Tsdb::open(dir.path(), opts(3_600_000), TsdbMetrics::unregistered()).unwrap();
    let got = all_up(&db);
    assert_eq!(got[0].samples.len(), 500);
    assert_eq!(got[0].samples[499], (499 * 15_000, 499.0));
    assert_eq!(db.metadata().unwrap()[0].1.metric_type, "gauge");
    let ex = db
        .exemplars(&[vec![Matcher::equal("job", "a")]], 0, 10)
        .unwrap();
    assert_eq!(ex[0].exemplars.len(), 1);
    // The newest timestamp survives too: an old sample is still out of order.
    let out = db.append(&batch(&[(&a, 0, 1.0)]), true).unwrap();
    assert_eq!(out.out_of_order, 1);
}

#[test]
fn cut_blocks_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = labels("up", "a");
    let gone = labels("up", "gone");
    let range = 60_000;
    {
        let db = Tsdb::open(dir.path(), opts(range), TsdbMetrics::unregistered()).unwrap();
        db.append(&batch(&[(&gone, 0, 1.0)]), true).unwrap();
        for i in 0..=400 {
            db.append(&batch(&[(&a, i * 1_000, i as f64)]), true)
                .unwrap();
            db.maintain(i * 1_000).unwrap();
        }
        let metas = db.block_metas();
        assert!(!metas.is_empty());
        assert!(metas.iter().any(|m| m.level > 0), "{metas:?}");
        let got = all_up(&db);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].samples.len(), 401);
        assert!(got[0].samples.windows(2).all(|w| w[0].0 < w[1].0));
    }
    let db = Tsdb::open(dir.path(), opts(range), TsdbMetrics::unregistered()).unwrap();
    let got = all_up(&db);
    assert_eq!(
        got[0].samples.len(),
        401,
        "blocks + replayed head after restart"
    );
    assert_eq!(got[1].labels, gone);
    assert_eq!(got[1].samples, vec![(0, 1.0)]);
    // The silent series left the head at the first cut; a block still has it.
    assert!(db.head_stats().1 <= 1);
    db.flush().unwrap();
    let got = all_up(&db);
    assert_eq!(got[0].samples.len(), 401);
    let series = db.series(&[], 0, 1).unwrap();
    assert_eq!(series.len(), 2);
}

#[test]
fn retention_drops_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let a = labels("up", "a");
    let mut o = opts(10_000);
    o.retention_ms = 30_000;
    let db = Tsdb::open(dir.path(), o, TsdbMetrics::unregistered()).unwrap();
    for i in 0..100 {
        db.append(&batch(&[(&a, i * 1_000, 1.0)]), true).unwrap();
        if i % 11 == 10 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    let removed = db.apply_retention(100_000).unwrap();
    assert!(removed > 0);
    let got = all_up(&db);
    assert!(got[0].samples[0].0 >= 60_000, "{:?}", got[0].samples[0]);
    assert_eq!(got[0].samples.last().unwrap().0, 99_000);
}

#[test]
fn series_limit_refuses_new_series_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts(3_600_000), TsdbMetrics::unregistered()).unwrap();
    let (a, b, c) = (labels("up", "a"), labels("up", "b"), labels("up", "c"));
    let out = db
        .append_limited(
            &batch(&[(&a, 1, 1.0), (&b, 1, 1.0), (&c, 1, 1.0)]),
            false,
            2,
        )
        .unwrap();
    assert_eq!(
        (out.accepted, out.series_limited, out.rejected()),
        (2, 1, 1)
    );
    // Series the head has still take samples; a new one still does not.
    let out = db
        .append_limited(&batch(&[(&a, 2, 2.0), (&c, 2, 2.0)]), false, 2)
        .unwrap();
    assert_eq!((out.accepted, out.series_limited), (1, 1));
    // No limit: it is created.
    assert_eq!(
        db.append(&batch(&[(&c, 3, 3.0)]), false).unwrap().accepted,
        1
    );
}

#[test]
fn each_tenant_keeps_its_own_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(10_000);
    o.retention_ms = 30_000;
    // Blocks as cut, not merged: each goes at its own age.
    o.compact = false;
    let mut registry = prometheus_client::registry::Registry::default();
    let store = crate::metric_store::MetricStore::open(dir.path(), o, &mut registry).unwrap();
    store.set_retention([("short".to_string(), 15), ("ever".to_string(), 0)].into());
    let a = labels("up", "a");
    for tenant in ["short", "ever", "other"] {
        let db = store.tenant(tenant).unwrap();
        for i in 0..100 {
            db.append(&batch(&[(&a, i * 1_000, 1.0)]), true).unwrap();
            if i % 11 == 10 {
                db.flush().unwrap();
            }
        }
        db.flush().unwrap();
    }
    store.maintain(100_000).unwrap();
    let first = |t: &str| all_up(&store.get(t).unwrap())[0].samples[0].0;
    // Blocks of 11 samples (0-10 s, 11-21 s, …): a block goes once its newest sample is
    // past the horizon (85 s for 15 s of retention, 70 s for the default 30 s).
    assert_eq!(first("short"), 77_000);
    assert_eq!(first("other"), 66_000);
    assert_eq!(first("ever"), 0);
}
