//! [`RecoveryReport`]: what opening a store found and did, one [`RecoveryAction`] per row of
//! the decision table in `recovery` that applied.

use std::path::PathBuf;

use kimberlite_types::StreamId;

/// What [`Storage::open`](crate::Storage::open) found and did; empty when the store was clean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Each repair or finding, in the order met.
    pub actions: Vec<RecoveryAction>,
    /// Record frames open decoded while scanning segments (active segments, rebuilt indexes).
    /// An active segment whose index was flushed is scanned only past what the index covers,
    /// so a store closed after [`StoreBackend::flush`](crate::StoreBackend::flush) opens with 0.
    pub records_scanned: u64,
}

impl RecoveryReport {
    /// True when open found nothing to repair or report.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.actions.is_empty()
    }

    /// Torn tails truncated.
    pub fn truncations(&self) -> impl Iterator<Item = &RecoveryAction> {
        self.actions
            .iter()
            .filter(|action| matches!(action, RecoveryAction::TornTailTruncated { .. }))
    }
}

/// One thing recovery did or found (rows of the decision table in `recovery`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// A partial or unchecksummed last record (an unfinished write) was cut off.
    TornTailTruncated {
        /// The stream.
        stream: StreamId,
        /// The segment file.
        file: PathBuf,
        /// File length before.
        from_len: u64,
        /// File length after: the end of the last whole record.
        to_len: u64,
        /// Why the tail did not decode.
        reason: String,
        /// Where the cut bytes were kept, as they were (`torn/` in the stream's directory).
        kept_in: PathBuf,
    },
    /// A segment index was missing or stale and was rebuilt from its segment.
    IndexRebuilt {
        /// The stream.
        stream: StreamId,
        /// The index file written.
        file: PathBuf,
        /// Why the old one was unusable.
        reason: String,
    },
    /// The manifest was missing, unreadable or behind the files and was rewritten from them.
    ManifestRepaired {
        /// The stream.
        stream: StreamId,
        /// What was wrong.
        reason: String,
    },
    /// An active segment whose header was never completely written (it held no record) was
    /// rewritten.
    SegmentHeaderRewritten {
        /// The stream.
        stream: StreamId,
        /// The segment file.
        file: PathBuf,
    },
    /// The active segment had reached `max_segment_size` but the rotation after the batch that
    /// took it there never happened (a crash or failure): open completed it.
    RotationCompleted {
        /// The stream.
        stream: StreamId,
        /// The new active segment's number.
        segment: u32,
    },
    /// A leftover temp file of an interrupted atomic write was removed.
    TempFileRemoved {
        /// The file removed.
        file: PathBuf,
    },
    /// An entry the store never writes, where it lists its streams, or a `torn/` that is not
    /// a directory: left alone, not opened or followed.
    UnexpectedEntry {
        /// The entry.
        path: PathBuf,
    },
    /// A prune interrupted after its commit point (`pruned.json` written) was completed: the
    /// segment files below the cut that were still there were deleted.
    PruneCompleted {
        /// The stream.
        stream: StreamId,
        /// The segments whose files were deleted.
        segments: Vec<u32>,
    },
    /// Corruption that recovery must not repair. Reads that reach it fail with this error;
    /// if it is in the active segment, appends to the stream are refused too.
    CorruptionFound {
        /// The stream.
        stream: StreamId,
        /// The error reads will report.
        error: String,
    },
}

impl std::fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryAction::TornTailTruncated {
                stream,
                file,
                from_len,
                to_len,
                reason,
                kept_in,
            } => write!(
                f,
                "stream {stream}: torn tail of {} cut from {from_len} to {to_len} bytes \
                 ({reason}); the cut bytes are kept in {}",
                file.display(),
                kept_in.display()
            ),
            RecoveryAction::IndexRebuilt {
                stream,
                file,
                reason,
            } => write!(
                f,
                "stream {stream}: index {} rebuilt ({reason})",
                file.display()
            ),
            RecoveryAction::ManifestRepaired { stream, reason } => {
                write!(
                    f,
                    "stream {stream}: manifest rebuilt from the segment files ({reason})"
                )
            }
            RecoveryAction::SegmentHeaderRewritten { stream, file } => write!(
                f,
                "stream {stream}: unfinished header of empty segment {} rewritten",
                file.display()
            ),
            RecoveryAction::RotationCompleted { stream, segment } => {
                write!(
                    f,
                    "stream {stream}: interrupted rotation completed (segment {segment} started)"
                )
            }
            RecoveryAction::TempFileRemoved { file } => {
                write!(f, "leftover temp file {} removed", file.display())
            }
            RecoveryAction::UnexpectedEntry { path } => write!(
                f,
                "{}: not an entry the store writes there; left alone, not followed",
                path.display()
            ),
            RecoveryAction::PruneCompleted { stream, segments } => write!(
                f,
                "stream {stream}: an interrupted prune was completed (segments {segments:?} \
                 deleted, as its pruned.json says)"
            ),
            RecoveryAction::CorruptionFound { stream, error } => {
                write!(f, "stream {stream}: corruption left in place: {error}")
            }
        }
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.actions.is_empty() {
            return f.write_str("clean");
        }
        for (i, action) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{action}")?;
        }
        Ok(())
    }
}
