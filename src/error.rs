//! One error type for the library: every message names the problem and, where
//! there is one, the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is well-formed but not acceptable (shapes, values, options).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content does not parse as expected.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// The problem would not fit in memory.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A tensor computation failed (candle): reported as what it is.
    #[cfg(feature = "nn")]
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for `Err(Error::Invalid(..))`.
pub fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}
