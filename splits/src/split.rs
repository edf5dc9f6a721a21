//! A split: one tantivy index holding the records of a bounded span of arrival time.
//!
//! Records go to the single active split of a store. It is sealed when it reaches
//! `split_max_docs` or `split_max_age_secs`; a sealed split never changes again, so
//! retention deletes whole directories and, later, sealed splits can move to object
//! storage. Each commit carries a [`SplitMeta`] as its payload: the time range for
//! skipping splits at query time, and the WAL position the commit covers.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};

use crate::error::{Error, Result};

/// What a split's last commit recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMeta {
    /// Smallest record timestamp, ns (`i64::MAX` when empty).
    pub min_ts: i64,
    /// Largest record timestamp, ns (`i64::MIN` when empty).
    pub max_ts: i64,
    /// Committed documents.
    pub docs: u64,
    /// Largest arrival sequence number in the split.
    pub max_seq: u64,
    /// Highest WAL LSN whose records this commit includes.
    pub lsn: u64,
    /// True once the split is closed for writes.
    pub sealed: bool,
    /// Wall time of the first document, ns (0 when empty); the split's age counts from it.
    pub first_write_ns: i64,
}

impl Default for SplitMeta {
    fn default() -> Self {
        Self {
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            docs: 0,
            max_seq: 0,
            lsn: 0,
            sealed: false,
            first_write_ns: 0,
        }
    }
}

impl SplitMeta {
    /// Widens the time range to include `ts`.
    pub fn observe(&mut self, ts: i64, seq: u64) {
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.max_seq = self.max_seq.max(seq);
        self.docs += 1;
    }
}

/// Where a split's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A tantivy index directory on local disk (the active split, sealed splits of the
    /// embedded mode).
    Dir(PathBuf),
    /// A bundle in object storage, read through the cache (sealed splits only).
    Object {
        /// The bundle's key.
        key: String,
        /// Its size, bytes.
        bytes: u64,
    },
}

/// What a split's bundle footer carries besides its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleMeta {
    /// The split's last commit.
    pub split: SplitMeta,
    /// The trace IDs in the split (spans, and log records with trace context).
    #[serde(default)]
    pub trace_filter: Option<crate::trace_filter::TraceFilter>,
}

/// An open split.
pub struct Split {
    /// Split ID, sortable by creation time (the directory name of a local split).
    pub id: String,
    /// Where its files are.
    pub location: Location,
    /// The tantivy index.
    pub index: Index,
    reader: IndexReader,
    meta: RwLock<SplitMeta>,
    /// Trace IDs it may hold (splits opened from a bundle); `None`: ask its index.
    trace_filter: Option<crate::trace_filter::TraceFilter>,
}

impl Split {
    /// Creates an empty split in `parent` with the given schema.
    pub fn create(
        parent: &Path,
        schema: tantivy::schema::Schema,
        settings: tantivy::IndexSettings,
        configure: &dyn Fn(&Index),
    ) -> Result<Split> {
        let mut ns = triad_model::now_ns();
        let (id, dir) = loop {
            let id = format!("{ns:020}");
            let dir = parent.join(&id);
            if !dir.exists() {
                break (id, dir);
            }
            ns += 1;
        };
        std::fs::create_dir_all(&dir)
            .map_err(Error::io(format!("create split {}", dir.display())))?;
        let index = Index::builder()
            .schema(schema)
            .settings(settings)
            .create_in_dir(&dir)?;
        configure(&index);
        Self::with_index(id, Location::Dir(dir), index, SplitMeta::default())
    }

    /// Opens an existing split directory, reading its meta from the last commit.
    pub fn open(dir: &Path, configure: &dyn Fn(&Index)) -> Result<Split> {
        let index = Index::open_in_dir(dir)?;
        configure(&index);
        let metas = index.load_metas()?;
        let mut meta = match metas.payload.as_deref() {
            Some(p) => serde_json::from_str(p)
                .map_err(|e| Error::Corrupt(format!("split {} meta: {e}", dir.display())))?,
            None => SplitMeta::default(),
        };
        meta.docs = metas.segments.iter().map(|s| u64::from(s.num_docs())).sum();
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        Self::with_index(id, Location::Dir(dir.to_path_buf()), index, meta)
    }

    /// Opens a sealed split from its bundle (read-only); its meta is the one the bundle
    /// footer carries.
    pub fn open_bundle(
        id: &str,
        dir: crate::bundle_dir::BundleDirectory,
        configure: &dyn Fn(&Index),
    ) -> Result<Split> {
        let key = dir.bundle().reader().key().to_string();
        let bytes = dir.bundle().reader().len();
        let meta: BundleMeta = serde_json::from_value(dir.bundle().meta().clone())
            .map_err(|e| Error::Corrupt(format!("split bundle {key} meta: {e}")))?;
        let index = Index::open(dir)?;
        configure(&index);
        let mut split = Self::with_index(
            id.to_string(),
            Location::Object { key, bytes },
            index,
            meta.split,
        )?;
        split.trace_filter = meta.trace_filter;
        Ok(split)
    }

    fn with_index(id: String, location: Location, index: Index, meta: SplitMeta) -> Result<Split> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Split {
            id,
            location,
            index,
            reader,
            meta: RwLock::new(meta),
            trace_filter: None,
        })
    }

    /// The meta of the last commit.
    pub fn meta(&self) -> SplitMeta {
        self.meta.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a new commit: reloads the reader and replaces the meta.
    pub fn committed(&self, meta: SplitMeta) -> Result<()> {
        self.reader.reload()?;
        *self.meta.write().unwrap_or_else(|e| e.into_inner()) = meta;
        Ok(())
    }

    /// Re-reads the meta and reloads the reader (read-only mode, another process writes).
    pub fn refresh(&self) -> Result<()> {
        let metas = self.index.load_metas()?;
        if let Some(p) = metas.payload.as_deref()
            && let Ok(mut meta) = serde_json::from_str::<SplitMeta>(p)
        {
            meta.docs = metas.segments.iter().map(|s| u64::from(s.num_docs())).sum();
            *self.meta.write().unwrap_or_else(|e| e.into_inner()) = meta;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// True when the split holds records with timestamps in `[start_ns, end_ns)`.
    pub fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        let m = self.meta();
        m.docs > 0 && m.min_ts < end_ns && m.max_ts >= start_ns
    }

    /// A searcher over the split's committed documents.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The tenants with records in the split: the terms of its `tenant` field.
    pub fn tenants(&self) -> Result<Vec<String>> {
        let Ok(field) = self.index.schema().get_field("tenant") else {
            return Ok(Vec::new());
        };
        let mut out = std::collections::BTreeSet::new();
        for seg in self.searcher().segment_readers() {
            let inv = seg.inverted_index(field)?;
            let mut stream = inv
                .terms()
                .stream()
                .map_err(Error::io(format!("read tenants of split {}", self.id)))?;
            while stream.advance() {
                if let Ok(t) = std::str::from_utf8(stream.key()) {
                    out.insert(t.to_string());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// False when the split certainly holds nothing of trace `id` (by its bundle's
    /// trace filter); true when it may, or when it has no filter.
    pub fn may_contain_trace(&self, id: &triad_model::TraceId) -> bool {
        self.trace_filter.as_ref().is_none_or(|f| f.may_contain(id))
    }

    /// A filter of the trace IDs in the split (its `trace_id` terms); `None` for a
    /// schema without them.
    pub fn build_trace_filter(&self) -> Result<Option<crate::trace_filter::TraceFilter>> {
        let Ok(field) = self.index.schema().get_field("trace_id") else {
            return Ok(None);
        };
        let mut ids = Vec::new();
        for seg in self.searcher().segment_readers() {
            let inv = seg.inverted_index(field)?;
            let mut stream = inv
                .terms()
                .stream()
                .map_err(Error::io(format!("read trace IDs of split {}", self.id)))?;
            while stream.advance() {
                if let Ok(b) = <[u8; 16]>::try_from(stream.key()) {
                    ids.push(triad_model::TraceId(b));
                }
            }
        }
        ids.sort_unstable_by_key(|t| t.0);
        ids.dedup();
        Ok(Some(crate::trace_filter::TraceFilter::new(ids.iter())))
    }

    /// The index directory of a local split.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.location {
            Location::Dir(d) => Some(d),
            Location::Object { .. } => None,
        }
    }

    /// Bytes stored: on disk for a local split, of the bundle for one in object storage.
    pub fn disk_bytes(&self) -> u64 {
        match &self.location {
            Location::Dir(dir) => std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0),
            Location::Object { bytes, .. } => *bytes,
        }
    }

    /// Writes this sealed split as a bundle at `out` (see `triad_storage::bundle`), its
    /// meta in the footer; returns the bundle's length. Blocking.
    pub fn write_bundle(&self, out: &Path) -> Result<u64> {
        let Some(dir) = self.local_dir() else {
            return Err(Error::Corrupt(format!(
                "split {} has no local files",
                self.id
            )));
        };
        let meta = serde_json::to_value(BundleMeta {
            split: self.meta(),
            trace_filter: self.build_trace_filter()?,
        })
        .map_err(|e| Error::Corrupt(format!("split {} meta: {e}", self.id)))?;
        // Lock files belong to a writer; a sealed split has none and needs none.
        Ok(triad_storage::bundle::write_dir(dir, out, meta, |name| {
            name.ends_with(".lock")
        })?)
    }
}
