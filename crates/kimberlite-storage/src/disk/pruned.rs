//! `pruned.json`: the cut record of a stream whose oldest segments retention dropped.
//!
//! # Layout
//!
//! One JSON object in the stream directory, next to `manifest.json`:
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "stream_id": 42,
//!   "first_segment": 2,
//!   "first_offset": 1624,
//!   "chain_hash": "<64 hex digits: chain hash of record first_offset - 1>",
//!   "segments": [ <the dropped segments' manifest entries, 0..first_segment> ],
//!   "tree_frontier": [ "<64 hex digits>", ... ],
//!   "checkpoint_size": 2000,
//!   "crc32c": 1234567890
//! }
//! ```
//!
//! `segments` keeps the dropped segments' final manifest entries, so segment numbers, counts
//! and the manifest stay what they were (`manifest.json` still lists every segment).
//! `tree_frontier` (the Merkle frontier at `first_offset`) and `checkpoint_size` (the kept
//! checkpoint that covered the cut) are kept for the store above (crate `kimberlite`), which
//! checks them; this crate only carries them. `crc32c` is computed as the manifest's is.
//!
//! # Atomic write, and the commit point of a prune
//!
//! Written as the manifest is (`pruned.json.tmp`, fsync, rename, fsync the directory). The
//! rename is the prune's commit point: once `pruned.json` names `first_segment`, open deletes
//! any segment file below it that is still there (a prune interrupted after its commit point
//! is completed); before it, nothing was deleted (`docs/INTERNALS.md`, "Retention").

use std::path::Path;

use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};
use serde::{Deserialize, Serialize};

use super::fs::{replace_file, FileSystem};
use super::manifest::ManifestSegment;

/// The cut record's file name in a stream directory.
pub const PRUNED_FILE: &str = "pruned.json";
/// The temp file the cut record is written to before the rename.
const PRUNED_TEMP_FILE: &str = "pruned.json.tmp";
/// Cut record format version.
const PRUNED_VERSION: u32 = 1;

/// Where retention cut a stream, and what proves that the rest continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePoint {
    /// The first segment kept; segments `0..first_segment` are gone.
    pub first_segment: u32,
    /// The first offset kept: offsets below it were dropped.
    pub first_offset: Offset,
    /// The chain hash of record `first_offset - 1`: the first kept record must link to it.
    pub chain_hash: ChainHash,
    /// The Merkle frontier at `first_offset` (the perfect subtree roots of `[0,
    /// first_offset)`, largest first), kept for the store above.
    pub tree_frontier: Vec<[u8; 32]>,
    /// The size of the kept checkpoint that covered the cut when it was made.
    pub checkpoint_size: u64,
}

/// The JSON form of [`PrunePoint`] (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PrunedRecord {
    format_version: u32,
    stream_id: u64,
    first_segment: u32,
    first_offset: u64,
    chain_hash: String,
    /// The dropped segments' final manifest entries, `0..first_segment`.
    pub(super) segments: Vec<ManifestSegment>,
    tree_frontier: Vec<String>,
    checkpoint_size: u64,
    crc32c: u32,
}

impl PrunedRecord {
    /// The record of `point` for `stream`, with the dropped segments' entries.
    pub(super) fn new(
        stream: StreamId,
        point: &PrunePoint,
        segments: Vec<ManifestSegment>,
    ) -> Self {
        Self {
            format_version: PRUNED_VERSION,
            stream_id: stream.as_u64(),
            first_segment: point.first_segment,
            first_offset: point.first_offset.as_u64(),
            chain_hash: point.chain_hash.to_string(),
            segments,
            tree_frontier: point.tree_frontier.iter().map(hex::encode).collect(),
            checkpoint_size: point.checkpoint_size,
            crc32c: 0,
        }
    }

    /// Parses and checks a cut record of `stream`; the error says what is wrong.
    pub(super) fn decode(bytes: &[u8], stream: StreamId) -> Result<(Self, PrunePoint), String> {
        let record: PrunedRecord = serde_json::from_slice(bytes)
            .map_err(|error| format!("unreadable {PRUNED_FILE}: {error}"))?;
        if record.crc32c != record.checksum() {
            return Err(format!("{PRUNED_FILE} checksum mismatch"));
        }
        if record.format_version != PRUNED_VERSION {
            return Err(format!(
                "unsupported {PRUNED_FILE} version {}",
                record.format_version
            ));
        }
        if record.stream_id != stream.as_u64() {
            return Err(format!("{PRUNED_FILE} names stream {}", record.stream_id));
        }
        let point = record.point()?;
        Ok((record, point))
    }

    /// The point the record describes, once its fields agree with each other.
    fn point(&self) -> Result<PrunePoint, String> {
        let chain_hash = self
            .chain_hash
            .parse::<ChainHash>()
            .map_err(|error| format!("{PRUNED_FILE}: chain_hash: {error}"))?;
        let mut tree_frontier = Vec::with_capacity(self.tree_frontier.len());
        for node in &self.tree_frontier {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(node, &mut bytes)
                .map_err(|error| format!("{PRUNED_FILE}: tree_frontier: {error}"))?;
            tree_frontier.push(bytes);
        }
        let numbered = self
            .segments
            .iter()
            .zip(0u32..)
            .all(|(segment, num)| segment.segment_num == num && segment.completed);
        let mut expected_first = 0u64;
        for segment in &self.segments {
            if segment.first_offset != expected_first || segment.next_offset < segment.first_offset
            {
                return Err(format!("{PRUNED_FILE}: a broken segment offset range"));
            }
            expected_first = segment.next_offset;
        }
        if !numbered
            || self.first_segment == 0
            || self.segments.len() != self.first_segment as usize
            || expected_first != self.first_offset
        {
            return Err(format!(
                "{PRUNED_FILE}: its segments do not end at segment {} and offset {}",
                self.first_segment, self.first_offset
            ));
        }
        Ok(PrunePoint {
            first_segment: self.first_segment,
            first_offset: Offset::new(self.first_offset),
            chain_hash,
            tree_frontier,
            checkpoint_size: self.checkpoint_size,
        })
    }

    /// CRC32C of the compact JSON encoding with `crc32c` set to 0.
    fn checksum(&self) -> u32 {
        let mut unsummed = self.clone();
        unsummed.crc32c = 0;
        crc32c::crc32c(&serde_json::to_vec(&unsummed).unwrap_or_default())
    }

    /// Encodes the record as pretty JSON, with its checksum.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut summed = self.clone();
        summed.crc32c = self.checksum();
        let mut bytes = serde_json::to_vec_pretty(&summed).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Writes the record into `stream_dir` atomically (module docs): the commit point.
    pub(super) fn write_atomic<F: FileSystem>(
        &self,
        fs: &F,
        stream_dir: &Path,
    ) -> std::io::Result<()> {
        let temp = stream_dir.join(PRUNED_TEMP_FILE);
        replace_file(
            fs,
            stream_dir,
            &temp,
            &stream_dir.join(PRUNED_FILE),
            &self.encode(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(num: u32, first: u64, next: u64) -> ManifestSegment {
        ManifestSegment {
            segment_num: num,
            first_offset: first,
            next_offset: next,
            logical_size_bytes: 0,
            file_size_bytes: 40,
            completed: true,
        }
    }

    fn point() -> PrunePoint {
        PrunePoint {
            first_segment: 2,
            first_offset: Offset::new(9),
            chain_hash: ChainHash::from_bytes([7; 32]),
            tree_frontier: vec![[1; 32], [2; 32]],
            checkpoint_size: 12,
        }
    }

    #[test]
    fn round_trips_and_refuses_records_that_disagree_with_themselves() {
        let stream = StreamId::new(5);
        let good = PrunedRecord::new(stream, &point(), vec![segment(0, 0, 4), segment(1, 4, 9)]);
        let (_, decoded) = PrunedRecord::decode(&good.encode(), stream).unwrap();
        assert_eq!(decoded, point());
        assert!(PrunedRecord::decode(&good.encode(), StreamId::new(6)).is_err());
        let text = String::from_utf8(good.encode()).unwrap();
        let flipped = text.replace("\"first_offset\": 9", "\"first_offset\": 8");
        assert_ne!(flipped, text);
        assert!(PrunedRecord::decode(flipped.as_bytes(), stream).is_err());
        let mut short = good.clone();
        short.segments.pop();
        assert!(PrunedRecord::decode(&short.encode(), stream).is_err());
        let mut gap = good.clone();
        gap.segments[1].first_offset = 5;
        assert!(PrunedRecord::decode(&gap.encode(), stream).is_err());
        let mut hash = good;
        hash.chain_hash = "zz".into();
        assert!(PrunedRecord::decode(&hash.encode(), stream).is_err());
    }
}
