//! Errors of the storage of sealed files.

/// What went wrong storing or reading a sealed file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The `storage` configuration cannot be used; the message names the key.
    #[error("storage: {0}")]
    Config(String),
    /// No object under this key.
    #[error("object {key} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// A conditional create found another object of a different size under the key:
    /// two writers produced different files under one name, which must never happen.
    #[error("object {key} already exists with {existing} bytes, not the {new} being written")]
    Conflict {
        /// The key written.
        key: String,
        /// Size of the object found.
        existing: u64,
        /// Size of the object being written.
        new: u64,
    },
    /// The object store failed (after its own retries).
    #[error("{op} {key}: {source}")]
    Backend {
        /// `put`, `get`, `head`, `delete`, `list`.
        op: &'static str,
        /// The key (or prefix) of the request.
        key: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    /// A local file (cache, file to upload) could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An object is not a valid bundle (truncated, wrong magic, bad footer).
    #[error("bundle {key}: {reason}")]
    Corrupt {
        /// The object's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that cannot name an object (empty, `..`, empty segments).
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
}

/// Result with [`StorageError`].
pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
        let context = context.into();
        move |source| StorageError::Io { context, source }
    }

    /// True for a missing object.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}

impl From<StorageError> for std::io::Error {
    fn from(e: StorageError) -> Self {
        let kind = match &e {
            StorageError::NotFound { .. } => std::io::ErrorKind::NotFound,
            StorageError::Corrupt { .. } => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
