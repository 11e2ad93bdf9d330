//! Flip each byte of a small segment in turn: every flip is detected (by `open`, `read_from`
//! or `verify_stream`) and no read ever returns altered data.

mod common;

use bytes::Bytes;
use common::{append_events, event, segment_file, small_config};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(4);
const COUNT: u64 = 18;

fn expected() -> Vec<Bytes> {
    (0..COUNT).map(|i| event(STREAM.as_u64(), i)).collect()
}

/// Reads with several starting offsets and budgets; checks every successful read returns
/// exactly the original events; returns whether any read failed.
fn reads_fail_or_are_exact(storage: &mut Storage, flip: usize) -> bool {
    let expected = expected();
    let mut failed = false;
    for from in [0, 1, 5, 9, 13, COUNT - 1] {
        for max_bytes in [0, 60, u64::MAX] {
            match storage.read_from(STREAM, Offset::new(from), max_bytes) {
                Ok(events) => {
                    let start = from as usize;
                    assert_eq!(
                        events[..],
                        expected[start..start + events.len()],
                        "flip {flip}: read_from({from}, {max_bytes}) returned altered data"
                    );
                }
                Err(error) => {
                    assert!(error.is_corruption(), "flip {flip}: {error}");
                    failed = true;
                }
            }
        }
    }
    failed
}

fn flip_every_byte(config: StorageConfig, segment: u32, active: bool) {
    let dir = common::scratch_dir();
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        append_events(&mut storage, STREAM, 0, COUNT, 3, false);
        let last = u32::try_from(storage.segment_count(STREAM) - 1).unwrap();
        assert_eq!(
            segment == last,
            active,
            "test setup: segment {segment} of {last}"
        );
        storage.flush_indexes().unwrap();
    }
    let path = segment_file(dir.path(), STREAM, segment);
    let original = std::fs::read(&path).unwrap();
    assert!(
        original.len() < 3_000,
        "segment of {} bytes",
        original.len()
    );
    for flip in 0..original.len() {
        // In place, without truncating the file (cheaper than a rewrite on ext4).
        poke(&path, flip, original[flip] ^ 0xff);
        match Storage::open_with(dir.path(), config) {
            Err(error) => assert!(error.is_corruption(), "flip {flip}: {error}"),
            Ok(mut storage) => {
                let reported = !storage.recovery_report().is_clean();
                let read_failed = reads_fail_or_are_exact(&mut storage, flip);
                let verify_failed = storage.verify_stream(STREAM).is_err();
                assert!(
                    read_failed || verify_failed || (active && reported),
                    "flip {flip} went unnoticed"
                );
                if !active {
                    assert!(
                        read_failed && verify_failed,
                        "flip {flip}: read or verify missed it"
                    );
                }
            }
        }
        if std::fs::metadata(&path).unwrap().len() == original.len() as u64 {
            poke(&path, flip, original[flip]);
        } else {
            std::fs::write(&path, &original).unwrap();
        }
    }
}

fn poke(path: &std::path::Path, position: usize, byte: u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&[byte], position as u64).unwrap();
}

fn config(compression: CompressionKind) -> StorageConfig {
    StorageConfig {
        max_segment_size: 900,
        compression,
        ..small_config()
    }
}

#[test]
fn every_flip_in_a_completed_segment_is_detected() {
    flip_every_byte(config(CompressionKind::None), 0, false);
}

#[test]
fn every_flip_in_a_compressed_completed_segment_is_detected() {
    flip_every_byte(config(CompressionKind::Lz4), 0, false);
}

#[test]
fn every_flip_in_the_active_segment_is_detected_or_cut_as_torn() {
    let config = StorageConfig {
        max_segment_size: u64::MAX,
        ..small_config()
    };
    flip_every_byte(config, 0, true);
}
