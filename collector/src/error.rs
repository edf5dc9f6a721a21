//! Errors of the collector crate.

/// Errors of the collector.
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
    /// The log or trace store failed.
    #[error(transparent)]
    Splits(#[from] triad_splits::Error),
    /// The store stopped (shutdown or a fatal error); data was not accepted.
    #[error("store {0} is not accepting writes")]
    Closed(&'static str),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The metric store failed.
    #[error(transparent)]
    Tsdb(#[from] triad_tsdb::Error),
}

/// Result with the collector's [`Error`].
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
