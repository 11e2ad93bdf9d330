//! [`OpenError`]: why a node's state machine did not open.

use std::path::PathBuf;

use crate::journal_file::LogFileError;

/// Errors opening a state machine.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed to open.
    #[error("store: {0}")]
    Store(#[from] kimberlite::Error),
    /// The applied state file failed to open (damaged, or the file system failed).
    #[error(transparent)]
    Applied(#[from] LogFileError),
    /// A file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A saved file does not parse.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}
