//! Refused appends: a wrong `expected_offset` or `prev_hash` (or an oversized event) is a
//! typed error and leaves every file byte-identical; an empty batch panics.

mod common;

use bytes::Bytes;
use common::{append_events, small_config, snapshot};
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{Storage, StorageBackend, StorageError, StoreBackend, MAX_PAYLOAD_LEN};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(5);

#[test]
fn wrong_offset_or_hash_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let (next, head) = append_events(&mut storage, STREAM, 0, 30, 4, true);
    storage.flush().unwrap();
    let before = snapshot(dir.path());
    let event = || vec![Bytes::from_static(b"late")];

    let error = storage
        .append_batch(STREAM, event(), Offset::new(3), Some(head), true)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::UnexpectedOffset { stream, expected, actual }
            if stream == STREAM && expected == Offset::new(3) && actual == next),
        "{error}"
    );
    let wrong = ChainHash::from_bytes([1; 32]);
    let error = storage
        .append_batch(STREAM, event(), next, Some(wrong), true)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PrevHashMismatch { stream, offset, expected, actual }
            if stream == STREAM && offset == next && expected == Some(wrong) && actual == Some(head)),
        "{error}"
    );
    let error = storage
        .append_batch(STREAM, event(), next, None, false)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PrevHashMismatch { .. }),
        "{error}"
    );
    let huge = vec![Bytes::from(vec![0u8; MAX_PAYLOAD_LEN + 1])];
    let error = storage
        .append_batch(STREAM, huge, next, Some(head), true)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PayloadTooLarge { .. }),
        "{error}"
    );
    // A new stream with a non-zero offset is refused before its directory is created.
    let error = storage
        .append_batch(StreamId::new(6), event(), Offset::new(1), None, true)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::UnexpectedOffset { .. }),
        "{error}"
    );

    storage.flush().unwrap();
    assert_eq!(snapshot(dir.path()), before);
    // The store still works.
    storage
        .append_batch(STREAM, event(), next, Some(head), true)
        .unwrap();
}

#[test]
#[should_panic(expected = "cannot append empty batch")]
fn an_empty_batch_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open(dir.path()).unwrap();
    let _ = storage.append_batch(STREAM, Vec::new(), Offset::ZERO, None, false);
}
