//! [`SealError`]: what can go wrong with sealed events, their keys and their erasure.

use std::path::PathBuf;

use kimberlite_types::Offset;

/// Errors of sealed events (`Error::Sealed`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The master key given is not the one the key store was made with (or a key file was
    /// changed). Nothing was read or written.
    #[error("wrong master key for the key store at {}: {reason}; nothing was read", path.display())]
    WrongMasterKey {
        /// The key store's directory.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// The master key could not be used (unreadable file, bad text).
    #[error("master key: {0}")]
    MasterKey(String),
    /// No data key is kept for this subject: no event was ever appended for it under this
    /// master key. Nothing was erased.
    #[error("no data subject {subject:?} in the key store: nothing was appended for it under this master key; nothing was erased")]
    UnknownSubject {
        /// The subject asked for.
        subject: String,
    },
    /// The subject was erased already; the erasure event is at `offset` of `_erasure`.
    #[error("data subject {subject:?} was erased already (erasure event at offset {offset} of _erasure, unix time {erased_at_unix_s}); nothing was appended or erased")]
    AlreadyErased {
        /// The subject asked for.
        subject: String,
        /// The erasure event's offset.
        offset: Offset,
        /// When it was erased, in seconds since the Unix epoch.
        erased_at_unix_s: u64,
    },
    /// A plain event starts with the bytes that mark a sealed one; it was refused so that no
    /// plain event is ever taken for a sealed one. Nothing was written.
    #[error("stream {name:?}: event {index} of the batch starts with the sealed-event marker (\\0KBSEAL), which plain events may not; nothing was written")]
    LooksSealed {
        /// The stream's name.
        name: String,
        /// The event's index in the batch.
        index: usize,
    },
    /// An event too large for the cipher to seal (past AES-GCM's message limit). Nothing was
    /// written.
    #[error("event {index} of the batch ({len} bytes) is too large to seal; nothing was written")]
    EventTooLarge {
        /// The event's index in the batch.
        index: usize,
        /// Its size in bytes.
        len: usize,
    },
    /// An empty subject name.
    #[error("a data subject must not be empty")]
    EmptySubject,
    /// A key store file is damaged or cannot be read or written.
    #[error("key store file {}: {reason}", path.display())]
    KeyStore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
