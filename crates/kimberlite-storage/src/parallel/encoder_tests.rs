use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{CompressionKind, Offset, RecordKind};

use super::*;
use crate::encode::{encode_chunk, LZ4_GIVE_UP_AFTER, LZ4_PROBE_EVERY};
use crate::record::Record;

fn events(count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("event {i} {}", "x".repeat(i % 300))))
        .collect()
}

/// Whether LZ4 shrinks `payload` (the rule of `record::encode_unlinked`).
fn lz4_shrinks(payload: &[u8]) -> bool {
    lz4_flex::block::compress(payload).len() < payload.len()
}

/// The codec each of `events` is tried with, as the module docs state the rule: per chunk of
/// `CHUNK_EVENTS`, LZ4 until `LZ4_GIVE_UP_AFTER` records in a row did not shrink, then only
/// every `LZ4_PROBE_EVERY`th record until one shrinks.
fn codecs(events: &[Bytes], asked: CompressionKind) -> Vec<CompressionKind> {
    let mut out = Vec::new();
    for chunk in events.chunks(CHUNK_EVENTS) {
        let (mut misses, mut skipped) = (0, 0);
        for event in chunk {
            let try_lz4 = asked == CompressionKind::Lz4
                && (misses < LZ4_GIVE_UP_AFTER || skipped + 1 == LZ4_PROBE_EVERY);
            if misses >= LZ4_GIVE_UP_AFTER {
                skipped = if try_lz4 { 0 } else { skipped + 1 };
            }
            let shrank = try_lz4 && lz4_shrinks(event);
            misses = if shrank { 0 } else { misses + 1 };
            if shrank {
                skipped = 0;
            }
            out.push(if try_lz4 {
                CompressionKind::Lz4
            } else {
                CompressionKind::None
            });
        }
    }
    out
}

/// Frames of `events` appended after `head` as `Record::encode_into` writes them one by
/// one, each with the codec [`codecs`] says, with a restart record (payload "cp") before every
/// offset in `restart records`; and the last data record's chain hash.
fn reference(
    events: &[Bytes],
    plan: &BatchPlan,
    head: Option<ChainHash>,
) -> (Vec<u8>, Option<ChainHash>) {
    let mut out = Vec::new();
    let mut prev = head;
    let codecs = codecs(events, plan.compression);
    let last = plan.first_offset + events.len() as u64 - 1;
    for ((offset, event), codec) in (plan.first_offset..).zip(events).zip(codecs) {
        if let Some((_, payload)) = plan.restart_records.iter().find(|(at, _)| *at == offset) {
            Record::with_compression(
                Offset::new(offset),
                prev,
                RecordKind::Restart,
                CompressionKind::None,
                payload.clone(),
            )
            .with_batch_continues(true)
            .encode_into(&mut out);
        }
        let ends_batch = offset == last || plan.batch_ends.contains(&offset);
        let record = Record::with_compression(
            Offset::new(offset),
            prev,
            RecordKind::Data,
            codec,
            event.clone(),
        )
        .with_batch_continues(!ends_batch);
        record.encode_into(&mut out);
        prev = Some(record.compute_hash());
    }
    (out, prev)
}

/// Takes and links every chunk of `job` in order, as the appender does.
fn link_all(job: &BatchJob, head: Option<ChainHash>) -> (Vec<u8>, Option<ChainHash>) {
    link_all_keeping(job, head, &mut SpareChunks::default())
}

/// [`link_all`], putting each chunk's memory in `spares` once written, as the appender does.
fn link_all_keeping(
    job: &BatchJob,
    head: Option<ChainHash>,
    spares: &mut SpareChunks,
) -> (Vec<u8>, Option<ChainHash>) {
    let mut out = Vec::new();
    let mut prev = head;
    for index in 0..job.chunk_count() {
        let mut chunk = job.take(index);
        prev = chunk.link(prev);
        out.extend_from_slice(&chunk.bytes);
        spares.put(chunk);
    }
    (out, prev)
}

fn plan(first_offset: u64, head: Option<ChainHash>, compression: CompressionKind) -> BatchPlan {
    let restart_records = (first_offset..first_offset + 4_000)
        .filter(|offset| *offset > 0 && offset % 50 == 0)
        .map(|offset| (offset, Bytes::from_static(b"cp")))
        .collect();
    // Writers' batches of 1, 2, 3, ... events, back to back, as group commit merges them.
    let batch_ends = (1..100u64)
        .map(|n| first_offset + n * (n + 1) / 2 - 1)
        .collect();
    BatchPlan {
        first_offset,
        head_present: head.is_some(),
        compression,
        restart_records,
        batch_ends,
    }
}

/// Whoever encodes which chunk (the caller alone, the helper, both racing), the frames and
/// the head are those of encoding the records one by one.
#[test]
fn a_job_gives_the_frames_of_the_records_one_by_one_whoever_encodes() {
    let head = Some(ChainHash::compute(
        None,
        Offset::ZERO,
        RecordKind::Data,
        b"h",
    ));
    let helper = shared_helper();
    for (first, head) in [(7, head), (0, None)] {
        for compression in [CompressionKind::None, CompressionKind::Lz4] {
            for count in [1, 63, 64, 65, 128, 129, 1_000, 3_001] {
                let plan = plan(first, head, compression);
                let expected = reference(&events(count), &plan, head);

                let alone = BatchJob::new(events(count), plan.clone());
                assert_eq!(link_all(&alone, head), expected, "caller alone, {count}");

                let job = Arc::new(BatchJob::new(events(count), plan.clone()));
                helper.post(&job);
                assert_eq!(link_all(&job, head), expected, "with the helper, {count}");
                helper.clear(&job);

                let job = Arc::new(BatchJob::new(events(count), plan.clone()));
                let racer = {
                    let job = Arc::clone(&job);
                    std::thread::spawn(move || BoardJob::run(&*job))
                };
                assert_eq!(link_all(&job, head), expected, "racing a thread, {count}");
                racer.join().unwrap();
            }
        }
    }
}

#[test]
fn chunks_split_the_events_in_order_and_are_handed_out_once() {
    let plan = plan(0, None, CompressionKind::None);
    let job = BatchJob::new(events(130), plan.clone());
    assert_eq!(job.chunk_count(), 3);
    assert_eq!(job.events(), events(130).as_slice());
    let first = job.take(0);
    // Offset 50 has a restart record: 64 data frames and one restart record.
    assert_eq!(first.frames.len(), 65);
    assert_eq!(first.frames.iter().filter(|f| f.is_restart).count(), 1);
    assert_eq!(first.frames[51].offset, 50);
    assert!(first.frames[50].is_restart);
    assert!(job.take(0).frames.is_empty(), "a chunk is handed out once");
    assert_eq!(job.take(2).frames.len(), 2);
    assert!(job.take(3).frames.is_empty(), "past the end");
    assert_eq!(encode_chunk(&events(130), &plan, 1).frames.len(), 65);
}

#[test]
#[should_panic(expected = "prev_hash present")]
fn linking_a_chunk_after_the_wrong_head_panics() {
    let plan = plan(5, None, CompressionKind::None);
    let mut chunk = encode_chunk(&events(3), &plan, 0);
    let _ = chunk.link(Some(ChainHash::from_bytes([1; 32])));
}

/// Chunks encoded into memory left by earlier batches (other events, another codec, more
/// or fewer frames) are byte for byte those encoded afresh.
#[test]
fn reused_chunk_memory_gives_the_same_frames() {
    let head = Some(ChainHash::from_bytes([9; 32]));
    let mut spares = SpareChunks::default();
    let helper = shared_helper();
    for (round, count) in [3_001, 1, 700, 64, 2_000, 129].into_iter().enumerate() {
        let compression = if round % 2 == 0 {
            CompressionKind::Lz4
        } else {
            CompressionKind::None
        };
        let plan = plan(11, head, compression);
        let expected = reference(&events(count), &plan, head);
        let job = Arc::new(BatchJob::reusing(events(count), plan, &mut spares));
        helper.post(&job);
        let linked = link_all_keeping(&job, head, &mut spares);
        helper.clear(&job);
        assert_eq!(linked, expected, "round {round}, {count} events");
        assert!(!spares.is_empty(), "round {round}");
    }
}

#[test]
fn spare_chunks_keep_at_most_their_bound() {
    let mut spares = SpareChunks::default();
    let chunk = |bytes: usize| EncodedChunk {
        bytes: Vec::with_capacity(bytes),
        ..EncodedChunk::default()
    };
    spares.put(chunk(MAX_SPARE_BYTES + 1));
    assert!(
        spares.is_empty(),
        "a chunk over the bound alone is not kept"
    );
    for _ in 0..10 {
        spares.put(chunk(MAX_SPARE_BYTES / 4));
    }
    assert_eq!(spares.len(), 4);
    assert!(spares.bytes() >= MAX_SPARE_BYTES / 4 * 4 && spares.bytes() <= MAX_SPARE_BYTES);
    let taken = spares.take();
    assert_eq!(spares.len(), 3);
    assert!(spares.bytes() + taken.bytes.capacity() <= MAX_SPARE_BYTES);
    spares.put(taken);
    assert_eq!(spares.len(), 4);
    // Empty: a fresh chunk, and nothing goes negative.
    let mut empty = SpareChunks::default();
    assert_eq!(empty.take().bytes.capacity(), 0);
    assert_eq!(empty.bytes(), 0);
}

/// Incompressible events: LZ4 is tried on the first `LZ4_GIVE_UP_AFTER` of each chunk and
/// then on every `LZ4_PROBE_EVERY`th; a compressible event met on a probe starts trying
/// every event again; compressible events are always tried.
#[test]
fn lz4_is_given_up_in_a_chunk_of_incompressible_events_and_probed() {
    let random = |i: usize| {
        let bytes: Vec<u8> = (0..200)
            .map(|j| (((i * 7_919 + j * 104_729) % 251) ^ ((j * j) % 256)) as u8)
            .collect();
        Bytes::from(bytes)
    };
    assert!(!lz4_shrinks(&random(3)));
    let text = |i: usize| Bytes::from(format!("{i} {}", "abc".repeat(60)));
    assert!(lz4_shrinks(&text(3)));
    // 40 incompressible, then compressible from 40 on.
    let events: Vec<Bytes> = (0..CHUNK_EVENTS + 10)
        .map(|i| if i < 40 { random(i) } else { text(i) })
        .collect();
    let tried: Vec<usize> = codecs(&events, CompressionKind::Lz4)
        .iter()
        .enumerate()
        .filter(|(_, codec)| **codec == CompressionKind::Lz4)
        .map(|(i, _)| i)
        .collect();
    // First 8 tried; probes at 23 and 39 miss; the next probe, 55, shrinks: every event is
    // tried from there, and the next chunk starts trying again.
    let mut expected: Vec<usize> = (0..8)
        .chain([23, 39])
        .chain(55..CHUNK_EVENTS + 10)
        .collect();
    expected.dedup();
    assert_eq!(tried, expected);
    // And the encoder follows that rule: its frames are the reference's.
    let plan = BatchPlan {
        first_offset: 0,
        head_present: false,
        compression: CompressionKind::Lz4,
        restart_records: Vec::new(),
        batch_ends: Vec::new(),
    };
    let job = BatchJob::new(events.clone(), plan.clone());
    assert_eq!(link_all(&job, None), reference(&events, &plan, None));
    let stored_compressed = (0..job.chunk_count())
        .flat_map(|index| encode_chunk(&events, &plan, index).frames)
        .filter(|frame| frame.unlinked.compressed)
        .count();
    assert_eq!(stored_compressed, (55..CHUNK_EVENTS + 10).count());
    // Nothing is skipped without LZ4 asked, and compressible events are always tried.
    assert!(codecs(&events, CompressionKind::None)
        .iter()
        .all(|codec| *codec == CompressionKind::None));
    let texts: Vec<Bytes> = (0..200).map(text).collect();
    assert!(codecs(&texts, CompressionKind::Lz4)
        .iter()
        .all(|codec| *codec == CompressionKind::Lz4));
}

/// [`Encoder::encode`] hands over the chunks of the one-thread reference, with the shared
/// helper or without, and holds the helper only once a batch was large enough to use it.
#[test]
fn the_encoder_gives_the_reference_frames_with_or_without_the_helper() {
    let head = Some(ChainHash::from_bytes([3; 32]));
    for hash_ahead in [false, true] {
        let mut encoder = Encoder::default();
        for count in [1, MIN_EVENTS - 1, MIN_EVENTS, 1_000] {
            let plan = plan(9, head, CompressionKind::Lz4);
            let expected = reference(&events(count), &plan, head);
            let mut out = Vec::new();
            let mut prev = head;
            encoder
                .encode(events(count), plan, hash_ahead, None, |chunk| {
                    prev = chunk.link(prev);
                    out.extend_from_slice(&chunk.bytes);
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!((out, prev), expected, "hash_ahead {hash_ahead}, {count}");
        }
        assert_eq!(encoder.holds_helper(), hash_ahead);
    }
}

/// An error from the caller's hand-off stops the batch there.
#[test]
fn the_encoder_stops_at_the_first_error() {
    let mut encoder = Encoder::default();
    let mut chunks = 0;
    let result = encoder.encode(
        events(1_000),
        plan(0, None, CompressionKind::None),
        true,
        None,
        |_| {
            chunks += 1;
            if chunks == 3 {
                Err("full")
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(result, Err("full"));
    assert_eq!(chunks, 3);
}
