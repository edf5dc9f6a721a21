//! Reading objects by range, through a bounded disk cache.
//!
//! [`BlockCache`] keeps what readers fetched from object storage on local disk in
//! aligned blocks ([`StorageConfig::cache_block_bytes`](triad_model::config::StorageConfig),
//! 1 MiB by default) and evicts the least recently used blocks beyond its size. A read
//! takes the blocks it covers from disk, fetches the missing ones with one ranged GET
//! per run of consecutive blocks, and stores them. Only the bytes asked for are read
//! from a cached block, so many small reads of a hot block cost a `pread` each (the
//! page cache keeps them in memory), not a copy of the block.
//!
//! The cache survives restarts: at open, the blocks on disk are adopted, oldest first.
//! A block evicted while another reader is about to use it is simply fetched again.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use crate::Storage;
use crate::error::{Result, StorageError};
use crate::metrics::{ResultLabel, StorageMetrics};

/// Longest cache file name: longer keys are read without the cache.
const MAX_NAME: usize = 240;

/// A block: its object's key as a file name (see [`escape`]) and its index. Cheap to
/// clone: a hit costs no formatting and no allocation.
type BlockId = (Arc<str>, u64);

/// Least-recently-used bookkeeping of blocks, each with a value (`()` for blocks on
/// disk, their bytes for blocks in memory) and a size.
#[derive(Debug)]
struct Lru<V> {
    /// Block → (value, bytes, tick of last use).
    entries: HashMap<BlockId, (V, u64, u64)>,
    /// Tick → block, oldest first.
    order: BTreeMap<u64, BlockId>,
    tick: u64,
    bytes: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
        }
    }
}

impl<V: Clone> Lru<V> {
    /// Marks `id` used; its value when present.
    fn touch(&mut self, id: &BlockId) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(id)?;
        if let Some(id) = self.order.remove(&e.2) {
            self.order.insert(tick, id);
        }
        e.2 = tick;
        Some(e.0.clone())
    }

    fn insert(&mut self, id: BlockId, value: V, len: u64) {
        if self.touch(&id).is_some() {
            return;
        }
        self.entries.insert(id.clone(), (value, len, self.tick));
        self.order.insert(self.tick, id);
        self.bytes += len;
    }

    fn pop_oldest(&mut self) -> Option<BlockId> {
        let (_, id) = self.order.pop_first()?;
        if let Some((_, len, _)) = self.entries.remove(&id) {
            self.bytes -= len;
        }
        Some(id)
    }
}

/// A bounded cache of object blocks on local disk, with the most recently used ones
/// also in memory, shared by every reader.
#[derive(Debug)]
pub struct BlockCache {
    dir: PathBuf,
    block: u64,
    capacity: u64,
    lru: Mutex<Lru<()>>,
    /// Hot blocks in memory: a hit is a slice of them, no system call, no copy.
    memory: Mutex<Lru<Bytes>>,
    memory_capacity: u64,
    metrics: StorageMetrics,
    /// `cache_lookups{result="hit"}` and `{result="miss"}`, looked up once.
    hits: prometheus_client::metrics::counter::Counter,
    misses: prometheus_client::metrics::counter::Counter,
}

/// `key` as a file name: bytes other than `[A-Za-z0-9._-]` as `%XX`.
pub(crate) fn escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl BlockCache {
    /// Opens the cache in `dir` (created if missing) holding at most `capacity` bytes on
    /// disk and `memory_capacity` in memory, in blocks of `block` bytes, adopting the
    /// blocks already on disk.
    pub fn open(
        dir: &Path,
        capacity: u64,
        memory_capacity: u64,
        block: u64,
        metrics: StorageMetrics,
    ) -> Result<Arc<BlockCache>> {
        let block = block.max(4096);
        std::fs::create_dir_all(dir)
            .map_err(StorageError::io(format!("create {}", dir.display())))?;
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(dir).map_err(StorageError::io(format!("list {}", dir.display())))?
        {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            // Leftovers of a write interrupted by a crash, or of another block size.
            let suffix = format!(".{block}");
            if name.contains(".tmp") || !name.ends_with(&suffix) || !meta.is_file() {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some((escaped, index)) = name
                .strip_suffix(&suffix)
                .and_then(|n| n.rsplit_once('@'))
                .and_then(|(k, i)| Some((k, i.parse::<u64>().ok()?)))
            else {
                let _ = std::fs::remove_file(entry.path());
                continue;
            };
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            found.push((modified, escaped.to_string(), index, meta.len()));
        }
        found.sort();
        let hits = metrics
            .cache_lookups
            .get_or_create(&ResultLabel { result: "hit" })
            .clone();
        let misses = metrics
            .cache_lookups
            .get_or_create(&ResultLabel { result: "miss" })
            .clone();
        let cache = BlockCache {
            dir: dir.to_path_buf(),
            block,
            capacity,
            lru: Mutex::new(Lru::default()),
            memory: Mutex::new(Lru::default()),
            memory_capacity,
            hits,
            misses,
            metrics,
        };
        {
            let mut lru = cache.lock();
            for (_, escaped, index, len) in found {
                lru.insert((escaped.into(), index), (), len);
            }
        }
        cache.evict();
        Ok(Arc::new(cache))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<()>> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, id: BlockId, block: Bytes) {
        if self.memory_capacity == 0 {
            return;
        }
        let mut mem = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let len = block.len() as u64;
        mem.insert(id, block, len);
        while mem.bytes > self.memory_capacity {
            if mem.pop_oldest().is_none() {
                break;
            }
        }
        self.metrics.cache_memory_bytes.set(mem.bytes as i64);
    }

    /// The file of block `id`.
    fn path(&self, id: &BlockId) -> PathBuf {
        // The block size is part of the name: a cache reopened with another size
        // drops the old blocks instead of misreading them.
        self.dir.join(format!("{}@{}.{}", id.0, id.1, self.block))
    }

    fn evict(&self) {
        let mut victims = Vec::new();
        {
            let mut lru = self.lock();
            while lru.bytes > self.capacity {
                match lru.pop_oldest() {
                    Some(name) => victims.push(name),
                    None => break,
                }
            }
            self.metrics.cache_bytes.set(lru.bytes as i64);
        }
        self.metrics.cache_evictions.inc_by(victims.len() as u64);
        for id in victims {
            let _ = std::fs::remove_file(self.path(&id));
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Bytes `range` of object `key` (of `object_len` bytes), from cached blocks where
    /// present and from `storage` for the rest. `escaped` is [`escape`]`(key)`, made
    /// once per object by its reader. Does small blocking file reads.
    pub(crate) async fn read(
        &self,
        storage: &Storage,
        key: &str,
        escaped: &Arc<str>,
        object_len: u64,
        range: Range<u64>,
    ) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        if range.end > object_len || escaped.len() + 32 > MAX_NAME {
            return storage.get_range(key, range).await;
        }
        let first = range.start / self.block;
        let last = (range.end - 1) / self.block;
        // Per block: the part of it the range covers, and its bytes once known.
        let mut parts: Vec<(u64, Range<u64>, Option<Bytes>)> = Vec::new();
        for index in first..=last {
            let base = index * self.block;
            let lo = range.start.max(base) - base;
            let hi = range.end.min(base + self.block) - base;
            let cached = self.read_cached(&(escaped.clone(), index), lo..hi);
            match cached {
                Some(_) => self.hits.inc(),
                None => self.misses.inc(),
            };
            parts.push((index, lo..hi, cached));
        }
        // Fetch runs of consecutive missing blocks, one request each.
        let mut stored = false;
        let mut i = 0;
        while i < parts.len() {
            if parts[i].2.is_some() {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < parts.len() && parts[j + 1].2.is_none() {
                j += 1;
            }
            let start = parts[i].0 * self.block;
            let end = ((parts[j].0 + 1) * self.block).min(object_len);
            let fetched = storage.get_range(key, start..end).await?;
            for part in &mut parts[i..=j] {
                let a = (part.0 * self.block - start) as usize;
                let b = (a + self.block as usize).min(fetched.len());
                let block = fetched.slice(a..b);
                self.store((escaped.clone(), part.0), block.clone());
                stored = true;
                part.2 = Some(block.slice(part.1.start as usize..part.1.end as usize));
            }
            i = j + 1;
        }
        if stored {
            self.evict();
        }
        if parts.len() == 1 {
            return Ok(parts.pop().and_then(|p| p.2).unwrap_or_default());
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for (_, _, bytes) in parts {
            out.extend_from_slice(&bytes.unwrap_or_default());
        }
        Ok(out.freeze())
    }

    fn read_cached(&self, id: &BlockId, range: Range<u64>) -> Option<Bytes> {
        let in_memory = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .touch(id);
        let slice = |block: &Bytes| {
            let end = (range.end as usize).min(block.len());
            block.slice((range.start as usize).min(end)..end)
        };
        if let Some(block) = in_memory {
            // A disk eviction does not reach memory: keep the disk copy's recency too.
            self.lock().touch(id);
            return Some(slice(&block));
        }
        self.lock().touch(id)?;
        // From disk, the whole block: it joins the memory tier for the next reads.
        let block = Bytes::from(std::fs::read(self.path(id)).ok()?);
        if (block.len() as u64) < range.end {
            return None;
        }
        let out = slice(&block);
        self.remember(id.clone(), block);
        Some(out)
    }

    fn store(&self, id: BlockId, block: Bytes) {
        let path = self.path(&id);
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::write(&tmp, &block).and_then(|()| std::fs::rename(&tmp, &path));
        let len = block.len() as u64;
        self.remember(id.clone(), block);
        match written {
            Ok(()) => self.lock().insert(id, (), len),
            Err(e) => {
                // A full or read-only cache disk slows reads down; it never fails them.
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache a block");
            }
        }
    }
}

/// Reads one object by range: through the [`BlockCache`] when there is one (object
/// storage), straight from the [`Storage`] otherwise (a local directory needs none).
#[derive(Debug, Clone)]
pub struct ObjectReader {
    storage: Storage,
    cache: Option<Arc<BlockCache>>,
    key: Arc<str>,
    /// The key as the cache names its blocks.
    escaped: Arc<str>,
    len: u64,
}

impl ObjectReader {
    /// A reader of `key`, whose size is known (from the metastore, say).
    pub fn new(storage: Storage, cache: Option<Arc<BlockCache>>, key: &str, len: u64) -> Self {
        ObjectReader {
            escaped: match cache {
                Some(_) => escape(key).into(),
                None => Arc::from(""),
            },
            storage,
            cache,
            key: key.into(),
            len,
        }
    }

    /// A reader of `key`, asking the storage for its size.
    pub async fn open(
        storage: Storage,
        cache: Option<Arc<BlockCache>>,
        key: &str,
    ) -> Result<ObjectReader> {
        let len = storage
            .size(key)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
            })?;
        Ok(ObjectReader::new(storage, cache, key, len))
    }

    /// The object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object's size, bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty object.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `range` of the object.
    pub async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        if range.end > self.len || range.start > range.end {
            return Err(StorageError::Corrupt {
                key: self.key.to_string(),
                reason: format!(
                    "read {}..{} of a {}-byte object",
                    range.start, range.end, self.len
                ),
            });
        }
        match &self.cache {
            Some(cache) => {
                cache
                    .read(&self.storage, &self.key, &self.escaped, self.len, range)
                    .await
            }
            None => self.storage.get_range(&self.key, range).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn setup(capacity: u64, block: u64) -> (tempfile::TempDir, Storage, Arc<BlockCache>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::local(&dir.path().join("objects"), StorageMetrics::unregistered()).unwrap();
        let cache = BlockCache::open(
            &dir.path().join("cache"),
            capacity,
            capacity / 2,
            block,
            StorageMetrics::unregistered(),
        )
        .unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        (dir, storage, cache, data)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Any sequence of reads returns the object's bytes, whatever was cached or
        /// evicted before, and the cache never holds more than its size.
        #[test]
        fn reads_through_the_cache_return_the_objects_bytes(
            reads in prop::collection::vec((0u64..100_000, 0u64..30_000), 1..40),
            capacity in 0u64..40_000,
        ) {
            let (_dir, storage, cache, data) = setup(capacity, 4096);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                storage.put_new("o", Bytes::from(data.clone())).await.unwrap();
                let reader = ObjectReader::open(storage.clone(), Some(cache.clone()), "o").await.unwrap();
                for (start, n) in reads {
                    let end = (start + n).min(data.len() as u64);
                    let got = reader.read(start..end).await.unwrap();
                    assert_eq!(&got[..], &data[start as usize..end as usize]);
                    assert!(cache.bytes() <= capacity);
                }
            });
        }
    }

    #[test]
    fn a_warm_read_fetches_nothing_and_survives_a_restart() {
        let (dir, storage, cache, data) = setup(1 << 20, 4096);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            storage
                .put_new("a/o", Bytes::from(data.clone()))
                .await
                .unwrap();
            let reader = ObjectReader::open(storage.clone(), Some(cache.clone()), "a/o")
                .await
                .unwrap();
            reader.read(1000..50_000).await.unwrap();
            let fetched = storage.metrics().downloaded_bytes.get();
            assert_eq!(fetched, 13 * 4096, "whole blocks 0..=12 in one request");
            assert_eq!(
                &reader.read(5000..9000).await.unwrap()[..],
                &data[5000..9000]
            );
            assert_eq!(storage.metrics().downloaded_bytes.get(), fetched);

            let reopened = BlockCache::open(
                &dir.path().join("cache"),
                1 << 20,
                0,
                4096,
                StorageMetrics::unregistered(),
            )
            .unwrap();
            assert_eq!(reopened.bytes(), cache.bytes());
            let reader = ObjectReader::open(storage.clone(), Some(reopened), "a/o")
                .await
                .unwrap();
            assert_eq!(
                &reader.read(2000..40_000).await.unwrap()[..],
                &data[2000..40_000]
            );
            assert_eq!(storage.metrics().downloaded_bytes.get(), fetched);
            assert!(reader.read(0..200_000).await.is_err());
        });
    }
}
