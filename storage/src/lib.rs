//! Storage of sealed, immutable files — log and trace splits, metric blocks — in a local
//! directory or on S3-compatible object storage, behind one small API.
//!
//! Everything written here is written once and never changed: a key names one content
//! for its whole life. That is what makes the operations simple and safe to retry:
//!
//! - [`Storage::put_new`] / [`Storage::upload_file`] create an object only if the key is
//!   free (a conditional `PUT` with `If-None-Match: *`; on a local directory, a hard
//!   link that fails if the name exists). Finding the key already taken by an object of
//!   the same size is success — a retry of an upload that succeeded — so uploads are
//!   idempotent. Files from [`StorageConfig::multipart_threshold_bytes`] on go up in
//!   parts; a multipart upload cannot be conditional on S3, so the key is checked first
//!   (keys are unique per content, so the only writer that can race is the same one).
//! - [`Storage::get_range`] reads a byte range: readers open large objects (a split
//!   bundle, see [`bundle`]) by their footer and fetch only what a query touches,
//!   through the bounded disk [`cache`].
//! - [`Storage::delete`] is idempotent too: a missing object is already deleted.
//!
//! Requests are retried with exponential backoff by the `object_store` client
//! ([`StorageConfig::max_retries`]); an error returned here is one that outlived them.
//! The S3 client signs payloads with SigV4 and sends no chunked-checksum trailers, so
//! S3-compatible servers that do not implement AWS' newest extensions work.

pub mod bundle;
pub mod cache;
mod error;
pub mod metrics;
pub mod testing;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};
use triad_model::config::StorageConfig;

pub use error::{Result, StorageError};
pub use metrics::StorageMetrics;

/// The outcome of a create-if-absent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The object was written.
    Created,
    /// An object of the same size was already there (an earlier attempt succeeded).
    Existed,
}

/// An object found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key, relative to the storage root.
    pub key: String,
    /// Its size, bytes.
    pub size: u64,
    /// When it was written, ms since the Unix epoch.
    pub modified_ms: i64,
}

/// A place for sealed files: a local directory or a bucket (and prefix).
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the store (the path of `s3://bucket/path`), no slashes around.
    root: String,
    /// Where it is, for logs (no credentials).
    location: String,
    multipart_threshold: u64,
    part_bytes: usize,
    metrics: StorageMetrics,
}

impl Storage {
    /// Opens the storage `cfg` names; `file://` alone means `<data_dir>/objects`.
    /// Connects to nothing yet: the first request does.
    pub fn open(cfg: &StorageConfig, data_dir: &Path, metrics: StorageMetrics) -> Result<Storage> {
        cfg.validate("storage")
            .map_err(|e| StorageError::Config(e.to_string()))?;
        if let Some(path) = cfg.url.strip_prefix("file://") {
            let dir = if path.is_empty() {
                data_dir.join("objects")
            } else {
                PathBuf::from(path)
            };
            return Storage::local(&dir, metrics).map(|s| s.with_multipart(cfg));
        }
        let rest = cfg.url.strip_prefix("s3://").unwrap_or_default();
        let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(cfg.allow_http)
            .with_virtual_hosted_style_request(cfg.virtual_hosted_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: cfg.max_retries as usize,
                retry_timeout: Duration::from_secs(3 * 60),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(cfg.allow_http)
                    .with_timeout(Duration::from_secs(cfg.request_timeout_secs))
                    .with_connect_timeout(Duration::from_secs(cfg.request_timeout_secs.min(10))),
            );
        if !cfg.endpoint.is_empty() {
            b = b.with_endpoint(&cfg.endpoint);
        }
        if !cfg.region.is_empty() {
            b = b.with_region(&cfg.region);
        }
        if !cfg.access_key_id.is_empty() {
            b = b
                .with_access_key_id(&cfg.access_key_id)
                .with_secret_access_key(&cfg.secret_access_key);
        }
        let store = b
            .build()
            .map_err(|e| StorageError::Config(format!("{}: {e}", cfg.url)))?;
        Ok(Storage {
            store: Arc::new(store),
            root: root.trim_matches('/').to_string(),
            location: match cfg.endpoint.as_str() {
                "" => cfg.url.clone(),
                e => format!("{} at {e}", cfg.url),
            },
            multipart_threshold: cfg.multipart_threshold_bytes,
            part_bytes: cfg.part_bytes as usize,
            metrics,
        })
    }

    /// Storage in a local directory (created if missing).
    pub fn local(dir: &Path, metrics: StorageMetrics) -> Result<Storage> {
        std::fs::create_dir_all(dir)
            .map_err(StorageError::io(format!("create {}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StorageError::Config(format!("{}: {e}", dir.display())))?;
        let defaults = StorageConfig::default();
        Ok(Storage {
            store: Arc::new(store),
            root: String::new(),
            location: format!("file://{}", dir.display()),
            multipart_threshold: defaults.multipart_threshold_bytes,
            part_bytes: defaults.part_bytes as usize,
            metrics,
        })
    }

    fn with_multipart(mut self, cfg: &StorageConfig) -> Storage {
        self.multipart_threshold = cfg.multipart_threshold_bytes;
        self.part_bytes = cfg.part_bytes as usize;
        self
    }

    /// Overrides when uploads switch to parts and the part size (tests of multipart
    /// uploads with small files).
    pub fn with_part_sizes(mut self, threshold: u64, part_bytes: usize) -> Storage {
        self.multipart_threshold = threshold;
        self.part_bytes = part_bytes;
        self
    }

    /// Where the objects are (URL and endpoint; never credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The storage's metrics.
    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key.ends_with('/')
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..");
        if bad {
            return Err(StorageError::InvalidKey(key.to_string()));
        }
        let full = if self.root.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.root)
        };
        ObjectPath::parse(full).map_err(|_| StorageError::InvalidKey(key.to_string()))
    }

    fn key_of(&self, path: &ObjectPath) -> String {
        let p = path.as_ref();
        match self.root.as_str() {
            "" => p.to_string(),
            root => p
                .strip_prefix(root)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(p)
                .to_string(),
        }
    }

    fn backend(&self, op: &'static str, key: &str, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                key: key.to_string(),
            },
            source => StorageError::Backend {
                op,
                key: key.to_string(),
                source,
            },
        }
    }

    /// Creates `key` with `data` unless it exists; see the crate docs for why an
    /// existing object of the same size counts as success.
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<Put> {
        let path = self.path(key)?;
        let len = data.len() as u64;
        let started = Instant::now();
        let result = self
            .store
            .put_opts(
                &path,
                PutPayload::from(data),
                PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                },
            )
            .await;
        self.metrics.observe("put", result.is_ok(), started);
        match result {
            Ok(_) => {
                self.metrics.uploaded_bytes.inc_by(len);
                Ok(Put::Created)
            }
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => self.existing(key, len).await,
            Err(e) => Err(self.backend("put", key, e)),
        }
    }

    /// What a create that found `key` taken means: the same size is an earlier attempt
    /// of this write; another size is a conflict.
    async fn existing(&self, key: &str, len: u64) -> Result<Put> {
        match self.size(key).await? {
            Some(existing) if existing == len => Ok(Put::Existed),
            Some(existing) => Err(StorageError::Conflict {
                key: key.to_string(),
                existing,
                new: len,
            }),
            // Deleted in between (a janitor's work): nothing to conflict with.
            None => Ok(Put::Existed),
        }
    }

    /// Uploads the local file `file` as `key` unless it exists: in one request below
    /// the multipart threshold, in parts above it.
    pub async fn upload_file(&self, key: &str, file: &Path) -> Result<Put> {
        let len = tokio::fs::metadata(file)
            .await
            .map_err(StorageError::io(format!("stat {}", file.display())))?
            .len();
        if len < self.multipart_threshold {
            let data = tokio::fs::read(file)
                .await
                .map_err(StorageError::io(format!("read {}", file.display())))?;
            return self.put_new(key, Bytes::from(data)).await;
        }
        if self.size(key).await?.is_some() {
            return self.existing(key, len).await;
        }
        let path = self.path(key)?;
        let started = Instant::now();
        let result = self.multipart(&path, file).await;
        self.metrics.observe("put", result.is_ok(), started);
        match result {
            Ok(()) => {
                self.metrics.uploaded_bytes.inc_by(len);
                Ok(Put::Created)
            }
            Err(e) => Err(e),
        }
    }

    async fn multipart(&self, path: &ObjectPath, file: &Path) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let key = self.key_of(path);
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| self.backend("put", &key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(StorageError::io(format!("open {}", file.display())))?;
        let mut buf = vec![0u8; self.part_bytes.clamp(64 << 10, 8 << 20)];
        loop {
            // At most two parts in flight: memory stays at a few parts per upload.
            if let Err(e) = writer.wait_for_capacity(2).await {
                return Err(self.backend("put", &key, e));
            }
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Io {
                        context: format!("read {}", file.display()),
                        source: e,
                    });
                }
            };
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| self.backend("put", &key, e))
    }

    /// The whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        let started = Instant::now();
        let result = match self.store.get(&path).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        self.metrics.observe("get", result.is_ok(), started);
        let bytes = result.map_err(|e| self.backend("get", key, e))?;
        self.metrics.downloaded_bytes.inc_by(bytes.len() as u64);
        Ok(bytes)
    }

    /// Streams the whole object into the file `dest` (created or truncated, synced);
    /// returns its length. For reading all of a large object once (a merge's input)
    /// without holding it in memory or passing it through the read cache.
    pub async fn download(&self, key: &str, dest: &Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let path = self.path(key)?;
        let started = Instant::now();
        let written: std::result::Result<u64, StorageError> = async {
            let got = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.backend("get", key, e))?;
            let mut stream = got.into_stream();
            let mut file = tokio::fs::File::create(dest)
                .await
                .map_err(StorageError::io(format!("create {}", dest.display())))?;
            let mut len = 0u64;
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| self.backend("get", key, e))?
            {
                file.write_all(&chunk)
                    .await
                    .map_err(StorageError::io(format!("write {}", dest.display())))?;
                len += chunk.len() as u64;
                self.metrics.downloaded_bytes.inc_by(chunk.len() as u64);
            }
            file.sync_all()
                .await
                .map_err(StorageError::io(format!("sync {}", dest.display())))?;
            Ok(len)
        }
        .await;
        self.metrics.observe("get", written.is_ok(), started);
        written
    }

    /// Bytes `range` of the object (a ranged GET).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        if range.start >= range.end {
            // Nothing to fetch (an empty file in a bundle): no request, no error.
            return Ok(Bytes::new());
        }
        let started = Instant::now();
        let result = self.store.get_range(&path, range.clone()).await;
        self.metrics.observe("get", result.is_ok(), started);
        let bytes = result.map_err(|e| self.backend("get", key, e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(StorageError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "asked for bytes {}..{}, got {}",
                    range.start,
                    range.end,
                    bytes.len()
                ),
            });
        }
        self.metrics.downloaded_bytes.inc_by(bytes.len() as u64);
        Ok(bytes)
    }

    /// The object's size, or `None` when there is no such object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        let started = Instant::now();
        let result = self.store.head(&path).await;
        let found = !matches!(result, Err(object_store::Error::NotFound { .. }));
        self.metrics
            .observe("head", result.is_ok() || !found, started);
        match result {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend("head", key, e)),
        }
    }

    /// Deletes the object; deleting a missing object succeeds.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let started = Instant::now();
        let result = match self.store.delete(&path).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        };
        self.metrics.observe("delete", result.is_ok(), started);
        result.map_err(|e| self.backend("delete", key, e))
    }

    /// Every object whose key starts with the path `prefix` (whole segments: `logs`
    /// lists `logs/…`, not `logs2/…`); an empty prefix lists everything.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let path = match (self.root.as_str(), prefix.trim_matches('/')) {
            ("", "") => None,
            (_, "") => Some(self.path_root()?),
            (_, p) => Some(self.path(p)?),
        };
        let started = Instant::now();
        let result: std::result::Result<Vec<_>, _> =
            self.store.list(path.as_ref()).try_collect().await;
        self.metrics.observe("list", result.is_ok(), started);
        let metas = result.map_err(|e| self.backend("list", prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: self.key_of(&m.location),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn path_root(&self) -> Result<ObjectPath> {
        ObjectPath::parse(&self.root).map_err(|_| StorageError::InvalidKey(self.root.clone()))
    }
}
