//! Store tests on the in-memory backend.

use super::*;

fn store_with(names: &[&str]) -> (Kimberlite, Vec<StreamId>) {
    let store = Kimberlite::in_memory();
    let ids = names
        .iter()
        .map(|name| store.create_stream(name).unwrap())
        .collect();
    (store, ids)
}

fn assert_send_sync<T: Send + Sync + Clone>() {}

#[test]
fn store_is_send_sync_clone() {
    assert_send_sync::<Kimberlite>();
}

#[test]
fn streams_are_named_and_listed() {
    let (store, ids) = store_with(&["b-stream", "a-stream"]);
    assert_eq!(ids, [StreamId::new(1), StreamId::new(2)]);
    assert_eq!(store.stream("a-stream"), Some(StreamId::new(2)));
    assert_eq!(store.stream("missing"), None);
    assert_eq!(store.stream_name(ids[0]).as_deref(), Some("b-stream"));
    let names: Vec<_> = store.list_streams().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["a-stream", "b-stream"]);
    assert!(matches!(
        store.create_stream("a-stream"),
        Err(Error::StreamExists { name }) if name == "a-stream"
    ));
    assert!(matches!(
        store.create_stream("bad\nname"),
        Err(Error::InvalidStreamName { .. })
    ));
}

#[test]
fn append_checks_expected_offsets() {
    let (store, ids) = store_with(&["audit"]);
    let id = ids[0];
    let first = store
        .append(id, ["a", "b"], ExpectedOffset::NoStream)
        .unwrap();
    assert_eq!(first.first_offset, Offset::ZERO);
    assert_eq!(first.next_offset, Offset::new(2));
    let conflict = store
        .append(id, ["x"], ExpectedOffset::NoStream)
        .unwrap_err();
    assert!(
        matches!(&conflict, Error::OffsetConflict { name, actual, .. }
            if name == "audit" && *actual == Offset::new(2)),
        "{conflict}"
    );
    assert!(conflict.to_string().contains("nothing was written"));
    let stale = store.append(id, ["x"], ExpectedOffset::Exact(Offset::new(1)));
    assert!(matches!(stale, Err(Error::OffsetConflict { .. })));
    let second = store
        .append(id, ["c"], ExpectedOffset::Exact(Offset::new(2)))
        .unwrap();
    assert_eq!(second.first_offset, Offset::new(2));
    let third = store
        .append(id, vec!["d".to_owned()], ExpectedOffset::Any)
        .unwrap();
    assert_eq!(third.next_offset, Offset::new(4));
    let head = store.head(id).unwrap();
    assert_eq!(head.next_offset, Offset::new(4));
    assert_eq!(head.hash, Some(third.head));
}

#[test]
fn empty_batches_and_unknown_streams_are_typed_errors() {
    let (store, ids) = store_with(&["audit"]);
    let empty: [&str; 0] = [];
    assert!(matches!(
        store.append(ids[0], empty, ExpectedOffset::Any),
        Err(Error::EmptyBatch { name }) if name == "audit"
    ));
    let unknown = StreamId::new(99);
    assert!(matches!(
        store.append(unknown, ["a"], ExpectedOffset::Any),
        Err(Error::UnknownStream { .. })
    ));
    let catalog = StreamId::new(0);
    assert!(matches!(
        store.append(catalog, ["a"], ExpectedOffset::Any),
        Err(Error::UnknownStream { .. })
    ));
    assert!(store.read(unknown, Offset::ZERO, 1).is_err());
    assert!(store.head(unknown).is_err());
    assert!(store.verify(unknown).is_err());
}

#[test]
fn oversized_events_are_refused_without_poisoning() {
    let (store, ids) = store_with(&["audit"]);
    let huge = vec![0u8; kimberlite_storage::MAX_PAYLOAD_LEN + 1];
    let error = store
        .append(ids[0], [huge], ExpectedOffset::Any)
        .unwrap_err();
    assert!(matches!(error, Error::Storage { .. }), "{error}");
    assert!(error.to_string().contains("\"audit\""), "{error}");
    store
        .append(ids[0], ["fine"], ExpectedOffset::NoStream)
        .unwrap();
}

#[test]
fn reads_page_and_iterate() {
    let store = Kimberlite::in_memory_with(Config::default().read_page_bytes(10));
    let id = store.create_stream("audit").unwrap();
    let events: Vec<String> = (0..25).map(|i| format!("event-{i:02}")).collect();
    store
        .append(id, events.clone(), ExpectedOffset::Any)
        .unwrap();
    let page = store.read(id, Offset::new(3), 16).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].offset, Offset::new(3));
    assert_eq!(&page[1].payload[..], b"event-04");
    assert!(store.read(id, Offset::new(25), 100).unwrap().is_empty());
    let mut iter = store.events(id, Offset::new(5));
    assert_eq!(iter.next_offset(), Offset::new(5));
    let all: Vec<Event> = iter.by_ref().collect::<Result<_>>().unwrap();
    assert_eq!(all.len(), 20);
    for (event, expected) in all.iter().zip(5u64..) {
        assert_eq!(event.offset, Offset::new(expected));
        assert_eq!(event.payload, events[expected as usize].as_bytes());
    }
    assert_eq!(iter.next_offset(), Offset::new(25));
}

#[test]
fn verify_all_reports_every_stream() {
    let (store, ids) = store_with(&["a", "b"]);
    store
        .append(ids[0], ["1", "2", "3"], ExpectedOffset::Any)
        .unwrap();
    store.append(ids[1], ["4"], ExpectedOffset::Any).unwrap();
    assert_eq!(store.total_events(), 6);
    let mut progressed = 0;
    let report = store
        .verify_all_with(|records| progressed += records)
        .unwrap();
    assert!(report.is_intact());
    assert_eq!(progressed, 6);
    assert_eq!(report.streams.len(), 3, "catalogue + 2 streams");
    assert_eq!(report.records_checked(), 6);
    assert_eq!(report.streams[0].stream, StreamId::new(0));
    assert_eq!(report.streams[1].name.as_deref(), Some("a"));
    assert_eq!(report.streams[1].head, store.head(ids[0]).unwrap().hash);
    let one = store.verify(ids[1]).unwrap();
    assert_eq!(one.streams.len(), 1);
    assert_eq!(one.records_checked(), 1);
    let stats = store.stats();
    assert_eq!(stats.len(), 3);
    assert_eq!(stats[1].events, 3);
    assert_eq!(stats[1].storage.segments, 1);
}

#[test]
fn group_commit_publishes_after_sync() {
    let store = Kimberlite::in_memory_with(Config::default().durability(Durability::GroupCommit));
    let id = store.create_stream("audit").unwrap();
    let result = store.append(id, ["a", "b"], ExpectedOffset::Any).unwrap();
    assert_eq!(store.head(id).unwrap().next_offset, result.next_offset);
    assert_eq!(store.read(id, Offset::ZERO, u64::MAX).unwrap().len(), 2);
    store.sync().unwrap();
}

#[test]
fn unsynced_store_appends_and_syncs() {
    let store = Kimberlite::in_memory_with(Config::default().durability(Durability::Unsynced));
    store.sync().unwrap();
    let id = store.create_stream("audit").unwrap();
    store.append(id, ["a"], ExpectedOffset::Any).unwrap();
    store.sync().unwrap();
    assert_eq!(store.head(id).unwrap().next_offset, Offset::new(1));
}

#[test]
fn batches_appended_together_read_and_chain_as_appended_one_by_one() {
    use bytes::Bytes;
    let batch = |texts: &[&str]| texts.iter().map(|t| Bytes::from(t.to_string())).collect();
    for durability in [Durability::Unsynced, Durability::GroupCommit] {
        let config = Config::default().durability(durability);
        let (together, alone) = (
            Kimberlite::in_memory_with(config.clone()),
            Kimberlite::in_memory_with(config),
        );
        let id = together.create_stream("audit").unwrap();
        assert_eq!(alone.create_stream("audit").unwrap(), id);
        alone
            .append(id, ["a", "b"], ExpectedOffset::NoStream)
            .unwrap();
        let last = alone.append(id, ["c"], ExpectedOffset::Any).unwrap();
        let stale =
            together.append_batches(id, vec![batch(&["x"])], ExpectedOffset::Exact(1.into()));
        assert!(
            matches!(stale, Err(Error::OffsetConflict { .. })),
            "{stale:?}"
        );
        let empty = together.append_batches(id, vec![batch(&["a"]), vec![]], ExpectedOffset::Any);
        assert!(matches!(empty, Err(Error::EmptyBatch { .. })), "{empty:?}");
        let run = together
            .append_batches(
                id,
                vec![batch(&["a", "b"]), batch(&["c"])],
                ExpectedOffset::NoStream,
            )
            .unwrap();
        assert_eq!(run.first_offset, Offset::ZERO);
        assert_eq!((run.next_offset, run.head), (last.next_offset, last.head));
        let read = together.read(id, Offset::ZERO, u64::MAX).unwrap();
        let texts: Vec<&[u8]> = read.iter().map(|event| &event.payload[..]).collect();
        assert_eq!(texts, [b"a", b"b", b"c"]);
    }
}

#[test]
fn problems_name_stream_offset_and_location() {
    let error = StorageError::ChainVerificationFailed {
        stream: StreamId::new(3),
        offset: Offset::new(7),
        location: kimberlite_storage::Location {
            segment: 2,
            position: 512,
            file: Some("s/3/00000002.seg".into()),
        },
        expected: None,
        actual: None,
    };
    let problem = verify::problem_for_tests(StreamId::new(3), Some("x".into()), &error).unwrap();
    assert_eq!(problem.offset, Offset::new(7));
    assert_eq!(problem.segment, Some(2));
    assert_eq!(problem.position, Some(512));
    assert!(problem.file.is_some());
    let io = StorageError::Io {
        context: "reading".into(),
        source: std::io::Error::other("boom"),
    };
    assert!(verify::problem_for_tests(StreamId::new(3), None, &io).is_none());
}

use kimberlite_storage::StorageError;

/// Appends `count` numbered events to `id` in batches of 1,000.
fn fill(store: &Kimberlite, id: StreamId, count: u64) {
    for first in (0..count).step_by(1_000) {
        let batch: Vec<String> = (first..count.min(first + 1_000))
            .map(|i| format!("event {i}"))
            .collect();
        store.append(id, batch, ExpectedOffset::Any).unwrap();
    }
}

#[test]
fn a_verification_lets_appends_in_between_its_pieces() {
    let (store, ids) = store_with(&["audit"]);
    let initial = crate::verify::VERIFY_PIECE_RECORDS + 100;
    fill(&store, ids[0], initial);
    let mut handovers = 0;
    let mut on_batch = |batch: crate::tree_check::EventBatch| {
        // Events are handed over only between pieces, with the lock let go: an append fits
        // in there (a walk holding the lock would make this `try_write` fail).
        if batch.first().map(|(offset, _)| offset.as_u64()) == Some(0) {
            assert!(
                store.inner.state.try_write().is_ok(),
                "the walk holds the lock"
            );
            store
                .append(ids[0], ["appended mid-verification"], ExpectedOffset::Any)
                .unwrap();
        }
        let offsets: Vec<u64> = batch.iter().map(|(offset, _)| offset.as_u64()).collect();
        let expected: Vec<u64> = (handovers..handovers + offsets.len() as u64).collect();
        assert_eq!(offsets, expected);
        handovers += offsets.len() as u64;
    };
    let mut progress = Vec::new();
    let (report, end) = store
        .walk_in_pieces(ids[0], Some(&mut on_batch), &mut |records| {
            // Told with the lock let go, too.
            assert!(
                store.inner.state.try_write().is_ok(),
                "the walk holds the lock"
            );
            progress.push(records)
        })
        .unwrap();
    // Progress is told piece by piece (16,384, then the rest with the appended event).
    assert_eq!(progress, [crate::verify::VERIFY_PIECE_RECORDS, 101]);
    // The walk went on to the end as it was when it got there, and the store's head was
    // taken with that last piece.
    assert_eq!(handovers, initial + 1);
    assert_eq!(report.records_checked, initial + 1);
    assert_eq!(end.known_events, initial + 1);
    assert_eq!(report.head, end.known_head);
    assert!(!end.damaged);
    assert!(store.verify(ids[0]).unwrap().is_intact());
}

#[test]
fn verify_with_tells_progress_piece_by_piece() {
    let (store, ids) = store_with(&["audit"]);
    fill(&store, ids[0], 20_000);
    let mut calls = Vec::new();
    let report = store
        .verify_with(ids[0], |records| calls.push(records))
        .unwrap();
    assert!(report.is_intact());
    assert_eq!(
        calls,
        [crate::verify::VERIFY_PIECE_RECORDS, 20_000 - 16_384]
    );
    assert!(matches!(
        store.verify_with(StreamId::new(99), |_| {}),
        Err(Error::UnknownStream { .. })
    ));
}

/// What one walk returns for `read(from, max_bytes)`: events from `from` until their bytes
/// reach `max_bytes`, at least one.
fn expected_read(all: &[String], from: usize, max_bytes: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for event in all.iter().skip(from) {
        out.push(event.clone());
        bytes += event.len() as u64;
        if bytes >= max_bytes {
            break;
        }
    }
    out
}

#[test]
fn a_read_over_many_pages_returns_what_one_walk_would() {
    let store = Kimberlite::in_memory_with(Config::default().read_page_bytes(50));
    let id = store.create_stream("audit").unwrap();
    let all: Vec<String> = (0..60)
        .map(|i| format!("e{i}-{}", "x".repeat(i * 7 % 23)))
        .collect();
    store.append(id, all.clone(), ExpectedOffset::Any).unwrap();
    for from in [0, 3, 10, 59, 60, 61] {
        for max_bytes in [0, 1, 49, 50, 51, 120, 500, u64::MAX] {
            let read: Vec<String> = store
                .read(id, Offset::new(from as u64), max_bytes)
                .unwrap()
                .into_iter()
                .map(|event| String::from_utf8(event.payload.to_vec()).unwrap())
                .collect();
            assert_eq!(
                read,
                expected_read(&all, from, max_bytes),
                "from {from}, max_bytes {max_bytes}"
            );
        }
    }
}
