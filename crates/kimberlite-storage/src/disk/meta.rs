//! Writing the derived metadata files of a stream atomically: its manifest and its segment
//! indexes (layouts in `manifest` and `index`).

use std::path::{Path, PathBuf};

use kimberlite_crypto::ChainHash;
use kimberlite_types::StreamId;

use super::fs::{FileHandle, FileSystem};
use super::index::{index_file_name, SegmentIndex};
use super::manifest::{Manifest, ManifestSegment};
use super::stream::StreamState;

/// The manifest describing `state`. The active segment's entry records its current length as
/// the durable watermark: callers sync the active segment first.
pub fn manifest_of<F: FileSystem>(state: &StreamState<F>) -> Manifest {
    let last = state.segments.len().saturating_sub(1);
    let segments = state
        .table
        .segments()
        .iter()
        .zip(&state.segments)
        .enumerate()
        .map(|(i, (meta, files))| ManifestSegment {
            segment_num: meta.segment_num,
            first_offset: meta.first_offset,
            next_offset: meta.next_offset,
            logical_size_bytes: meta.logical_size_bytes,
            file_size_bytes: files.index.summary.len_bytes,
            completed: i != last,
        })
        .collect();
    Manifest {
        format_version: super::manifest::MANIFEST_VERSION,
        stream_id: state.id.as_u64(),
        segments,
        crc32c: 0,
    }
}

/// Writes `state`'s manifest atomically.
pub fn write_manifest<F: FileSystem>(fs: &F, state: &StreamState<F>) -> std::io::Result<()> {
    manifest_of(state).write_atomic(fs, &state.dir)
}

/// Writes a segment's index atomically (temp file, fsync, rename), with `head` as its resume
/// point: callers give one only when every byte the index covers is already fsynced (see
/// `resume::resume_head`), because open trusts the covered bytes without reading them.
pub fn write_index<F: FileSystem>(
    fs: &F,
    dir: &Path,
    stream: StreamId,
    num: u32,
    index: &SegmentIndex,
    head: Option<ChainHash>,
) -> std::io::Result<PathBuf> {
    let path = dir.join(index_file_name(num));
    let temp = dir.join(format!("{}.tmp", index_file_name(num)));
    let mut file = fs.create(&temp)?;
    file.write_all_at(&index.encode(stream, num, head), 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&temp, &path)?;
    Ok(path)
}
