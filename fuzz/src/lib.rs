//! Helpers shared by the fuzz targets and the corpus generator.

use std::path::{Path, PathBuf};

use kimberlite_sim::{FaultConfig, SimFileSystem};
use kimberlite_storage::{
    FileHandle, FileSystem, Storage, StorageBackend, StorageConfig, StoreBackend, VerifyStep,
    RECORD_OVERHEAD,
};
use kimberlite_types::{Offset, StreamId};

/// Where the fuzzed store lives on the simulated file system.
pub const STORE: &str = "/store";

/// A data record frame with LZ4 compression around `stored`, its payload length declared as
/// `declared_len`, and a valid CRC, so decoding reaches the decompressor. The layout is
/// `crates/kimberlite-storage/src/record.rs`'s (docs/FORMAT.md): header (length, version 3,
/// kind, compression, flags, offset, payload length), stored bytes, link (absent: zeros), CRC.
pub fn lz4_frame(stored: &[u8], declared_len: u32) -> Vec<u8> {
    const VERSION: u8 = 3;
    const KIND_DATA: u8 = 0;
    const COMPRESSION_LZ4: u8 = 1;
    const NO_FLAGS: u8 = 0;
    let frame_len = RECORD_OVERHEAD + stored.len();
    let mut frame = Vec::with_capacity(frame_len);
    frame.extend_from_slice(&(frame_len as u32).to_le_bytes());
    frame.extend_from_slice(&[VERSION, KIND_DATA, COMPRESSION_LZ4, NO_FLAGS]);
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.extend_from_slice(&declared_len.to_le_bytes());
    frame.extend_from_slice(stored);
    frame.extend_from_slice(&[0u8; 32]);
    let crc = crc32c::crc32c(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// Serialises files as `[u16 name length][name][u32 content length][content]`...
pub fn encode_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(content.len() as u32).to_le_bytes());
        out.extend_from_slice(content);
    }
    out
}

/// The inverse of [`encode_files`], tolerant of any input: stops at the first short field.
pub fn decode_files(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    while files.len() < 16 {
        let Some((name_len, rest)) = take_u16(data) else {
            break;
        };
        let Some((name, rest)) = take(rest, name_len as usize) else {
            break;
        };
        let Some((content_len, rest)) = take_u32(rest) else {
            break;
        };
        let Some((content, rest)) = take(rest, (content_len as usize).min(rest.len())) else {
            break;
        };
        files.push((String::from_utf8_lossy(name).into_owned(), content.to_vec()));
        data = rest;
    }
    files
}

fn take(data: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    (data.len() >= len).then(|| data.split_at(len))
}

fn take_u16(data: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = take(data, 2)?;
    Some((u16::from_le_bytes([head[0], head[1]]), rest))
}

fn take_u32(data: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = take(data, 4)?;
    Some((
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        rest,
    ))
}

/// Writes `files` (paths relative to the store) into a fresh simulated file system.
pub fn file_system_with(files: &[(String, Vec<u8>)]) -> SimFileSystem {
    let fs = SimFileSystem::new(0, FaultConfig::NONE);
    for (name, content) in files {
        if name.contains("..") {
            continue;
        }
        let path = Path::new(STORE).join(name.trim_start_matches('/'));
        let Some(parent) = path.parent() else {
            continue;
        };
        if fs.create_dir_all(parent).is_err() {
            continue;
        }
        if let Ok(mut file) = fs.create(&path) {
            let _ = file.write_all_at(content, 0);
            let _ = file.sync_data();
        }
        let _ = fs.sync_dir(parent);
    }
    fs
}

/// Opens a store made of the files encoded in `data`, reads and verifies every stream.
/// Errors are fine; panics are bugs.
pub fn open_and_read(data: &[u8]) {
    let files = decode_files(data);
    let fs = file_system_with(&files);
    let config = StorageConfig {
        max_segment_size: 4096,
        restart_interval: 4,
        index_interval: 2,
        ..StorageConfig::default()
    };
    let Ok(mut storage) = Storage::open_on(fs, PathBuf::from(STORE), config) else {
        return;
    };
    for stream in storage.streams() {
        let whole = storage.verify_stream(stream);
        // The same walk in pieces of 3 records ends the same way: the same report, or the
        // same first error.
        let mut from = None;
        let in_pieces = loop {
            match storage.verify_stream_piece(stream, from.take(), 3, |_, _| {}) {
                Ok(VerifyStep::Paused(resume)) => from = Some(resume),
                Ok(VerifyStep::Done(report)) => break Ok(report),
                Err(error) => break Err(error),
            }
        };
        assert_eq!(
            format!("{whole:?}"),
            format!("{in_pieces:?}"),
            "stream {stream}: a walk in pieces ended differently"
        );
        let _ = storage.latest_chain_hash(stream);
        for from in [0, 1, 3, 7] {
            let _ = storage.read_from(stream, Offset::new(from), 1 << 20);
        }
    }
    // Appending after recovery must not panic either.
    let stream = StreamId::new(1);
    if let Ok(head) = storage.latest_chain_hash(stream) {
        let next = storage
            .stream_stats(stream)
            .map_or(Offset::ZERO, |s| s.next_offset);
        let _ = storage.append_batch(
            stream,
            vec![bytes::Bytes::from_static(b"x")],
            next,
            head,
            true,
        );
    }
}
