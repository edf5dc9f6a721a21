//! Errors of the agent crate: what can stop the agent from starting.

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A glob pattern in `include` or `exclude` does not parse.
    #[error("{key} pattern {pattern:?}: {reason}")]
    Pattern {
        /// `include` or `exclude`.
        key: &'static str,
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The collector endpoint is not a usable URL.
    #[error("collector endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory of the agent's own state could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The on-disk buffer failed.
    #[error("agent buffer: {0}")]
    Buffer(#[from] crate::buffer::BufferError),
}

/// Result with the agent's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
