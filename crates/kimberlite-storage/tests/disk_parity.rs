//! Parity: the same workload on `Storage` and `MemoryStorage` gives the same offsets, terminal
//! chain hashes, `read_from` results, `segment_count` and `completed_segments`, with and
//! without restart records and compression, before and after a reopen.

mod common;

use bytes::Bytes;
use kimberlite_storage::{MemoryStorage, Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{CompressionKind, Offset, StreamId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Batch {
    stream: u64,
    events: Vec<Vec<u8>>,
    fsync: bool,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        (0usize..300, any::<u8>()).prop_map(|(len, byte)| vec![byte; len]),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        0u64..3,
        proptest::collection::vec(payload(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(stream, events, fsync)| Batch {
            stream,
            events,
            fsync,
        })
}

fn config() -> impl Strategy<Value = StorageConfig> {
    (
        prop_oneof![Just(0u64), 200u64..2_000],
        prop_oneof![Just(0u64), 1u64..10],
        prop_oneof![Just(CompressionKind::None), Just(CompressionKind::Lz4)],
        0u64..6,
    )
        .prop_map(
            |(max_segment_size, restart_interval, compression, index_interval)| StorageConfig {
                max_segment_size,
                restart_interval,
                compression,
                index_interval,
                ..StorageConfig::default()
            },
        )
}

fn compare(disk: &mut Storage, memory: &mut MemoryStorage, reads: &[(u64, u64, u64)]) {
    for stream in (0..3).map(StreamId::new) {
        assert_eq!(disk.segment_count(stream), memory.segment_count(stream));
        assert_eq!(
            disk.completed_segments(stream),
            memory.completed_segments(stream)
        );
        assert_eq!(
            disk.latest_chain_hash(stream).unwrap(),
            memory.latest_chain_hash(stream).unwrap()
        );
        let disk_report = disk.verify_stream(stream).unwrap();
        let memory_report = memory.verify_stream(stream).unwrap();
        assert_eq!(disk_report.head, memory_report.head);
        assert_eq!(disk_report.next_offset, memory_report.next_offset);
        assert_eq!(disk_report.records_checked, memory_report.records_checked);
    }
    for &(stream, from, max_bytes) in reads {
        let stream = StreamId::new(stream);
        let from = Offset::new(from);
        assert_eq!(
            disk.read_from(stream, from, max_bytes).unwrap(),
            memory.read_from(stream, from, max_bytes).unwrap(),
            "read_from({stream}, {from}, {max_bytes})"
        );
    }
    assert_eq!(disk.streams(), memory.streams());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn storage_matches_memory_storage(
        config in config(),
        batches in proptest::collection::vec(batch(), 1..20),
        reads in proptest::collection::vec((0u64..3, 0u64..40, 0u64..700), 0..12),
    ) {
        let dir = common::scratch_dir();
        let mut disk = Storage::open_with(dir.path(), config).unwrap();
        let mut memory = MemoryStorage::with_max_segment_size(config.max_segment_size);
        for batch in &batches {
            let stream = StreamId::new(batch.stream);
            let events: Vec<Bytes> = batch.events.iter().cloned().map(Bytes::from).collect();
            let head = memory.latest_chain_hash(stream).unwrap();
            let next = Offset::new(memory.verify_stream(stream).unwrap().next_offset.as_u64());
            let from_memory = memory.append_batch(stream, events.clone(), next, head, false).unwrap();
            let from_disk = disk.append_batch(stream, events, next, head, batch.fsync).unwrap();
            prop_assert_eq!(from_disk, from_memory);
        }
        compare(&mut disk, &mut memory, &reads);
        drop(disk);
        let mut reopened = Storage::open_with(dir.path(), config).unwrap();
        prop_assert!(reopened.recovery_report().is_clean(), "{:?}", reopened.recovery_report());
        compare(&mut reopened, &mut memory, &reads);
    }
}
