//! Around a batch's write: creating a stream, completing interrupted rotations, rotating
//! segments. The batch itself is encoded and written by `batch`; `Storage::append_batch` (in
//! `storage`) runs these steps after `check_append`.

use std::path::Path;
use std::sync::OnceLock;

use kimberlite_types::StreamId;

use super::fs::{FileHandle, FileSystem};
use super::index::SegmentIndex;
use super::meta::{write_index, write_manifest};
use super::segment_file::{segment_path, SegmentHeader, SEGMENT_HEADER_LEN};
use super::storage::{Storage, STREAMS_DIR};
use super::stream::{io_error, SegmentFiles, StreamState};
use super::stream_dirs::stream_dir_name;
use crate::error::StorageError;
use crate::recovery_report::RecoveryAction;
use crate::rotation::SegmentTable;

impl<F: FileSystem> Storage<F> {
    /// Rotates every stream whose active segment already reached `max_segment_size`: the
    /// batch that took it there was written, but a crash or failure stopped the rotation that
    /// follows it. Completing it keeps segment boundaries where `MemoryStorage` has them.
    pub(super) fn complete_interrupted_rotations(&mut self) -> Result<(), StorageError> {
        let max_segment_size = self.config.max_segment_size;
        let due: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, state)| {
                let active = state.table.active();
                state.damage.is_none()
                    && active.record_count() > 0
                    && active.logical_size_bytes >= max_segment_size
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(state) = self.streams.get_mut(&id) else {
                continue;
            };
            let Some(num) = state.table.end_batch(max_segment_size) else {
                continue;
            };
            self.rotate(id, num)?;
            self.report.actions.push(RecoveryAction::RotationCompleted {
                stream: id,
                segment: num,
            });
        }
        Ok(())
    }

    /// Creates `id`'s directory, segment 0 and manifest, all durable.
    pub(super) fn create_stream(&mut self, id: StreamId) -> Result<(), StorageError> {
        let streams_dir = self.dir.join(STREAMS_DIR);
        let dir = streams_dir.join(stream_dir_name(id));
        self.fs
            .create_dir_all(&dir)
            .map_err(|e| io_error(&dir, e))?;
        let (file, files) = create_segment(&self.fs, &dir, id, 0, 0)?;
        let state = StreamState {
            id,
            dir: dir.clone(),
            table: SegmentTable::new(),
            segments: vec![files],
            active: file,
            active_map: OnceLock::new(),
            head: None,
            damage: None,
            synced_len: SEGMENT_HEADER_LEN as u64,
            allocated_to: 0,
            manifest_len: SEGMENT_HEADER_LEN as u64,
            index_dirty: true,
            chain_break: false,
            pruned: None,
        };
        write_manifest(&self.fs, &state).map_err(|e| io_error(&dir, e))?;
        self.fs
            .sync_dir(&streams_dir)
            .map_err(|e| io_error(&streams_dir, e))?;
        self.streams.insert(id, state);
        Ok(())
    }

    /// Completes the active segment of `id` and starts segment `num`: sync the old one, write
    /// its index, create the new file, map the old one, write the manifest.
    pub(super) fn rotate(&mut self, id: StreamId, num: u32) -> Result<(), StorageError> {
        let Some(state) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let first_offset = state.table.active().first_offset;
        let Some(old) = state.segments.last_mut() else {
            return Ok(());
        };
        let old_path = old.path.clone();
        state
            .active
            .sync_data()
            .map_err(|e| io_error(&old_path, e))?;
        state.active.release_ahead();
        write_index(&self.fs, &state.dir, id, old.num, &old.index, None)
            .map_err(|e| io_error(&old_path, e))?;
        old.map = Some(
            self.fs
                .map_readonly(&old_path)
                .map_err(|e| io_error(&old_path, e))?,
        );
        let (file, files) = create_segment(&self.fs, &state.dir, id, num, first_offset)?;
        state.segments.push(files);
        state.active = file;
        state.active_map = OnceLock::new();
        state.synced_len = SEGMENT_HEADER_LEN as u64;
        state.allocated_to = 0;
        state.index_dirty = true;
        state.chain_break = false;
        write_manifest(&self.fs, state).map_err(|e| io_error(&state.dir, e))?;
        state.manifest_len = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }
}

/// Creates segment `num` of `id` in `dir` with its header, synced.
fn create_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    id: StreamId,
    num: u32,
    first_offset: u64,
) -> Result<(F::File, SegmentFiles), StorageError> {
    let path = segment_path(dir, num);
    let io = |source| io_error(&path, source);
    let mut file = fs.create(&path).map_err(io)?;
    let header = SegmentHeader {
        segment_num: num,
        stream: id,
        first_offset,
    };
    file.write_all_at(&header.encode(), 0).map_err(io)?;
    file.sync_data().map_err(io)?;
    let files = SegmentFiles {
        num,
        path,
        index: SegmentIndex::empty(first_offset),
        map: None,
    };
    Ok((file, files))
}
