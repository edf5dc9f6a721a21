//! Object-storage mode's sections: `storage` (where sealed splits go) and `metastore`
//! (their list).

use serde::{Deserialize, Serialize};

use super::{ConfigError, range};

/// Where sealed, immutable files — log and trace splits, metric blocks — are kept: a
/// local directory (the default: `triad up` needs nothing else) or an S3-compatible
/// bucket shared by collectors and query servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file://` keeps sealed splits where they are, in the data directory (one
    /// process). `s3://bucket/prefix` uploads them to a bucket (AWS or any S3-compatible
    /// server, see `endpoint`); `file:///path` to a directory (a shared mount, tests).
    pub url: String,
    /// S3 endpoint of a server that is not AWS, e.g. `http://seaweedfs:8333`. Empty:
    /// AWS, or `AWS_ENDPOINT` from the environment.
    pub endpoint: String,
    /// S3 region. Empty: `AWS_DEFAULT_REGION` / `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// S3 access key. Empty: `AWS_ACCESS_KEY_ID` (and the rest of the AWS credential
    /// chain: web identity, container credentials, instance metadata).
    pub access_key_id: String,
    /// S3 secret key. Empty: `AWS_SECRET_ACCESS_KEY`. Prefer the environment to the file.
    pub secret_access_key: String,
    /// Allow a plain `http://` endpoint (a test server, an in-cluster gateway).
    pub allow_http: bool,
    /// Address buckets as `bucket.endpoint` (AWS style) instead of `endpoint/bucket`
    /// (path style, which most S3-compatible servers expect).
    pub virtual_hosted_style: bool,
    /// Bytes of the local disk cache of object ranges that queries read. 0 disables it.
    pub cache_bytes: u64,
    /// Reads from object storage are cached in blocks of this many bytes.
    pub cache_block_bytes: u64,
    /// Bytes of the most recently read cache blocks also held in memory.
    pub cache_memory_bytes: u64,
    /// Objects this large or larger are uploaded in parts (multipart upload).
    pub multipart_threshold_bytes: u64,
    /// Size of one part of a multipart upload (S3 requires at least 5 MiB).
    pub part_bytes: u64,
    /// Retries of a failed request (with exponential backoff) before an operation fails.
    pub max_retries: u32,
    /// Timeout of one request, seconds.
    pub request_timeout_secs: u64,
    /// With object storage, the active split is sealed and uploaded at the latest this
    /// long after its first record (or earlier at `split_max_docs`), seconds.
    pub seal_after_secs: u64,
    /// A collector keeps a published split's local copy this long (seconds) before
    /// deleting it: longer than query servers take to see the publication plus the
    /// longest query, so no query misses the split.
    pub local_grace_secs: u64,
    /// How often query servers list published splits in the metastore, seconds.
    pub refresh_secs: u64,
    /// Most bytes of sealed splits a collector keeps waiting for object storage (while
    /// the bucket or the metastore is away); beyond it new logs and spans are refused
    /// with a retryable "too many requests" until uploads catch up, so senders buffer.
    /// 0: no bound.
    pub max_unpublished_bytes: u64,
    /// How often small published splits are merged into larger ones, seconds.
    pub merge_interval_secs: u64,
    /// How long a collector's lease in the metastore lasts, seconds; renewed every third
    /// of it. A collector that stopped renewing is no longer asked by query servers
    /// once it expires.
    pub lease_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "file://".into(),
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
            virtual_hosted_style: false,
            cache_bytes: 10 << 30,
            cache_block_bytes: 1 << 20,
            cache_memory_bytes: 256 << 20,
            multipart_threshold_bytes: 64 << 20,
            part_bytes: 16 << 20,
            max_retries: 10,
            request_timeout_secs: 30,
            seal_after_secs: 300,
            local_grace_secs: 600,
            refresh_secs: 5,
            max_unpublished_bytes: 50 << 30,
            merge_interval_secs: 60,
            lease_secs: 15,
        }
    }
}

impl StorageConfig {
    /// True when sealed splits go to object storage (any URL but the bare `file://`).
    pub fn is_remote(&self) -> bool {
        self.url != "file://"
    }

    /// Checks every value; the error names the key (under `prefix`) and the fix.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |f: &str| format!("{prefix}.{f}");
        let url = self.url.as_str();
        if !(url.starts_with("file://") || url.starts_with("s3://")) {
            return Err(ConfigError {
                key: k("url"),
                problem: format!("{url:?} is neither a file:// nor an s3:// URL"),
                fix: "use file:// (the data directory) or s3://bucket/prefix".into(),
            });
        }
        if url.starts_with("s3://")
            && url["s3://".len()..]
                .split('/')
                .next()
                .unwrap_or("")
                .is_empty()
        {
            return Err(ConfigError {
                key: k("url"),
                problem: format!("{url:?} names no bucket"),
                fix: "e.g. s3://triad/prod".into(),
            });
        }
        if !self.endpoint.is_empty() {
            let http = self.endpoint.starts_with("http://");
            if !(http || self.endpoint.starts_with("https://")) {
                return Err(ConfigError {
                    key: k("endpoint"),
                    problem: format!("{:?} is not an http:// or https:// URL", self.endpoint),
                    fix: "e.g. https://s3.example.com:8333".into(),
                });
            }
            if http && !self.allow_http {
                return Err(ConfigError {
                    key: k("endpoint"),
                    problem: format!("{:?} is plain HTTP", self.endpoint),
                    fix: format!("use https://, or set {} to true", k("allow_http")),
                });
            }
        }
        if self.access_key_id.is_empty() != self.secret_access_key.is_empty() {
            return Err(ConfigError {
                key: k("secret_access_key"),
                problem: "access_key_id and secret_access_key must be set together".into(),
                fix: "set both, or neither to take them from the environment".into(),
            });
        }
        range(
            &k("cache_block_bytes"),
            self.cache_block_bytes,
            64 << 10,
            64 << 20,
            "e.g. 1048576 (1 MiB)",
        )?;
        range(
            &k("part_bytes"),
            self.part_bytes,
            5 << 20,
            5 << 30,
            "S3 parts are 5 MiB to 5 GiB, e.g. 16777216",
        )?;
        range(
            &k("multipart_threshold_bytes"),
            self.multipart_threshold_bytes,
            self.part_bytes,
            5 << 30,
            "at least part_bytes, at most 5 GiB (the largest single PUT), e.g. 67108864",
        )?;
        range(&k("max_retries"), self.max_retries, 0, 100, "e.g. 10")?;
        range(
            &k("seal_after_secs"),
            self.seal_after_secs,
            5,
            86_400,
            "e.g. 300",
        )?;
        range(&k("refresh_secs"), self.refresh_secs, 1, 3_600, "e.g. 5")?;
        range(&k("lease_secs"), self.lease_secs, 1, 3_600, "e.g. 15")?;
        range(
            &k("merge_interval_secs"),
            self.merge_interval_secs,
            1,
            86_400,
            "e.g. 60",
        )?;
        range(
            &k("local_grace_secs"),
            self.local_grace_secs,
            1,
            7 * 86_400,
            "e.g. 600",
        )?;
        range(
            &k("request_timeout_secs"),
            self.request_timeout_secs,
            1,
            3_600,
            "e.g. 30",
        )?;
        Ok(())
    }
}

/// Where the list of sealed splits and blocks is kept: a file in the data directory
/// (the default, one collector) or PostgreSQL (collectors and query servers sharing
/// one object store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetastoreConfig {
    /// `file://` (`metastore.json` in the data directory) or a PostgreSQL URL,
    /// `postgres://user:password@host:5432/database`. Prefer `PGPASSWORD` in the
    /// environment to a password in the file.
    pub url: String,
    /// Connections to PostgreSQL held by this process.
    pub pool_size: usize,
    /// Timeout of connecting and of one statement, seconds.
    pub timeout_secs: u64,
}

impl Default for MetastoreConfig {
    fn default() -> Self {
        Self {
            url: "file://".into(),
            pool_size: 4,
            timeout_secs: 10,
        }
    }
}

impl MetastoreConfig {
    /// Checks every value; the error names the key (under `prefix`) and the fix.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |f: &str| format!("{prefix}.{f}");
        let url = self.url.as_str();
        if !(url == "file://" || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                key: k("url"),
                problem: format!("{url:?} is neither file:// nor a postgres:// URL"),
                fix: "use file:// (one collector) or postgres://user@host:5432/triad".into(),
            });
        }
        range(&k("pool_size"), self.pool_size, 1, 256, "e.g. 4")?;
        range(&k("timeout_secs"), self.timeout_secs, 1, 600, "e.g. 10")?;
        Ok(())
    }
}
