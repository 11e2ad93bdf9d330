//! Typed errors of the `kimberlite` store.
//!
//! Every variant about a stream carries the stream's *name* (what the application chose), not
//! only its number, so a message can be acted on without a lookup. Storage errors are kept whole
//! as the `source`, so nothing the storage layer knew (offset, segment, file, byte) is lost.

use std::path::PathBuf;

use kimberlite_storage::StorageError;
use kimberlite_types::{Offset, StreamId};

use crate::head::ExpectedOffset;

/// Errors returned by [`crate::Kimberlite`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store directory does not exist (and the configuration forbids creating it).
    #[error("no Kimberlite store at {}: the directory does not exist", path.display())]
    StoreNotFound {
        /// The directory asked for.
        path: PathBuf,
    },
    /// The directory exists but holds no Kimberlite store (its marker file is missing).
    #[error(
        "{} is not a Kimberlite store (it holds no valid kimberlite.json file)",
        path.display()
    )]
    NotAStore {
        /// The directory asked for.
        path: PathBuf,
    },
    /// The directory holds a store, but its marker file is damaged or missing (flipped bits,
    /// a rewrite, a deletion): unlike [`Error::NotAStore`], the store's files are there.
    #[error("the store marker {} is damaged: {reason}", path.display())]
    MarkerDamaged {
        /// The marker file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The store was written by a version of Kimberlite whose format this one does not read.
    #[error("the store at {} has format version {version}; this program reads version 1",
        path.display())]
    UnsupportedStore {
        /// The store directory.
        path: PathBuf,
        /// The format version in its marker file.
        version: u64,
    },
    /// Another process has the store open.
    #[error("the store at {} is in use by another process", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// A stream name is empty, too long or holds control characters.
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamName {
        /// The name refused.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `create_stream` was called for a name that already exists.
    #[error("stream {name:?} already exists")]
    StreamExists {
        /// The name.
        name: String,
    },
    /// `create_stream` would have given `name` the next stream id, but a stream the catalogue
    /// does not name already holds records (or damage) under that id on disk: the catalogue
    /// lost entries (`verify` reports the unnamed stream). Naming it would adopt its records
    /// and hide the loss, so nothing is written.
    #[error(
        "cannot create stream {name:?}: stream id {stream} already holds records on disk that \
         the catalogue does not name (catalogue entries were lost; run verify); nothing was \
         written"
    )]
    UnnamedStreamInTheWay {
        /// The name asked for.
        name: String,
        /// The id it would have taken.
        stream: StreamId,
    },
    /// No stream has this name.
    #[error("no stream named {name:?}")]
    StreamNotFound {
        /// The name asked for.
        name: String,
    },
    /// No named stream has this id (ids come from `create_stream` or `stream`).
    #[error("no stream with id {stream}")]
    UnknownStream {
        /// The id given.
        stream: StreamId,
    },
    /// `append` was called with no events.
    #[error("stream {name:?}: cannot append an empty batch")]
    EmptyBatch {
        /// The stream's name.
        name: String,
    },
    /// The stream's next offset is not the one the caller expected. Nothing was written.
    #[error(
        "stream {name:?}: expected {expected}, but the stream's next offset is {actual}; \
         nothing was written"
    )]
    OffsetConflict {
        /// The stream's name.
        name: String,
        /// What the caller expected.
        expected: ExpectedOffset,
        /// The stream's real next offset.
        actual: Offset,
    },
    /// The stream's stored records are damaged (found when the store was opened), so its head
    /// is unknown and appends are refused. `verify` says where the damage is.
    #[error(
        "stream {name:?} is damaged on disk: its head is unknown and appends are refused (run \
         verify for details)"
    )]
    StreamDamaged {
        /// The stream's name.
        name: String,
    },
    /// The stream's log holds fewer events than the store's own files say it held (a Merkle
    /// leaves file, a kept checkpoint): appends are refused, so that nothing fills the gap or
    /// erases the evidence.
    #[error(
        "stream {name:?} lost events {held}..{claimed} ({evidence} says it held {claimed});          appends are refused (run verify for details)"
    )]
    StreamLost {
        /// The stream's name.
        name: String,
        /// Events its log holds.
        held: u64,
        /// Events the evidence says it held.
        claimed: u64,
        /// The file that says so.
        evidence: PathBuf,
    },
    /// The stream catalogue (the system stream holding stream names) holds an entry this
    /// version cannot accept.
    #[error("stream catalogue entry at offset {offset} is invalid: {reason}")]
    CatalogCorrupt {
        /// Offset of the entry in the system stream.
        offset: Offset,
        /// What is wrong with it.
        reason: String,
    },
    /// A storage call failed. `name` is the stream concerned, when one is.
    #[error("{}{source}", name.as_ref().map(|n| format!("stream {n:?}: ")).unwrap_or_default())]
    Storage {
        /// The stream's name, when the error concerns one named stream.
        name: Option<String>,
        /// The storage error, with offset and location for corruption (boxed: it is large, and
        /// every `Result` of this crate would pay for its size).
        source: Box<StorageError>,
    },
    /// An earlier write or sync failed, so the store refuses further appends until it is
    /// reopened (fail-stop: the state on disk is unknown until recovery runs).
    #[error("the store refuses writes after an earlier write or sync failure; reopen it")]
    Poisoned,
    /// A Merkle proof was asked for outside the stream's tree (an offset or size past its
    /// durable end, an old size above the new one).
    #[error("stream {name:?}: {source}")]
    TreeRange {
        /// The stream's name.
        name: String,
        /// What was out of range.
        source: kimberlite_proof::RangeError,
    },
    /// A tile or entry bundle of the stream's tlog-tiles view cannot be given: a tile not in
    /// the tree of that size, or an entry too large for a bundle (its offset and size).
    #[error("stream {name:?}: {source}")]
    Tile {
        /// The stream's name.
        name: String,
        /// Why.
        source: kimberlite_proof::TileError,
    },
    /// The stream's Merkle tree side files cannot be read or written; reopening the store
    /// rebuilds them from the log.
    #[error("stream {name:?}: Merkle tree unavailable: {reason}")]
    TreeUnavailable {
        /// The stream's name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The stream's stored Merkle tree is damaged: what was asked for, read from its side
    /// files, does not lead to the root the log gave the tree, so it was not handed out (a
    /// proof from it would fail against a valid signed checkpoint). `verify` names the damaged
    /// node; removing the stream's directory under `merkle/` makes the next open rebuild the
    /// tree from the log.
    #[error(
        "the stored Merkle tree of stream {name:?} (id {stream}) is damaged at {evidence}: \
         {reason}; run verify to find the damaged node"
    )]
    TreeDamaged {
        /// The stream's name.
        name: String,
        /// The stream.
        stream: StreamId,
        /// What was refused.
        evidence: TreeEvidence,
        /// What did not agree.
        reason: String,
    },
    /// A read of events that retention dropped ([`crate::Kimberlite::retain`]): the stream
    /// now holds events from `first_offset` on. Not damage; nothing was read.
    #[error(
        "stream {name:?}: offset {offset} was pruned by retention (pruned before offset \
         {first_offset}: the stream holds events from offset {first_offset} on)"
    )]
    Pruned {
        /// The stream.
        name: String,
        /// The offset asked for.
        offset: Offset,
        /// The first offset the stream still holds.
        first_offset: Offset,
    },
    /// A retention cut was refused ([`crate::Kimberlite::retain`]); nothing was written.
    #[error("stream {name:?}: retention refused: {reason} (nothing was written)")]
    RetainRefused {
        /// The stream.
        name: String,
        /// Why, in words.
        reason: String,
    },
    /// The store was opened with [`crate::Kimberlite::open_read_only`]: nothing is written.
    #[error("the store is open read-only: nothing was written")]
    ReadOnly,
    /// A checkpoint could not be signed (its text is not a valid note text).
    #[error("stream {name:?}: the checkpoint cannot be signed: {source}")]
    Signing {
        /// The stream.
        name: String,
        /// Why.
        source: kimberlite_proof::NoteError,
    },
    /// A checkpoint of `size` events was not signed: the stream does not extend the
    /// checkpoint of `signed_size` events signed before and kept at `path` (the store was
    /// rolled back or rewritten since, or that file is damaged). The log never signs two
    /// histories.
    #[error(
        "stream {name:?}: refusing to sign a checkpoint of size {size}: it does not extend the \
         checkpoint of size {signed_size} signed before ({}): {reason}",
        path.display()
    )]
    CheckpointConflict {
        /// The stream's name.
        name: String,
        /// The size that would have been signed.
        size: u64,
        /// The size of the checkpoint kept.
        signed_size: u64,
        /// The kept checkpoint's file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A note offered as a cosigned checkpoint is not a checkpoint this store signed.
    #[error("stream {name:?}: not a checkpoint of size {size} this store signed: {reason}")]
    UnknownCheckpoint {
        /// The stream's name.
        name: String,
        /// The size the note states (0 when it does not parse).
        size: u64,
        /// What disagrees.
        reason: String,
    },
    /// Sealed events, their keys or their erasure (`crate::sealed`).
    #[error(transparent)]
    Sealed(#[from] crate::sealed::SealError),
    /// A file-system call outside the storage layer failed.
    #[error("I/O error {context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error means stored data is damaged or was tampered with.
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Storage { source, .. } => source.is_corruption(),
            Error::CatalogCorrupt { .. }
            | Error::StreamDamaged { .. }
            | Error::StreamLost { .. }
            | Error::UnnamedStreamInTheWay { .. }
            | Error::MarkerDamaged { .. }
            | Error::TreeDamaged { .. } => true,
            _ => false,
        }
    }

    /// True when the store holds files of another format version (written by another version
    /// of Kimberlite), which this build does not read; nothing was changed.
    #[must_use]
    pub fn is_other_format(&self) -> bool {
        matches!(self, Error::Storage { source, .. }
            if matches!(**source, StorageError::UnsupportedFormat { .. }))
    }

    pub(crate) fn storage(name: Option<&str>, source: StorageError) -> Self {
        if let StorageError::Pruned {
            offset,
            first_offset,
            ..
        } = source
        {
            return Error::Pruned {
                name: name.unwrap_or_default().to_owned(),
                offset,
                first_offset,
            };
        }
        Error::Storage {
            name: name.map(str::to_owned),
            source: Box::new(source),
        }
    }

    /// An I/O failure; a link or an unexpected entry inside the store is damage
    /// ([`StorageError::UnexpectedEntry`]), whichever call met it.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        if let Some(entry) = kimberlite_storage::UnexpectedEntry::in_error(&source) {
            return Error::storage(None, StorageError::UnexpectedEntry(entry.clone()));
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// What [`Error::TreeDamaged`] refused to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeEvidence {
    /// The inclusion proof of the event at `offset` in the tree of `tree_size` events.
    Inclusion {
        /// The event's offset.
        offset: Offset,
        /// The tree size asked for.
        tree_size: u64,
    },
    /// The consistency proof from the tree of `old_size` events to that of `new_size`.
    Consistency {
        /// The old tree size.
        old_size: u64,
        /// The new tree size.
        new_size: u64,
    },
    /// The tree head (the root a checkpoint signs) of `tree_size` events.
    Head {
        /// The tree size.
        tree_size: u64,
    },
    /// A tile of the stream's tlog-tiles view, checked against the tree of `tree_size`.
    Tile {
        /// The tile.
        tile: kimberlite_proof::TileId,
        /// The tree size it was checked against.
        tree_size: u64,
    },
}

impl std::fmt::Display for TreeEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeEvidence::Inclusion { offset, tree_size } => write!(
                f,
                "offset {offset} (its inclusion proof in the tree of {tree_size} events)"
            ),
            TreeEvidence::Consistency { old_size, new_size } => write!(
                f,
                "tree sizes {old_size}..{new_size} (the consistency proof from {old_size} to \
                 {new_size} events)"
            ),
            TreeEvidence::Head { tree_size } => {
                write!(f, "its head (the root of the tree of {tree_size} events)")
            }
            TreeEvidence::Tile { tile, tree_size } => {
                write!(f, "{tile} (checked against the tree of {tree_size} events)")
            }
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_store_names_the_marker_file() {
        let error = Error::NotAStore {
            path: PathBuf::from("/x"),
        };
        assert!(error.to_string().contains(crate::MARKER_FILE), "{error}");
    }
}
