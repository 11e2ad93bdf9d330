//! `StoreBackend::append_transformed`: each chunk's events are changed by the caller's
//! transform where the store encodes the chunk (on the appending thread or the encode helper).
//! The files are the same bytes as appending the transformed events themselves, and the store
//! returns them as stored; a failed transform fails the append and leaves nothing of it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{event, small_config, snapshot};
use kimberlite_storage::{
    transform_events, MemoryStorage, PayloadTransform, Storage, StorageBackend, StorageConfig,
    StoreBackend, TransformError,
};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);

/// Each event behind its index in the batch, reversed; fails on an event holding "fail" once
/// `failing` is set.
#[derive(Debug, Default)]
struct Tagged {
    failing: AtomicBool,
}

impl PayloadTransform for Tagged {
    fn output_len(&self, len: usize) -> usize {
        len + 8
    }

    fn transform(
        &self,
        first: usize,
        events: &[Bytes],
        out: &mut Vec<u8>,
    ) -> Result<(), TransformError> {
        for (index, event) in (first..).zip(events) {
            if self.failing.load(Ordering::SeqCst) && event.as_ref() == b"fail" {
                return Err(TransformError(format!("event {index} fails")));
            }
            out.extend_from_slice(&(index as u64).to_le_bytes());
            out.extend(event.iter().rev());
        }
        Ok(())
    }
}

fn config(hash_ahead: bool) -> StorageConfig {
    StorageConfig {
        max_segment_size: 64 * 1024,
        compression: CompressionKind::Lz4,
        hash_ahead,
        ..small_config()
    }
}

fn batches() -> Vec<Vec<Bytes>> {
    let mut next = 0;
    [1u64, 63, 64, 65, 127, 128, 129, 300, 1_000]
        .iter()
        .map(|&size| {
            let batch = (next..next + size).map(|i| event(1, i)).collect();
            next += size;
            batch
        })
        .collect()
}

/// The store's files, without its lock file, named relative to `dir`.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    snapshot(dir)
        .into_iter()
        .filter(|(path, _)| path.file_name().is_some_and(|name| name != "LOCK"))
        .map(|(path, bytes)| (path.strip_prefix(dir).unwrap().to_path_buf(), bytes))
        .collect()
}

#[test]
fn transformed_appends_store_what_appending_the_transformed_events_stores() {
    let transform: Arc<dyn PayloadTransform> = Arc::new(Tagged::default());
    for hash_ahead in [false, true] {
        let by_transform = tempfile::tempdir().unwrap();
        let by_hand = tempfile::tempdir().unwrap();
        let mut transformed = Storage::open_with(by_transform.path(), config(hash_ahead)).unwrap();
        let mut plain = Storage::open_with(by_hand.path(), config(hash_ahead)).unwrap();
        let mut memory = MemoryStorage::new();
        let mut next = Offset::new(0);
        for batch in batches() {
            let expected = transform_events(&*transform, 0, &batch).unwrap();
            let head = transformed.latest_chain_hash(STREAM).unwrap();
            let (after, hash, stored) = transformed
                .append_transformed(STREAM, batch.clone(), transform.clone(), next, head, false)
                .unwrap();
            assert_eq!(stored, expected, "the events as stored, in order");
            let (plain_after, plain_hash) = plain
                .append_batch(STREAM, expected.clone(), next, head, false)
                .unwrap();
            assert_eq!((after, hash), (plain_after, plain_hash));
            let (memory_after, memory_hash, memory_stored) = memory
                .append_transformed(STREAM, batch, transform.clone(), next, head, false)
                .unwrap();
            assert_eq!((memory_after, memory_hash), (after, hash), "the default");
            assert_eq!(memory_stored, expected);
            next = after;
        }
        let read = transformed
            .read_from(STREAM, Offset::new(0), u64::MAX)
            .unwrap();
        assert_eq!(read.len() as u64, next.as_u64());
        assert_eq!(read[1].slice(..8), Bytes::from(0u64.to_le_bytes().to_vec()));
        transformed.flush().unwrap();
        plain.flush().unwrap();
        drop((transformed, plain));
        assert_eq!(
            files(by_transform.path()),
            files(by_hand.path()),
            "hash_ahead {hash_ahead}"
        );
    }
}

#[test]
fn a_failed_transform_fails_the_append_and_leaves_nothing_of_it() {
    let tagged = Arc::new(Tagged::default());
    let transform: Arc<dyn PayloadTransform> = tagged.clone();
    for hash_ahead in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = Storage::open_with(dir.path(), config(hash_ahead)).unwrap();
        let first: Vec<Bytes> = (0..200).map(|i| event(1, i)).collect();
        let (after, _, _) = storage
            .append_transformed(STREAM, first, transform.clone(), Offset::new(0), None, true)
            .unwrap();
        let head = storage.latest_chain_hash(STREAM).unwrap();
        tagged.failing.store(true, Ordering::SeqCst);
        let mut failing: Vec<Bytes> = (200..1_000).map(|i| event(1, i)).collect();
        failing[700] = Bytes::from_static(b"fail");
        let result =
            storage.append_transformed(STREAM, failing, transform.clone(), after, head, true);
        assert!(result.is_err(), "hash_ahead {hash_ahead}");
        tagged.failing.store(false, Ordering::SeqCst);
        let again = vec![event(1, 200)];
        assert!(
            storage
                .append_transformed(STREAM, again, transform.clone(), after, head, true)
                .is_err(),
            "poisoned after a failed write"
        );
        drop(storage);
        let storage = Storage::open_with(dir.path(), config(hash_ahead)).unwrap();
        assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), head);
        let read = storage.read_from(STREAM, Offset::new(0), u64::MAX).unwrap();
        assert_eq!(read.len(), 200, "only the first batch");
        tagged.failing.store(false, Ordering::SeqCst);
    }
    let mut memory = MemoryStorage::new();
    tagged.failing.store(true, Ordering::SeqCst);
    let result = memory.append_transformed(
        STREAM,
        vec![Bytes::from_static(b"fail")],
        transform,
        Offset::new(0),
        None,
        false,
    );
    assert!(matches!(
        result,
        Err(kimberlite_storage::StorageError::Transform { .. })
    ));
    assert_eq!(memory.latest_chain_hash(STREAM).unwrap(), None);
}

/// Events repeated to 200 bytes (LZ4 shrinks them), declared incompressible.
#[derive(Debug)]
struct Repeated;

impl PayloadTransform for Repeated {
    fn output_len(&self, _: usize) -> usize {
        200
    }

    fn incompressible(&self) -> bool {
        true
    }

    fn transform(
        &self,
        _: usize,
        events: &[Bytes],
        out: &mut Vec<u8>,
    ) -> Result<(), TransformError> {
        for event in events {
            out.extend(event.iter().chain(b"-").cycle().take(200));
        }
        Ok(())
    }
}

/// A transform whose output never compresses (sealed events) is stored without any LZ4 try
/// although the store asks for LZ4: every frame is the uncompressed one, the files those of a
/// store without compression; the same events appended plain are still compressed.
#[test]
fn an_incompressible_transform_is_stored_without_trying_the_codec() {
    let transform: Arc<dyn PayloadTransform> = Arc::new(Repeated);
    for hash_ahead in [false, true] {
        let by_transform = tempfile::tempdir().unwrap();
        let uncompressed = tempfile::tempdir().unwrap();
        let lz4 = tempfile::tempdir().unwrap();
        let mut transformed = Storage::open_with(by_transform.path(), config(hash_ahead)).unwrap();
        let none = StorageConfig {
            compression: CompressionKind::None,
            ..config(hash_ahead)
        };
        let mut plain = Storage::open_with(uncompressed.path(), none).unwrap();
        let mut compressed = Storage::open_with(lz4.path(), config(hash_ahead)).unwrap();
        let mut next = Offset::new(0);
        for batch in batches() {
            let expected = transform_events(&*transform, 0, &batch).unwrap();
            let head = transformed.latest_chain_hash(STREAM).unwrap();
            let (after, _, _) = transformed
                .append_transformed(STREAM, batch, transform.clone(), next, head, false)
                .unwrap();
            plain
                .append_batch(STREAM, expected.clone(), next, head, false)
                .unwrap();
            compressed
                .append_batch(STREAM, expected, next, head, false)
                .unwrap();
            next = after;
        }
        for storage in [&mut transformed, &mut plain, &mut compressed] {
            storage.flush().unwrap();
        }
        drop((transformed, plain, compressed));
        let stored = files(by_transform.path());
        assert_eq!(
            stored,
            files(uncompressed.path()),
            "hash_ahead {hash_ahead}"
        );
        let size = |files: &[(std::path::PathBuf, Vec<u8>)]| {
            files.iter().map(|(_, bytes)| bytes.len()).sum::<usize>()
        };
        assert!(
            size(&files(lz4.path())) < size(&stored),
            "LZ4 shrinks these"
        );
    }
}
