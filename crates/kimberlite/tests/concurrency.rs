//! 8 threads append to 4 streams with `ExpectedOffset::Any` under group commit: every event is
//! present exactly once, offsets are dense, chains verify.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, Offset};

const THREADS: usize = 8;
const STREAMS: usize = 4;
const BATCHES_PER_THREAD: usize = 40;
const EVENTS_PER_BATCH: usize = 3;

fn hammer(store: &Kimberlite) {
    let ids: Vec<_> = (0..STREAMS)
        .map(|s| store.create_stream(&format!("stream-{s}")).unwrap())
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, ids, barrier) = (store.clone(), ids.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for b in 0..BATCHES_PER_THREAD {
                    let id = ids[(t + b) % STREAMS];
                    let batch: Vec<String> = (0..EVENTS_PER_BATCH)
                        .map(|e| format!("t{t}-b{b}-e{e}"))
                        .collect();
                    let result = store.append(id, batch, ExpectedOffset::Any).unwrap();
                    assert_eq!(
                        result.next_offset.as_u64() - result.first_offset.as_u64(),
                        EVENTS_PER_BATCH as u64
                    );
                    // Acknowledged means visible to readers.
                    assert!(store.head(id).unwrap().next_offset >= result.next_offset);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    check(store);
}

fn check(store: &Kimberlite) {
    let mut seen = HashSet::new();
    let mut total = 0;
    for info in store.list_streams() {
        let mut expected_offset = 0;
        let mut last_batch = None::<String>;
        for event in store.events(info.id, Offset::ZERO) {
            let event = event.unwrap();
            assert_eq!(event.offset.as_u64(), expected_offset, "offsets are dense");
            expected_offset += 1;
            let text = String::from_utf8(event.payload.to_vec()).unwrap();
            // A batch's events are contiguous and in order.
            let (batch, e) = text.rsplit_once("-e").unwrap();
            if e == "0" {
                last_batch = Some(batch.to_owned());
            } else {
                assert_eq!(last_batch.as_deref(), Some(batch));
            }
            assert!(seen.insert(text), "every event exactly once");
            total += 1;
        }
        assert_eq!(info.head.next_offset.as_u64(), expected_offset);
    }
    assert_eq!(total, THREADS * BATCHES_PER_THREAD * EVENTS_PER_BATCH);
    let report = store.verify_all().unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records_checked(), total as u64 + STREAMS as u64);
}

#[test]
fn group_commit_in_memory() {
    let config = Config::default().durability(Durability::GroupCommit);
    hammer(&Kimberlite::in_memory_with(config));
}

#[test]
fn group_commit_on_disk_survives_reopen() {
    let temp = tempfile::tempdir().unwrap();
    let config = Config::default().durability(Durability::GroupCommit);
    {
        let store = Kimberlite::open_with(temp.path(), config.clone()).unwrap();
        hammer(&store);
    }
    check(&Kimberlite::open_with(temp.path(), config).unwrap());
}

/// Threads racing for the same offsets with `ExpectedOffset::Exact` under group commit: the
/// writer queue makes each caller's append with its own check, so exactly one caller wins
/// each offset, the others get `OffsetConflict` naming the offset they found, and nobody
/// waits forever.
#[test]
fn group_commit_checks_each_callers_expected_offset() {
    let temp = tempfile::tempdir().unwrap();
    let config = Config::default().durability(Durability::GroupCommit);
    let store = Kimberlite::open_with(temp.path(), config).unwrap();
    let id = store.create_stream("contended").unwrap();
    const ROUNDS: u64 = 30;
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut won = Vec::new();
                for offset in 0..ROUNDS {
                    barrier.wait();
                    let result = store.append(
                        id,
                        [format!("offset {offset} by thread {t}")],
                        ExpectedOffset::Exact(Offset::new(offset)),
                    );
                    match result {
                        Ok(appended) => {
                            assert_eq!(appended.first_offset.as_u64(), offset);
                            won.push(offset);
                        }
                        Err(kimberlite::Error::OffsetConflict { actual, .. }) => {
                            assert_eq!(
                                actual.as_u64(),
                                offset + 1,
                                "the winner's append came first"
                            );
                        }
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                    barrier.wait();
                }
                won
            })
        })
        .collect();
    let mut winners: Vec<u64> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    winners.sort_unstable();
    assert_eq!(
        winners,
        (0..ROUNDS).collect::<Vec<_>>(),
        "one winner per offset"
    );
    assert_eq!(store.head(id).unwrap().next_offset.as_u64(), ROUNDS);
    assert!(store.verify_all().unwrap().is_intact());
}

/// A bad append in a group (an empty batch, an unknown stream) fails only its caller.
#[test]
fn group_commit_fails_only_the_caller_whose_append_is_bad() {
    let config = Config::default().durability(Durability::GroupCommit);
    let store = Kimberlite::in_memory_with(config);
    let id = store.create_stream("mixed").unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                match t % 4 {
                    0 => store
                        .append(id, Vec::<String>::new(), ExpectedOffset::Any)
                        .map(|_| ()),
                    1 => store
                        .append(
                            kimberlite::StreamId::new(9_999),
                            ["nowhere"],
                            ExpectedOffset::Any,
                        )
                        .map(|_| ()),
                    _ => store
                        .append(id, [format!("good {t}")], ExpectedOffset::Any)
                        .map(|_| ()),
                }
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (t, result) in results.iter().enumerate() {
        match t % 4 {
            0 => assert!(matches!(result, Err(kimberlite::Error::EmptyBatch { .. }))),
            1 => assert!(matches!(
                result,
                Err(kimberlite::Error::UnknownStream { .. })
            )),
            _ => assert!(result.is_ok(), "{result:?}"),
        }
    }
    assert_eq!(
        store.head(id).unwrap().next_offset.as_u64(),
        THREADS as u64 / 2
    );
}

/// Readers share the store's read lock (and its verify threads, or their own when those are
/// busy) while an appender writes: every read returns exactly the events at its offsets.
#[test]
fn readers_run_side_by_side_with_an_appender() {
    let temp = tempfile::tempdir().unwrap();
    let config = Config::default()
        .durability(Durability::Unsynced)
        .max_segment_size(64 * 1024);
    let store = Kimberlite::open_with(temp.path(), config).unwrap();
    let id = store.create_stream("shared").unwrap();
    let text = |i: u64| format!("event {i:06} {}", "x".repeat((i % 200) as usize));
    let batch = |first: u64| (first..first + 100).map(text).collect::<Vec<_>>();
    store.append(id, batch(0), ExpectedOffset::Any).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        for reader in 0..4u64 {
            let (store, done) = (&store, Arc::clone(&done));
            scope.spawn(move || {
                let mut round = 0u64;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || round < 20 {
                    let end = store.head(id).unwrap().next_offset.as_u64();
                    let from = (reader * 37 + round * 101) % end;
                    let events = store.read(id, Offset::new(from), 8_192).unwrap();
                    assert!(!events.is_empty());
                    for event in events {
                        assert_eq!(event.payload, text(event.offset.as_u64()).as_bytes());
                    }
                    round += 1;
                }
            });
        }
        for first in (100..3_000).step_by(100) {
            store.append(id, batch(first), ExpectedOffset::Any).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert_eq!(store.head(id).unwrap().next_offset.as_u64(), 3_000);
    assert!(store.verify_all().unwrap().is_intact());
}

/// Verifications walk in pieces, letting appends in between: verifying a stream long enough
/// for several pieces (and for its tree to be recomputed on a thread of its own) while
/// another thread keeps appending to it and to a second stream (rotating segments) neither
/// deadlocks nor reports damage, and a last verification covers everything appended.
#[test]
fn verifications_run_while_an_appender_writes() {
    let temp = tempfile::tempdir().unwrap();
    // Small segments: the appender's events complete segments while walks pass through.
    let config = Config::default()
        .durability(Durability::GroupCommit)
        .max_segment_size(64 * 1024);
    let store = Kimberlite::open_with(temp.path(), config).unwrap();
    let (busy, other) = (
        store.create_stream("busy").unwrap(),
        store.create_stream("other").unwrap(),
    );
    let text = |i: u64| format!("event {i:06}");
    for first in (0..40_000).step_by(2_000) {
        let batch: Vec<String> = (first..first + 2_000).map(text).collect();
        store.append(busy, batch, ExpectedOffset::Any).unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let appended = std::thread::scope(|scope| {
        let appender = scope.spawn(|| {
            let mut appended = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let next = 40_000 + appended;
                store
                    .append(busy, [text(next)], ExpectedOffset::Any)
                    .unwrap();
                store
                    .append(other, [text(next)], ExpectedOffset::Any)
                    .unwrap();
                appended += 1;
            }
            appended
        });
        for _ in 0..3 {
            let report = store.verify(busy).unwrap();
            assert!(report.is_intact(), "{:?}", report.first_problem());
            assert!(report.records_checked() >= 40_000);
            assert!(store.verify_all().unwrap().is_intact());
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        appender.join().unwrap()
    });
    let report = store.verify(busy).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.records_checked(), 40_000 + appended);
    assert!(report.segments_checked() > 15, "{report:?}");
    assert_eq!(store.head(other).unwrap().next_offset.as_u64(), appended);
}

/// Under group commit a leader writes the queued appends for one stream that accept any
/// offset as one batch: each caller must still get the offsets of its own events and the
/// chain head after its own last event, as if appended alone. Threads append 1 to 3 events
/// each time (one thread 12, too many to join a run), some with `ExpectedOffset::Any` (these
/// join runs), some with an exact offset that may conflict, two with an event too large (each
/// fails alone); then every result is
/// checked against the stream as read back and its chain recomputed.
fn callers_get_their_own_results(store: &Kimberlite) {
    use kimberlite::ChainHash;
    use kimberlite_types::RecordKind;

    let id = store.create_stream("runs").unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                barrier.wait();
                if t < 2 {
                    let huge = vec![7u8; kimberlite::MAX_EVENT_BYTES + 1];
                    let refused = store.append(id, [huge], ExpectedOffset::Any);
                    assert!(
                        matches!(refused, Err(kimberlite::Error::Storage { .. })),
                        "{refused:?}"
                    );
                }
                for b in 0..30usize {
                    // Thread 7 appends batches too large to join a run, between the others'.
                    let events = if t == 7 { 12 } else { 1 + (t + b) % 3 };
                    let batch: Vec<String> =
                        (0..events).map(|e| format!("t{t}-b{b}-e{e}")).collect();
                    let expected = if b % 5 == 4 {
                        ExpectedOffset::Exact(store.head(id).unwrap().next_offset)
                    } else {
                        ExpectedOffset::Any
                    };
                    match store.append(id, batch.clone(), expected) {
                        Ok(appended) => mine.push((appended, batch)),
                        Err(kimberlite::Error::OffsetConflict { .. }) => {
                            assert_ne!(expected, ExpectedOffset::Any);
                        }
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
                mine
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let events: Vec<_> = store
        .events(id, Offset::ZERO)
        .map(|event| event.unwrap().payload)
        .collect();
    let mut chain = Vec::with_capacity(events.len());
    for (offset, payload) in events.iter().enumerate() {
        let prev = chain.last();
        let offset = Offset::new(offset as u64);
        chain.push(ChainHash::compute(prev, offset, RecordKind::Data, payload));
    }
    let acknowledged: usize = results.iter().map(|(_, batch)| batch.len()).sum();
    assert_eq!(
        acknowledged,
        events.len(),
        "every event was acknowledged once"
    );
    for (appended, batch) in &results {
        let (first, next) = (
            appended.first_offset.as_u64(),
            appended.next_offset.as_u64(),
        );
        assert_eq!(next - first, batch.len() as u64);
        let stored: Vec<&[u8]> = events[first as usize..next as usize]
            .iter()
            .map(|payload| payload.as_ref())
            .collect();
        let sent: Vec<&[u8]> = batch.iter().map(String::as_bytes).collect();
        assert_eq!(
            stored, sent,
            "offsets {first}..{next} hold the caller's events"
        );
        assert_eq!(
            appended.head,
            chain[next as usize - 1],
            "the head after the caller's last event"
        );
    }
    assert!(store.verify_all().unwrap().is_intact());
}

#[test]
fn group_commit_hands_each_caller_its_own_offsets_and_head_in_memory() {
    let config = Config::default().durability(Durability::GroupCommit);
    callers_get_their_own_results(&Kimberlite::in_memory_with(config));
}

#[test]
fn group_commit_hands_each_caller_its_own_offsets_and_head_on_disk() {
    let temp = tempfile::tempdir().unwrap();
    let config = Config::default().durability(Durability::GroupCommit);
    callers_get_their_own_results(&Kimberlite::open_with(temp.path(), config).unwrap());
}
