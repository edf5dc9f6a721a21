//! Merging sealed splits into one: fewer, larger splits make queries over object storage
//! open fewer objects. The inputs may be local or read from their bundles; the output is
//! a new local split directory whose meta covers all inputs (time range, documents, the
//! highest WAL position), ready to be bundled and published in their place.

use std::path::Path;
use std::sync::Arc;

use tantivy::Index;

use crate::error::{Error, Result};
use crate::split::{Split, SplitMeta};
use crate::store::Signal;

/// The meta of the split that merges `inputs`.
fn merged_meta(inputs: &[Arc<Split>]) -> SplitMeta {
    let mut meta = SplitMeta {
        sealed: true,
        ..SplitMeta::default()
    };
    for m in inputs.iter().map(|s| s.meta()) {
        meta.min_ts = meta.min_ts.min(m.min_ts);
        meta.max_ts = meta.max_ts.max(m.max_ts);
        meta.docs += m.docs;
        meta.max_seq = meta.max_seq.max(m.max_seq);
        meta.lsn = meta.lsn.max(m.lsn);
        meta.first_write_ns = match (meta.first_write_ns, m.first_write_ns) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
    }
    meta
}

/// Merges `inputs` (sealed splits of `signal`, at least one) into a new split created in
/// `dir` (which must not exist) with ID `id`. Reads every input in full. Blocking.
pub fn merge_splits<S: Signal>(
    signal: &S,
    inputs: &[Arc<Split>],
    dir: &Path,
    id: &str,
) -> Result<Split> {
    if inputs.is_empty() {
        return Err(Error::Corrupt("nothing to merge".into()));
    }
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let indices: Vec<Index> = inputs.iter().map(|s| s.index.clone()).collect();
    let output = tantivy::directory::MmapDirectory::open(dir)
        .map_err(|e| Error::Corrupt(format!("open {}: {e}", dir.display())))?;
    let merged = tantivy::indexer::merge_indices(&indices, output)?;
    signal.configure(&merged);
    // The merge's own commit has no payload: commit again, same segments, with the meta.
    let meta = merged_meta(inputs);
    let mut writer: tantivy::IndexWriter<tantivy::TantivyDocument> =
        merged.writer_with_num_threads(1, 15_000_000)?;
    let payload = serde_json::to_string(&meta).map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    writer.wait_merging_threads()?;
    let split = Split::open(dir, &|i| signal.configure(i))?;
    if split.meta().docs != meta.docs {
        return Err(Error::Corrupt(format!(
            "merge {id}: {} documents out of {} in",
            split.meta().docs,
            meta.docs
        )));
    }
    Ok(split)
}
