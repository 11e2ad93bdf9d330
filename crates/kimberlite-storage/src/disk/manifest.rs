//! `manifest.json`: the list of a stream's segments, written atomically.
//!
//! # Layout
//!
//! One JSON object per stream directory:
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "stream_id": 42,
//!   "segments": [
//!     { "segment_num": 0, "first_offset": 0, "next_offset": 812,
//!       "logical_size_bytes": 262180, "file_size_bytes": 262260, "completed": true },
//!     { "segment_num": 1, "first_offset": 812, "next_offset": 900,
//!       "logical_size_bytes": 28400, "file_size_bytes": 28520, "completed": false }
//!   ],
//!   "crc32c": 2864434397
//! }
//! ```
//!
//! `crc32c` is the CRC32C of the manifest's compact JSON encoding (`serde_json::to_vec`, fields
//! in the order above) with `crc32c` set to 0: a flipped digit cannot pass for another number.
//!
//! Segments are listed in order, numbered `0..n`, each starting where the previous one ends;
//! only the last is not `completed`. For a completed segment every field is final. For the
//! active (last) one the fields are a *durable watermark*: what was fsynced when the manifest
//! was last written (at stream creation, rotation and `flush`). The file may hold more
//! records (appended since); a file *shorter* than the watermark has lost durable data.
//!
//! # Atomic write
//!
//! Write `manifest.json.tmp`, fsync it, rename it over `manifest.json`, fsync the directory.
//! A crash leaves either the old or the new manifest (and maybe a temp file, removed on open).

use std::path::Path;

use kimberlite_types::StreamId;
use serde::{Deserialize, Serialize};

use super::fs::{replace_file, FileSystem};

/// The manifest's file name in a stream directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The temp file a manifest is written to before the rename.
pub const MANIFEST_TEMP_FILE: &str = "manifest.json.tmp";
/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// One segment as the manifest lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSegment {
    /// Segment number.
    pub segment_num: u32,
    /// Offset of its first data record.
    pub first_offset: u64,
    /// One past its last data record (a lower bound for the active segment).
    pub next_offset: u64,
    /// Logical size (see `crate::segments`).
    pub logical_size_bytes: u64,
    /// File length in bytes, header included (a lower bound for the active segment).
    pub file_size_bytes: u64,
    /// Whether the stream has rotated past it.
    pub completed: bool,
}

/// A stream's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `MANIFEST_VERSION` (1).
    pub format_version: u32,
    /// The stream the directory holds.
    pub stream_id: u64,
    /// The segments, oldest first.
    pub segments: Vec<ManifestSegment>,
    /// CRC32C of the manifest's compact JSON encoding with this field set to 0. Written by
    /// [`Manifest::encode`] (whatever value it holds before), checked by [`Manifest::decode`].
    pub crc32c: u32,
}

impl Manifest {
    /// Parses and checks a manifest for `stream`; the error says what is wrong.
    pub fn decode(bytes: &[u8], stream: StreamId) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|error| format!("unreadable manifest: {error}"))?;
        if manifest.crc32c != manifest.checksum() {
            return Err("manifest checksum mismatch".to_owned());
        }
        if manifest.format_version != MANIFEST_VERSION {
            return Err(format!(
                "unsupported manifest version {}",
                manifest.format_version
            ));
        }
        if manifest.stream_id != stream.as_u64() {
            return Err(format!("manifest names stream {}", manifest.stream_id));
        }
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks the structural invariants listed in the module docs.
    fn check(&self) -> Result<(), String> {
        let Some(last) = self.segments.last() else {
            return Err("manifest lists no segment".to_owned());
        };
        let mut expected_first = 0u64;
        for (i, segment) in self.segments.iter().enumerate() {
            if u64::from(segment.segment_num) != i as u64 {
                return Err(format!(
                    "manifest segment {i} is numbered {}",
                    segment.segment_num
                ));
            }
            if segment.first_offset != expected_first || segment.next_offset < segment.first_offset
            {
                return Err(format!("manifest segment {i} has a broken offset range"));
            }
            if segment.completed == (segment.segment_num == last.segment_num) {
                return Err(format!("manifest segment {i} has the wrong completed flag"));
            }
            expected_first = segment.next_offset;
        }
        Ok(())
    }

    /// CRC32C of the compact JSON encoding of the manifest with `crc32c` set to 0.
    fn checksum(&self) -> u32 {
        let mut unsummed = self.clone();
        unsummed.crc32c = 0;
        crc32c::crc32c(&serde_json::to_vec(&unsummed).unwrap_or_default())
    }

    /// Encodes the manifest as pretty JSON, with its checksum.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut summed = self.clone();
        summed.crc32c = self.checksum();
        let mut bytes = serde_json::to_vec_pretty(&summed).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Writes the manifest into `stream_dir` atomically (see the module docs).
    pub fn write_atomic<F: FileSystem>(&self, fs: &F, stream_dir: &Path) -> std::io::Result<()> {
        let temp = stream_dir.join(MANIFEST_TEMP_FILE);
        replace_file(
            fs,
            stream_dir,
            &temp,
            &stream_dir.join(MANIFEST_FILE),
            &self.encode(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(num: u32, first: u64, next: u64, completed: bool) -> ManifestSegment {
        ManifestSegment {
            segment_num: num,
            first_offset: first,
            next_offset: next,
            logical_size_bytes: 0,
            file_size_bytes: 40,
            completed,
        }
    }

    #[test]
    fn round_trips_and_rejects_broken_lists() {
        let stream = StreamId::new(3);
        let good = Manifest {
            format_version: MANIFEST_VERSION,
            stream_id: 3,
            segments: vec![segment(0, 0, 5, true), segment(1, 5, 9, false)],
            crc32c: 0,
        };
        let decoded = Manifest::decode(&good.encode(), stream).unwrap();
        assert_eq!(decoded.segments, good.segments);
        let text = String::from_utf8(good.encode()).unwrap();
        let flipped = text.replace("\"next_offset\": 9", "\"next_offset\": 8");
        assert_ne!(flipped, text);
        assert!(Manifest::decode(flipped.as_bytes(), stream).is_err());
        assert!(Manifest::decode(&good.encode(), StreamId::new(4)).is_err());
        assert!(Manifest::decode(b"{not json", stream).is_err());
        let mut gap = good.clone();
        gap.segments[1].first_offset = 6;
        assert!(Manifest::decode(&gap.encode(), stream).is_err());
        let mut flags = good.clone();
        flags.segments[0].completed = false;
        assert!(Manifest::decode(&flags.encode(), stream).is_err());
        let mut empty = good;
        empty.segments.clear();
        assert!(Manifest::decode(&empty.encode(), stream).is_err());
    }
}
