//! Append, drop, reopen, read back: one stream, many streams, many segments.

mod common;

use common::{append_events, event, read_all, small_config};
use kimberlite_storage::{Storage, StorageBackend, StoreBackend};
use kimberlite_types::{CompressionKind, Offset, StreamId};

#[test]
fn one_stream_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamId::new(7);
    let (next, head) = {
        let mut storage = Storage::open(dir.path()).unwrap();
        append_events(&mut storage, stream, 0, 50, 7, false)
    };
    let mut storage = Storage::open(dir.path()).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{:?}",
        storage.recovery_report()
    );
    assert_eq!(storage.latest_chain_hash(stream).unwrap(), Some(head));
    assert_eq!(storage.streams(), vec![stream]);
    let all = read_all(&mut storage, stream, 100);
    let expected: Vec<_> = (0..50).map(|i| event(7, i)).collect();
    assert_eq!(all, expected);
    assert_eq!(storage.verify_stream(stream).unwrap().next_offset, next);
    // The chain continues after reopen.
    let (next2, _) = append_events(&mut storage, stream, 50, 10, 3, true);
    assert_eq!(next2, Offset::new(60));
}

#[test]
fn many_streams_many_segments_with_compression() {
    let dir = tempfile::tempdir().unwrap();
    let config = kimberlite_storage::StorageConfig {
        compression: CompressionKind::Lz4,
        ..small_config()
    };
    let streams: Vec<StreamId> = (1..=6).map(StreamId::new).collect();
    let mut heads = Vec::new();
    let mut segment_counts = Vec::new();
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        for (i, stream) in streams.iter().enumerate() {
            let count = 40 + 13 * i as u64;
            heads.push(append_events(
                &mut storage,
                *stream,
                0,
                count,
                5,
                i % 2 == 0,
            ));
            segment_counts.push(storage.segment_count(*stream));
        }
        assert!(
            segment_counts.iter().all(|&count| count > 3),
            "{segment_counts:?}"
        );
        let stats = storage.stream_stats(streams[0]).unwrap();
        assert!(stats.compressed_record_count > 0, "{stats:?}");
        assert!(stats.restart_record_count > 0, "{stats:?}");
        storage.flush().unwrap();
    }
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{:?}",
        storage.recovery_report()
    );
    assert_eq!(storage.streams(), streams);
    for (i, stream) in streams.iter().enumerate() {
        let count = 40 + 13 * i as u64;
        let (next, head) = heads[i];
        assert_eq!(storage.latest_chain_hash(*stream).unwrap(), Some(head));
        assert_eq!(storage.segment_count(*stream), segment_counts[i]);
        let expected: Vec<_> = (0..count).map(|j| event(stream.as_u64(), j)).collect();
        assert_eq!(read_all(&mut storage, *stream, 1), expected);
        for from in [0, 1, count / 2, count - 1] {
            let page = storage
                .read_from(*stream, Offset::new(from), u64::MAX)
                .unwrap();
            assert_eq!(page, expected[from as usize..].to_vec());
        }
        let report = storage.verify_stream(*stream).unwrap();
        assert_eq!(report.next_offset, next);
        assert_eq!(report.head, Some(head));
    }
}

#[test]
fn unknown_stream_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open(dir.path()).unwrap();
    let stream = StreamId::new(3);
    assert!(storage
        .read_from(stream, Offset::ZERO, 10)
        .unwrap()
        .is_empty());
    assert_eq!(storage.latest_chain_hash(stream).unwrap(), None);
    assert_eq!(storage.segment_count(stream), 0);
    assert_eq!(storage.stream_stats(stream), None);
    assert_eq!(storage.verify_stream(stream).unwrap().records_checked, 0);
}
