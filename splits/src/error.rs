//! Errors of the log and trace stores.

/// Errors of the split stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File system failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// tantivy failure.
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The store stopped (shutdown or a fatal error); data was not accepted.
    #[error("store {0} is not accepting writes")]
    Closed(&'static str),
    /// Object storage failed, or a bundle is not valid.
    #[error("storage: {0}")]
    Storage(#[from] triad_storage::StorageError),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Result with the split stores' [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl From<Error> for triad_model::store::StoreError {
    fn from(e: Error) -> Self {
        triad_model::store::StoreError::Internal(e.to_string())
    }
}
