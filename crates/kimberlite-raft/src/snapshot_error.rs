//! [`SnapshotError`]: why a snapshot could not be built, sent or installed
//! (docs/REPLICATION.md, section "Snapshots").

/// Why a snapshot could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The store failed.
    #[error("snapshot: {0}")]
    Store(#[from] kimberlite::Error),
    /// The file system failed.
    #[error("snapshot: {0}")]
    Io(#[from] std::io::Error),
    /// The installed applied state file failed.
    #[error("snapshot: {0}")]
    Applied(#[from] crate::journal_file::LogFileError),
    /// A stream damaged on disk cannot be put in a snapshot.
    #[error("snapshot: stream {name:?} is damaged")]
    Damaged {
        /// The stream.
        name: String,
    },
    /// A file the snapshot carries is not one a snapshot may carry, or is not whole: nothing
    /// installed.
    #[error("snapshot: file {path:?}: {reason}")]
    Forged {
        /// The file's path as the snapshot gives it.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The received files do not hold what the manifest says: nothing installed.
    #[error("snapshot: stream {name:?}: {what} is {got}, the snapshot says {expected}")]
    Mismatch {
        /// The stream.
        name: String,
        /// Which value differs.
        what: &'static str,
        /// The value the snapshot carries.
        expected: String,
        /// The value found in its files.
        got: String,
    },
}
