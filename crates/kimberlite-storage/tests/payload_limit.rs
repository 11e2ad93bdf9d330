//! The payload limit and large payloads through both backends: an event of exactly
//! `MAX_PAYLOAD_LEN` bytes appends and reads back, one byte more is `PayloadTooLarge` and
//! changes nothing, and payloads larger than a 64 KiB write (or read window) come back whole.

mod common;

use bytes::Bytes;
use common::{small_config, snapshot};
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{
    MemoryStorage, Storage, StorageBackend, StorageConfig, StorageError, StoreBackend,
    MAX_PAYLOAD_LEN,
};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(3);

/// Appends `events` at the stream's head; returns the new next offset and head.
fn append(backend: &mut impl StorageBackend, events: Vec<Bytes>) -> (Offset, ChainHash) {
    let head = backend.latest_chain_hash(STREAM).unwrap();
    let next = Offset::new(
        backend
            .read_from(STREAM, Offset::ZERO, u64::MAX)
            .unwrap()
            .len() as u64,
    );
    backend
        .append_batch(STREAM, events, next, head, true)
        .unwrap()
}

/// A payload of `len` bytes that is neither constant nor compressible much.
fn payload(len: usize, seed: u8) -> Bytes {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    Bytes::from(
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect::<Vec<u8>>(),
    )
}

/// The maximum event appends and reads back; one byte more is refused with the offset and
/// lengths named, and the stream (head, events, segments) is as before.
fn limit_holds(backend: &mut impl StorageBackend) {
    let small = Bytes::from_static(b"before");
    let (next, head) = append(backend, vec![small.clone()]);
    let max = Bytes::from(vec![0x5a; MAX_PAYLOAD_LEN]);
    let (next, head) = {
        let (after, hash) = backend
            .append_batch(STREAM, vec![max.clone()], next, Some(head), true)
            .unwrap();
        assert_eq!(after, Offset::new(2));
        (after, hash)
    };
    let read = backend.read_from(STREAM, Offset::new(1), u64::MAX).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].len(), MAX_PAYLOAD_LEN);
    assert!(read[0] == max, "the maximum event read back differs");

    let segments = backend.segment_count(STREAM);
    let over = vec![small.clone(), Bytes::from(vec![1u8; MAX_PAYLOAD_LEN + 1])];
    let error = backend
        .append_batch(STREAM, over, next, Some(head), true)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PayloadTooLarge { stream, offset, len, max }
            if stream == STREAM
                && offset == Offset::new(3)
                && len == MAX_PAYLOAD_LEN as u64 + 1
                && max == MAX_PAYLOAD_LEN as u64),
        "{error}"
    );
    assert_eq!(backend.latest_chain_hash(STREAM).unwrap(), Some(head));
    assert_eq!(backend.segment_count(STREAM), segments);
    assert_eq!(
        backend.read_from(STREAM, Offset::new(2), u64::MAX).unwrap(),
        Vec::<Bytes>::new()
    );
    // The stream still takes the next event at the same offset.
    let (after, _) = backend
        .append_batch(STREAM, vec![small], next, Some(head), true)
        .unwrap();
    assert_eq!(after, Offset::new(3));
}

#[test]
fn the_maximum_payload_appends_and_one_byte_more_is_refused_in_memory() {
    limit_holds(&mut MemoryStorage::new());
}

#[test]
fn the_maximum_payload_appends_and_one_byte_more_is_refused_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        compression: CompressionKind::None,
        ..StorageConfig::default()
    };
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        limit_holds(&mut storage);
    }
    // Refused on disk changes no file either.
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    storage.flush().unwrap();
    let before = snapshot(dir.path());
    let head = storage.latest_chain_hash(STREAM).unwrap();
    let error = storage
        .append_batch(
            STREAM,
            vec![Bytes::from(vec![0u8; MAX_PAYLOAD_LEN + 1])],
            Offset::new(3),
            head,
            true,
        )
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PayloadTooLarge { .. }),
        "{error}"
    );
    assert_eq!(snapshot(dir.path()), before);
    let report = storage.verify_stream(STREAM).unwrap();
    assert_eq!(report.records_checked, 3);
}

/// Sizes around and well past one 64 KiB write or read window, between small events.
fn large_sizes() -> Vec<usize> {
    vec![
        1,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        66 * 1024 + 7,
        3,
        200 * 1024,
        1024 * 1024 + 13,
        5,
    ]
}

fn large_events() -> Vec<Bytes> {
    large_sizes()
        .into_iter()
        .enumerate()
        .map(|(i, len)| payload(len, i as u8))
        .collect()
}

/// Large events, one batch and then one event per batch, come back whole, read all at once,
/// one by one and from each offset.
fn large_payloads_round_trip(backend: &mut impl StorageBackend) {
    let events = large_events();
    append(backend, events.clone());
    for event in &events {
        append(backend, vec![event.clone()]);
    }
    let all: Vec<Bytes> = events.iter().chain(&events).cloned().collect();
    assert_eq!(
        backend.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap(),
        all
    );
    for (i, event) in all.iter().enumerate() {
        let page = backend.read_from(STREAM, Offset::new(i as u64), 1).unwrap();
        assert_eq!(page.first(), Some(event), "offset {i}");
    }
}

#[test]
fn large_payloads_round_trip_in_memory() {
    large_payloads_round_trip(&mut MemoryStorage::new());
}

#[test]
fn large_payloads_round_trip_on_disk_and_after_reopen() {
    for compression in [CompressionKind::None, CompressionKind::Lz4] {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            compression,
            ..small_config()
        };
        {
            let mut storage = Storage::open_with(dir.path(), config).unwrap();
            large_payloads_round_trip(&mut storage);
            assert!(storage.segment_count(STREAM) > 1, "small_config rotates");
        }
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        let events = large_events();
        let all: Vec<Bytes> = events.iter().chain(&events).cloned().collect();
        assert_eq!(
            storage.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap(),
            all
        );
        let report = storage.verify_stream(STREAM).unwrap();
        assert_eq!(report.records_checked, all.len() as u64);
    }
}
