//! Whether a batch is encoded on the appending thread alone or on the helper thread too
//! (`StorageConfig::hash_ahead`), the store's files are the same bytes: frames, restart records,
//! segment boundaries, indexes and manifests. Only the speed may differ.

mod common;

use common::{event, small_config, snapshot};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{CompressionKind, Offset, StreamId};
use proptest::prelude::*;

/// Appends `batches` (sizes) to two streams, alternating, and flushes; returns the files,
/// named relative to `dir`.
fn files_after(
    dir: &std::path::Path,
    config: StorageConfig,
    batches: &[u64],
) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut storage = Storage::open_with(dir, config).unwrap();
    for (i, &size) in batches.iter().enumerate() {
        let stream = StreamId::new(1 + (i % 2) as u64);
        let head = storage.latest_chain_hash(stream).unwrap();
        let next = storage
            .stream_stats(stream)
            .map_or(0, |stats| stats.next_offset.as_u64());
        let events = (next..next + size)
            .map(|j| event(stream.as_u64(), j))
            .collect();
        storage
            .append_batch(stream, events, Offset::new(next), head, i % 3 == 0)
            .unwrap();
    }
    storage.flush().unwrap();
    drop(storage);
    snapshot(dir)
        .into_iter()
        .filter(|(path, _)| path.file_name().is_some_and(|name| name != "LOCK"))
        .map(|(path, bytes)| (path.strip_prefix(dir).unwrap().to_path_buf(), bytes))
        .collect()
}

fn same_files_either_way(batches: &[u64], compression: CompressionKind, restart_interval: u64) {
    let base = StorageConfig {
        max_segment_size: 16 * 1024,
        restart_interval,
        compression,
        ..small_config()
    };
    let inline = tempfile::tempdir().unwrap();
    let ahead = tempfile::tempdir().unwrap();
    let inline_files = files_after(
        inline.path(),
        StorageConfig {
            hash_ahead: false,
            verify_threads: 1,
            ..base
        },
        batches,
    );
    let ahead_files = files_after(
        ahead.path(),
        StorageConfig {
            hash_ahead: true,
            ..base
        },
        batches,
    );
    assert_eq!(
        inline_files
            .iter()
            .map(|(path, _)| path)
            .collect::<Vec<_>>(),
        ahead_files.iter().map(|(path, _)| path).collect::<Vec<_>>()
    );
    for ((path, inline_bytes), (_, ahead_bytes)) in inline_files.iter().zip(&ahead_files) {
        assert!(inline_bytes == ahead_bytes, "{} differs", path.display());
    }
}

#[test]
fn large_batches_across_segments_give_the_same_files_either_way() {
    for compression in [CompressionKind::None, CompressionKind::Lz4] {
        same_files_either_way(&[1, 700, 129, 128, 3, 1_000, 257, 64], compression, 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    #[test]
    fn any_batches_give_the_same_files_either_way(
        batches in proptest::collection::vec(1u64..600, 1..8),
        lz4 in any::<bool>(),
        restart_interval in prop_oneof![Just(0u64), Just(4), Just(64)],
    ) {
        let compression = if lz4 { CompressionKind::Lz4 } else { CompressionKind::None };
        same_files_either_way(&batches, compression, restart_interval);
    }
}
