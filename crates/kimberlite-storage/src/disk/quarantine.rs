//! Keeping the bytes of a torn tail before recovery cuts it off.
//!
//! Recovery cuts an unfinished write off the end of the active segment (rows 3–5 of the
//! decision table in `recovery`), so that appends can go on. Those bytes were never
//! acknowledged, but in an audit store nothing should vanish without a trace: they are first
//! copied, as they are, to `torn/<segment number>-<byte position>.bin` in the stream's
//! directory, synced, and only then cut. The file's name says where they were; the recovery
//! report names the file.
//!
//! Preserved: the cut itself (the decision is recovery's), and the layout of the segment
//! files (`torn/` is not a segment; nothing reads it back). The price: the disk space of each cut
//! tail, until an operator removes the file. A crash between the copy and the cut finds the
//! same tail at the next open and copies it again to the same name.

use std::io;
use std::path::{Path, PathBuf};

use super::fs::{FileHandle, FileSystem};

/// The directory, inside a stream's directory, where cut tails are kept.
pub const TORN_DIR: &str = "torn";

/// Bytes copied per read and write.
const COPY_CHUNK: u64 = 1 << 20;

/// The name a tail cut from segment `num` at byte `position` is kept under.
#[must_use]
pub fn torn_file_name(num: u32, position: u64) -> String {
    format!("{num:08}-{position}.bin")
}

/// Copies bytes `from..to` of `file` (segment `num` of the stream in `stream_dir`) to
/// [`TORN_DIR`]`/`[`torn_file_name`] and makes the copy durable; returns its path.
pub fn keep_torn_tail<F: FileSystem>(
    fs: &F,
    stream_dir: &Path,
    num: u32,
    file: &F::File,
    from: u64,
    to: u64,
) -> io::Result<PathBuf> {
    let dir = stream_dir.join(TORN_DIR);
    fs.create_dir_all(&dir)?;
    let path = dir.join(torn_file_name(num, from));
    let mut copy = fs.create(&path)?;
    let mut position = from;
    let mut buffer = Vec::new();
    while position < to {
        let len = (to - position).min(COPY_CHUNK);
        buffer.resize(usize::try_from(len).unwrap_or(0), 0);
        file.read_exact_at(&mut buffer, position)?;
        copy.write_all_at(&buffer, position - from)?;
        position += len;
    }
    copy.sync_data()?;
    fs.sync_dir(&dir)?;
    fs.sync_dir(stream_dir)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_tail_is_named_by_its_segment_and_position() {
        assert_eq!(torn_file_name(3, 1_234), "00000003-1234.bin");
        assert_eq!(
            torn_file_name(u32::MAX, u64::MAX),
            "4294967295-18446744073709551615.bin"
        );
    }
}
