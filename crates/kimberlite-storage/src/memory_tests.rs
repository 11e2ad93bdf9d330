use super::*;
use crate::record::RECORD_OVERHEAD;
use proptest::prelude::*;

const STREAM: StreamId = StreamId::new(1);

fn events(texts: &[&'static str]) -> Vec<Bytes> {
    texts
        .iter()
        .map(|t| Bytes::from_static(t.as_bytes()))
        .collect()
}

/// Appends `batch` at the stream's head; returns the new head.
fn append(storage: &mut MemoryStorage, stream: StreamId, batch: Vec<Bytes>) -> (Offset, ChainHash) {
    let next = Offset::new(
        storage
            .streams
            .get(&stream)
            .map_or(0, |s| s.records.len() as u64),
    );
    let head = storage.latest_chain_hash(stream).unwrap();
    storage
        .append_batch(stream, batch, next, head, false)
        .unwrap()
}

#[test]
fn append_returns_next_offset_and_head_hash() {
    let mut storage = MemoryStorage::new();
    let (next, head) = storage
        .append_batch(STREAM, events(&["a", "b", "c"]), Offset::ZERO, None, false)
        .unwrap();
    assert_eq!(next, Offset::new(3));
    let first = Record::new(Offset::ZERO, None, Bytes::from_static(b"a"));
    let second = Record::new(
        Offset::new(1),
        Some(first.compute_hash()),
        Bytes::from_static(b"b"),
    );
    let third = Record::new(
        Offset::new(2),
        Some(second.compute_hash()),
        Bytes::from_static(b"c"),
    );
    assert_eq!(head, third.compute_hash());
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));

    let (next, _) = storage
        .append_batch(STREAM, events(&["d"]), next, Some(head), true)
        .unwrap();
    assert_eq!(next, Offset::new(4));
}

#[test]
fn batching_does_not_change_hashes() {
    let mut one_batch = MemoryStorage::new();
    let (_, head_one) = append(&mut one_batch, STREAM, events(&["a", "b", "c", "d"]));
    let mut singles = MemoryStorage::new();
    let mut head = None;
    for text in ["a", "b", "c", "d"] {
        head = Some(append(&mut singles, STREAM, events(&[text])).1);
    }
    assert_eq!(head, Some(head_one));
}

#[test]
fn changing_any_earlier_payload_changes_the_terminal_hash() {
    let base = ["e0", "e1", "e2", "e3", "e4"];
    let mut storage = MemoryStorage::new();
    let (_, terminal) = append(&mut storage, STREAM, events(&base));
    for changed in 0..base.len() {
        let mut texts = base;
        texts[changed] = "XX";
        let mut other = MemoryStorage::new();
        let (_, other_terminal) = append(&mut other, STREAM, events(&texts));
        assert_ne!(other_terminal, terminal, "changing event {changed}");
    }
}

#[test]
fn wrong_expected_offset_is_refused_and_changes_nothing() {
    let mut storage = MemoryStorage::with_max_segment_size(1);
    let (next, head) = append(&mut storage, STREAM, events(&["a", "b"]));
    let before = (
        storage.segment_count(STREAM),
        storage.completed_segments(STREAM),
    );

    for wrong in [
        Offset::ZERO,
        Offset::new(1),
        Offset::new(3),
        Offset::new(u64::MAX),
    ] {
        let error = storage
            .append_batch(STREAM, events(&["x"]), wrong, Some(head), true)
            .unwrap_err();
        assert!(
            matches!(error, StorageError::UnexpectedOffset { stream, expected, actual }
                if stream == STREAM && expected == wrong && actual == next),
            "{error}"
        );
    }
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
    assert_eq!(
        storage.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap(),
        events(&["a", "b"])
    );
    assert_eq!(
        (
            storage.segment_count(STREAM),
            storage.completed_segments(STREAM)
        ),
        before
    );
}

#[test]
fn wrong_prev_hash_is_refused_and_changes_nothing() {
    let mut storage = MemoryStorage::new();
    let (next, head) = append(&mut storage, STREAM, events(&["a"]));
    let bogus = ChainHash::from_bytes([9; 32]);
    for wrong in [None, Some(bogus)] {
        let error = storage
            .append_batch(STREAM, events(&["x"]), next, wrong, false)
            .unwrap_err();
        assert!(
            matches!(error, StorageError::PrevHashMismatch { stream, offset, expected, actual }
                if stream == STREAM && offset == next && expected == wrong && actual == Some(head)),
            "{error}"
        );
    }
    // A new stream must start with no prev hash.
    let error = storage
        .append_batch(
            StreamId::new(2),
            events(&["x"]),
            Offset::ZERO,
            Some(head),
            false,
        )
        .unwrap_err();
    assert!(matches!(error, StorageError::PrevHashMismatch { .. }));
    assert_eq!(storage.segment_count(StreamId::new(2)), 0);
    assert_eq!(storage.streams(), vec![STREAM]);
    assert!(storage.holds(STREAM));
    assert!(
        !storage.holds(StreamId::new(2)),
        "a failed first append holds nothing"
    );
    assert_eq!(
        storage
            .read_from(STREAM, Offset::ZERO, u64::MAX)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn oversized_event_is_refused_and_changes_nothing() {
    let mut storage = MemoryStorage::new();
    let batch = vec![
        Bytes::from_static(b"fine"),
        Bytes::from(vec![0u8; crate::MAX_PAYLOAD_LEN + 1]),
    ];
    let error = storage
        .append_batch(STREAM, batch, Offset::ZERO, None, false)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PayloadTooLarge { offset, .. } if offset == Offset::new(1)),
        "{error}"
    );
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), None);
    assert_eq!(storage.segment_count(STREAM), 0);
    assert!(storage
        .read_from(STREAM, Offset::ZERO, u64::MAX)
        .unwrap()
        .is_empty());
}

#[test]
#[should_panic(expected = "cannot append empty batch")]
fn empty_batch_panics() {
    let mut storage = MemoryStorage::new();
    let _ = storage.append_batch(STREAM, Vec::new(), Offset::ZERO, None, false);
}

#[test]
fn unknown_stream_reads_empty_and_has_no_segments() {
    let mut storage = MemoryStorage::new();
    assert!(storage
        .read_from(STREAM, Offset::ZERO, 100)
        .unwrap()
        .is_empty());
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), None);
    assert_eq!(storage.segment_count(STREAM), 0);
    assert!(storage.completed_segments(STREAM).is_empty());
    assert!(storage.flush_indexes().is_ok());
    let report = storage.verify_stream(STREAM).unwrap();
    assert_eq!(report.records_checked, 0);
    assert_eq!(report.head, None);
}

#[test]
fn reads_honour_max_bytes_and_always_make_progress() {
    let mut storage = MemoryStorage::new();
    append(
        &mut storage,
        STREAM,
        events(&["aaaa", "bbbb", "cccc", "dddd"]),
    );
    // Stops once the budget is reached, including the event that reaches it.
    assert_eq!(storage.read_from(STREAM, Offset::ZERO, 8).unwrap().len(), 2);
    assert_eq!(storage.read_from(STREAM, Offset::ZERO, 9).unwrap().len(), 3);
    // At least one event, even with no budget, even when it alone exceeds the budget.
    assert_eq!(
        storage.read_from(STREAM, Offset::new(1), 0).unwrap(),
        events(&["bbbb"])
    );
    assert_eq!(
        storage.read_from(STREAM, Offset::new(3), 1).unwrap(),
        events(&["dddd"])
    );
    // Past the end: empty.
    assert!(storage
        .read_from(STREAM, Offset::new(4), 100)
        .unwrap()
        .is_empty());
    assert!(storage
        .read_from(STREAM, Offset::new(u64::MAX), 100)
        .unwrap()
        .is_empty());
}

#[test]
fn rotation_matches_the_contract_rule() {
    let record = RECORD_OVERHEAD as u64 + 10;
    let mut storage = MemoryStorage::with_max_segment_size(3 * record);
    assert_eq!(storage.max_segment_size(), 3 * record);
    let ten = || vec![Bytes::from(vec![7u8; 10]); 2];
    append(&mut storage, STREAM, ten()); // 2 records: below the limit
    assert_eq!(storage.segment_count(STREAM), 1);
    append(&mut storage, STREAM, ten()); // 4 records: reaches it after the batch, rotates
    assert_eq!(storage.segment_count(STREAM), 2);
    assert_eq!(storage.completed_segments(STREAM), vec![0]);
    append(&mut storage, STREAM, ten());
    append(&mut storage, STREAM, ten());
    assert_eq!(storage.segment_count(STREAM), 3);
    assert_eq!(storage.completed_segments(STREAM), vec![0, 1]);
    assert_eq!(
        storage
            .read_from(STREAM, Offset::ZERO, u64::MAX)
            .unwrap()
            .len(),
        8
    );
    assert_eq!(storage.verify_stream(STREAM).unwrap().segments_checked, 3);
}

#[test]
fn streams_are_independent() {
    let mut storage = MemoryStorage::new();
    let (_, head_a) = append(&mut storage, StreamId::new(1), events(&["same"]));
    let (_, head_b) = append(&mut storage, StreamId::new(2), events(&["same"]));
    assert_eq!(head_a, head_b, "a stream's chain does not depend on its id");
    append(&mut storage, StreamId::new(2), events(&["more"]));
    assert_eq!(
        storage
            .read_from(StreamId::new(1), Offset::ZERO, u64::MAX)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(storage.streams(), vec![StreamId::new(1), StreamId::new(2)]);
}

#[test]
fn verify_reports_what_it_checked() {
    let mut storage = MemoryStorage::new();
    let (_, head) = append(&mut storage, STREAM, events(&["ab", "cde"]));
    let report = storage.verify_stream(STREAM).unwrap();
    assert_eq!(report.stream, STREAM);
    assert_eq!(report.records_checked, 2);
    assert_eq!(report.restart_records_checked, 0);
    assert_eq!(report.segments_checked, 1);
    assert_eq!(report.bytes_checked, 2 * RECORD_OVERHEAD as u64 + 5);
    assert_eq!(report.head, Some(head));
    assert_eq!(report.next_offset, Offset::new(2));
}

/// Replaces the frame at `offset` by `make(frame)`, then checks that reading from 0 and from
/// `offset`, and verifying, all fail with a corruption error naming the stream and `offset`.
fn assert_tamper_detected(make: impl Fn(Bytes) -> Bytes, tampered_offset: u64) {
    let mut storage = MemoryStorage::new();
    append(
        &mut storage,
        STREAM,
        events(&["alpha", "beta", "gamma", "delta"]),
    );
    let offset = Offset::new(tampered_offset);
    let frame = storage.frame(STREAM, offset).unwrap();
    assert!(storage.replace_frame(STREAM, offset, make(frame)));

    for from in [Offset::ZERO, offset] {
        let error = storage.read_from(STREAM, from, u64::MAX).unwrap_err();
        assert!(error.is_corruption(), "{error}");
        let text = error.to_string();
        assert!(text.contains(&format!("offset {offset}")), "{text}");
        assert!(text.contains("stream 1"), "{text}");
    }
    // Reads that stop before the damage still succeed.
    if tampered_offset > 0 {
        let before = storage.read_from(STREAM, Offset::ZERO, 1).unwrap();
        assert_eq!(before, events(&["alpha"]));
    }
    assert!(storage.verify_stream(STREAM).unwrap_err().is_corruption());
}

#[test]
fn flipped_byte_is_detected() {
    for tampered in 0..4 {
        for at in [0, 5, 10, 20, 50, 53] {
            assert_tamper_detected(
                |frame| {
                    let mut bytes = frame.to_vec();
                    bytes[at] ^= 0x40;
                    Bytes::from(bytes)
                },
                tampered,
            );
        }
    }
}

#[test]
fn rewritten_record_with_valid_crc_is_detected() {
    // A capable tamperer re-encodes the record with a new payload and a valid CRC.
    for tampered in 0..4 {
        assert_tamper_detected(
            |frame| {
                let (record, _) = Record::from_bytes(&frame).unwrap();
                Record::new(
                    record.offset(),
                    record.prev_hash(),
                    Bytes::from_static(b"forged"),
                )
                .to_bytes()
            },
            tampered,
        );
    }
}

#[test]
fn swapped_record_is_detected() {
    assert_tamper_detected(
        |_| Record::new(Offset::new(3), None, Bytes::from_static(b"moved")).to_bytes(),
        2,
    );
}

#[test]
fn read_of_last_page_does_not_walk_the_stream() {
    // A damaged first record must not affect a read that starts after it: the read starts from
    // the previous record's recorded hash, not from the first record.
    let mut storage = MemoryStorage::new();
    append(&mut storage, STREAM, events(&["first", "second", "third"]));
    assert!(storage.replace_frame(STREAM, Offset::ZERO, Bytes::from_static(b"junk")));
    assert_eq!(
        storage.read_from(STREAM, Offset::new(1), u64::MAX).unwrap(),
        events(&["second", "third"])
    );
    assert!(storage.read_from(STREAM, Offset::ZERO, u64::MAX).is_err());
}

#[test]
fn memory_storage_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MemoryStorage>();
}

/// A model of a stream: the events appended, in order.
#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: u64,
        batch: Vec<Vec<u8>>,
    },
    Read {
        stream: u64,
        from: u64,
        max_bytes: u64,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..3, proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8))
            .prop_map(|(stream, batch)| Op::Append { stream, batch }),
        2 => (0u64..3, 0u64..40, 0u64..200)
            .prop_map(|(stream, from, max_bytes)| Op::Read { stream, from, max_bytes }),
    ]
}

proptest! {
    #[test]
    fn prop_model(ops in proptest::collection::vec(arb_op(), 1..40), segment in 1u64..600) {
        let mut storage = MemoryStorage::with_max_segment_size(segment);
        let mut model: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
        for op in ops {
            match op {
                Op::Append { stream, batch } => {
                    let events = model.entry(stream).or_default();
                    let id = StreamId::new(stream);
                    let head = storage.latest_chain_hash(id).unwrap();
                    let expected = Offset::new(events.len() as u64);
                    let (next, hash) = storage
                        .append_batch(id, batch.iter().cloned().map(Bytes::from).collect(), expected, head, false)
                        .unwrap();
                    events.extend(batch.iter().cloned());
                    prop_assert_eq!(next.as_u64(), events.len() as u64);
                    prop_assert_eq!(storage.latest_chain_hash(id).unwrap(), Some(hash));
                }
                Op::Read { stream, from, max_bytes } => {
                    let events = model.get(&stream).cloned().unwrap_or_default();
                    let read = storage.read_from(StreamId::new(stream), Offset::new(from), max_bytes).unwrap();
                    let rest: &[Vec<u8>] = events.get(from as usize..).unwrap_or_default();
                    // A prefix of what is there, in order.
                    prop_assert!(read.len() <= rest.len());
                    for (got, want) in read.iter().zip(rest) {
                        prop_assert_eq!(got.as_ref(), want.as_slice());
                    }
                    // At least one event when any exists; stops once max_bytes is reached.
                    prop_assert_eq!(read.is_empty(), rest.is_empty());
                    let total: u64 = read.iter().map(|e| e.len() as u64).sum();
                    if read.len() < rest.len() {
                        prop_assert!(total >= max_bytes);
                    }
                    let without_last: u64 = total - read.last().map_or(0, |e| e.len() as u64);
                    prop_assert!(without_last < max_bytes || read.len() <= 1);
                }
            }
        }
        for (stream, events) in &model {
            let id = StreamId::new(*stream);
            let all = storage.read_from(id, Offset::ZERO, u64::MAX).unwrap();
            prop_assert_eq!(all.len(), events.len());
            let report = storage.verify_stream(id).unwrap();
            prop_assert_eq!(report.next_offset.as_u64(), events.len() as u64);
            prop_assert_eq!(report.head, storage.latest_chain_hash(id).unwrap());
            prop_assert_eq!(storage.segment_count(id), storage.completed_segments(id).len() + 1);
        }
    }
}

/// Batch boundaries are marked in the frames as on disk: every frame of a batch but its last
/// continues it, and each batch of one call keeps its own end.
#[test]
fn frames_mark_each_batch_end_as_on_disk() {
    let mut storage = MemoryStorage::new();
    append(&mut storage, STREAM, events(&["a", "b"]));
    storage
        .append_batches(
            STREAM,
            events(&["c", "d", "e", "f"]),
            &[1, 3],
            Offset::new(2),
            storage.latest_chain_hash(STREAM).unwrap(),
            false,
        )
        .unwrap();
    let continues: Vec<bool> = (0..6)
        .map(|offset| {
            let frame = storage.frame(STREAM, Offset::new(offset)).unwrap();
            Record::from_bytes(&frame).unwrap().0.continues_batch()
        })
        .collect();
    assert_eq!(continues, [true, false, false, true, true, false]);
}
