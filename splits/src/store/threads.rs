//! The store's two threads: the WAL thread (group commit, then hand-off to the indexer)
//! and the indexer thread (documents into the active split, commits, sealing and
//! rolling over to a new split).

use super::*;

pub(super) fn new_writer<S: Signal>(shared: &Shared<S>, split: &Split) -> Result<IndexWriter> {
    let cfg = &shared.cfg;
    Ok(split
        .index
        .writer_with_num_threads(cfg.indexer_threads, cfg.indexer_memory_mb << 20)?)
}

pub(super) fn wal_loop<S: Signal>(
    shared: Arc<Shared<S>>,
    mut wal: Wal,
    mut rx: mpsc::Receiver<AppendRequest<S::Record>>,
    index_tx: std_mpsc::SyncSender<IndexMsg<S::Record>>,
) {
    let label = shared.label();
    let depth = shared
        .metrics
        .index_queue_depth
        .get_or_create(&label)
        .clone();
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = first.payload.len();
        let mut group = vec![first];
        while bytes < GROUP_COMMIT_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.payload.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let written: std::io::Result<Vec<u64>> = group
            .iter()
            .map(|r| wal.append(&r.payload))
            .collect::<std::io::Result<Vec<u64>>>()
            .and_then(|lsns| {
                wal.sync(shared.checkpoint.load(Ordering::SeqCst))
                    .map(|_| lsns)
            });
        let lsns = match written {
            Ok(l) => l,
            Err(e) => {
                // The WAL's state on disk is unknown: stop taking writes rather than
                // acknowledge something that may not be there, and cut the unsynced
                // group off so that a restart does not replay a part of it. The
                // collector restarts the store once the disk takes writes again
                // ([`Store::restart`]).
                shared.error("wal");
                shared.healthy.store(false, Ordering::SeqCst);
                tracing::error!(signal = S::NAME, error = %e, "write-ahead log failed; store stops accepting writes");
                for r in group {
                    let _ = r.ack.send(Err(Error::Closed(S::NAME)));
                }
                wal.abandon();
                return;
            }
        };
        shared
            .metrics
            .wal_sync_seconds
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        shared
            .metrics
            .wal_bytes
            .get_or_create(&label)
            .inc_by(bytes as u64);
        for (r, lsn) in group.into_iter().zip(lsns) {
            shared
                .metrics
                .wal_records
                .get_or_create(&label)
                .inc_by(r.records.len() as u64);
            depth.inc();
            // Blocks while the indexer is behind: backpressure up to the receivers.
            if index_tx
                .send(IndexMsg::Batch {
                    lsn,
                    records: r.records,
                })
                .is_err()
            {
                depth.dec();
                shared.healthy.store(false, Ordering::SeqCst);
                // Durable in the WAL, so replayed at the next start; but not acknowledged.
                let _ = r.ack.send(Err(Error::Closed(S::NAME)));
                continue;
            }
            let _ = r.ack.send(Ok(()));
        }
    }
}

/// Owns the active split's writer: adds documents, commits, seals and rolls over.
pub(super) fn index_loop<S: Signal>(
    shared: Arc<Shared<S>>,
    rx: std_mpsc::Receiver<IndexMsg<S::Record>>,
    mut active: Arc<Split>,
    mut writer: IndexWriter,
    mut next_seq: u64,
) {
    let label = shared.label();
    let depth = shared
        .metrics
        .index_queue_depth
        .get_or_create(&label)
        .clone();
    let interval = Duration::from_millis(shared.cfg.commit_interval_ms);
    let max_age_ns = (shared.cfg.split_max_age_secs as i64).saturating_mul(1_000_000_000);
    let mut meta = active.meta();
    let mut pending: u64 = 0;
    let mut last_commit = Instant::now();
    loop {
        let wait = interval.saturating_sub(last_commit.elapsed());
        let mut flush_reply = None;
        let disconnected = match rx.recv_timeout(wait) {
            Ok(IndexMsg::Flush(reply)) => {
                flush_reply = Some(reply);
                false
            }
            Ok(IndexMsg::Batch { lsn, records }) => {
                depth.dec();
                if meta.first_write_ns == 0 {
                    meta.first_write_ns = triad_model::now_ns();
                }
                for rec in &records {
                    let doc = shared.signal.document(rec, next_seq);
                    meta.observe(S::timestamp_ns(rec), next_seq);
                    next_seq += 1;
                    if let Err(e) = writer.add_document(doc) {
                        shared.error("index");
                        shared.healthy.store(false, Ordering::SeqCst);
                        tracing::error!(signal = S::NAME, error = %e, "index writer failed; store stops");
                        return;
                    }
                }
                shared
                    .metrics
                    .indexed_docs
                    .get_or_create(&label)
                    .inc_by(records.len() as u64);
                pending += records.len() as u64;
                meta.lsn = lsn;
                false
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => false,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => true,
        };
        let due = last_commit.elapsed() >= interval
            || pending >= shared.cfg.commit_docs
            || disconnected
            || flush_reply.is_some();
        // An idle split is sealed once it is old enough, so retention can drop it.
        let aged = meta.docs > 0 && triad_model::now_ns() - meta.first_write_ns >= max_age_ns;
        let seal = meta.docs >= shared.cfg.split_max_docs || aged;
        if due && (pending > 0 || seal) {
            if seal {
                meta.sealed = true;
            }
            let committed = commit(&shared, &mut writer, &active, &meta);
            match committed {
                Ok(()) => pending = 0,
                Err(ref e) => {
                    // Data is in the WAL; the next interval retries the commit.
                    meta.sealed = false;
                    shared.error("commit");
                    tracing::error!(signal = S::NAME, error = %e, "index commit failed");
                }
            }
            if committed.is_ok() && seal && !disconnected {
                match roll_over(&shared, writer, &active, meta.lsn) {
                    Ok((split, w)) => {
                        active = split;
                        writer = w;
                        meta = SplitMeta {
                            lsn: meta.lsn,
                            ..SplitMeta::default()
                        };
                    }
                    Err(e) => {
                        shared.error("commit");
                        shared.healthy.store(false, Ordering::SeqCst);
                        tracing::error!(signal = S::NAME, error = %e, "could not start a new split; store stops");
                        return;
                    }
                }
            }
        }
        if due {
            last_commit = Instant::now();
        }
        if let Some(reply) = flush_reply {
            let _ = reply.send(());
        }
        if disconnected {
            if let Err(e) = writer.wait_merging_threads() {
                tracing::warn!(signal = S::NAME, error = %e, "merge did not finish at shutdown");
            }
            return;
        }
    }
}

fn commit<S: Signal>(
    shared: &Shared<S>,
    writer: &mut IndexWriter,
    split: &Split,
    meta: &SplitMeta,
) -> Result<()> {
    let started = Instant::now();
    let payload = serde_json::to_string(meta).map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    split.committed(meta.clone())?;
    shared.checkpoint.store(meta.lsn, Ordering::SeqCst);
    let label = shared.label();
    shared.metrics.commits.get_or_create(&label).inc();
    shared
        .metrics
        .commit_seconds
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// Seals the active split (its last commit already says so) and opens a new one.
fn roll_over<S: Signal>(
    shared: &Shared<S>,
    writer: IndexWriter,
    sealed: &Split,
    lsn: u64,
) -> Result<(Arc<Split>, IndexWriter)> {
    writer.wait_merging_threads()?;
    tracing::info!(signal = S::NAME, split = %sealed.id, docs = sealed.meta().docs, "sealed split");
    let split = Arc::new(Split::create(
        &shared.splits_dir(),
        shared.signal.schema(),
        shared.signal.settings(),
        &shared.configure(),
    )?);
    let mut w = new_writer(shared, &split)?;
    // An empty first commit records the WAL position, so a restart before the first
    // document does not replay what the sealed split already holds.
    let meta = SplitMeta {
        lsn,
        ..SplitMeta::default()
    };
    let mut prepared = w.prepare_commit()?;
    prepared.set_payload(&serde_json::to_string(&meta).map_err(|e| Error::Corrupt(e.to_string()))?);
    prepared.commit()?;
    split.committed(meta)?;
    let mut splits = shared.splits.write().unwrap_or_else(|e| e.into_inner());
    splits.push(split.clone());
    shared
        .metrics
        .splits
        .get_or_create(&shared.label())
        .set(splits.len() as i64);
    Ok((split, w))
}
