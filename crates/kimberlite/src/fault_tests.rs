//! Fail-stop and group commit over a backend that fails on command.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use super::*;

#[test]
fn a_failed_append_poisons_the_store_but_reads_go_on() {
    let (store, faults) = Kimberlite::faulty(Config::default());
    let id = store.create_stream("audit").unwrap();
    store.append(id, ["a"], ExpectedOffset::Any).unwrap();
    faults.fail_appends.store(true, Ordering::SeqCst);
    let error = store.append(id, ["b"], ExpectedOffset::Any).unwrap_err();
    assert!(matches!(error, Error::Storage { .. }), "{error}");
    faults.fail_appends.store(false, Ordering::SeqCst);
    // Latched: no more writes until reopen, even though the backend works again.
    assert!(matches!(
        store.append(id, ["c"], ExpectedOffset::Any),
        Err(Error::Poisoned)
    ));
    assert!(matches!(store.create_stream("other"), Err(Error::Poisoned)));
    assert_eq!(store.read(id, Offset::ZERO, u64::MAX).unwrap().len(), 1);
    assert_eq!(store.head(id).unwrap().next_offset, Offset::new(1));
    assert!(store.verify_all().unwrap().is_intact());
}

#[test]
fn a_failed_create_stream_poisons_the_store() {
    let (store, faults) = Kimberlite::faulty(Config::default());
    faults.fail_appends.store(true, Ordering::SeqCst);
    assert!(store.create_stream("audit").is_err());
    assert_eq!(
        store.stream("audit"),
        None,
        "a failed registration names nothing"
    );
    faults.fail_appends.store(false, Ordering::SeqCst);
    assert!(matches!(store.create_stream("audit"), Err(Error::Poisoned)));
}

#[test]
fn a_failed_group_sync_fails_its_appends_and_poisons() {
    let config = Config::default().durability(Durability::GroupCommit);
    let (store, faults) = Kimberlite::faulty(config);
    let id = store.create_stream("audit").unwrap();
    store.append(id, ["durable"], ExpectedOffset::Any).unwrap();
    faults.fail_flushes.store(true, Ordering::SeqCst);
    let error = store.append(id, ["lost"], ExpectedOffset::Any).unwrap_err();
    assert!(matches!(error, Error::Storage { .. }), "{error}");
    // The unsynced event was never acknowledged, so readers never see it.
    let events = store.read(id, Offset::ZERO, u64::MAX).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(store.head(id).unwrap().next_offset, Offset::new(1));
    faults.fail_flushes.store(false, Ordering::SeqCst);
    assert!(matches!(
        store.append(id, ["later"], ExpectedOffset::Any),
        Err(Error::Poisoned)
    ));
    assert!(matches!(store.sync(), Err(Error::Poisoned)));
}

/// What a service reports as readiness and metrics: the fail-stop latch and the sync count.
#[test]
fn the_store_reports_its_syncs_and_its_fail_stop_latch() {
    let config = Config::default().durability(Durability::GroupCommit);
    let (store, faults) = Kimberlite::faulty(config);
    let id = store.create_stream("audit").unwrap();
    let before = store.syncs_completed();
    assert!(!store.has_failed());
    for event in ["a", "b", "c"] {
        store.append(id, [event], ExpectedOffset::Any).unwrap();
    }
    // One thread: each append waits for its own sync.
    assert_eq!(store.syncs_completed(), before + 3);
    faults.fail_flushes.store(true, Ordering::SeqCst);
    assert!(store.append(id, ["d"], ExpectedOffset::Any).is_err());
    assert!(store.has_failed());
    assert_eq!(
        store.syncs_completed(),
        before + 3,
        "a failed sync is not counted"
    );

    let (each, _) = Kimberlite::faulty(Config::default());
    let id = each.create_stream("audit").unwrap();
    let before = each.syncs_completed();
    each.append(id, ["a"], ExpectedOffset::Any).unwrap();
    assert_eq!(each.syncs_completed(), before + 1);
}

#[test]
fn concurrent_appenders_share_syncs() {
    const APPENDS: usize = 25;
    let config = Config::default().durability(Durability::GroupCommit);
    let (store, faults) = Kimberlite::faulty(config);
    faults.flush_micros.store(500, Ordering::SeqCst);
    let ids: Vec<_> = (0..4)
        .map(|s| store.create_stream(&format!("s{s}")).unwrap())
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, ids, barrier) = (store.clone(), ids.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for a in 0..APPENDS {
                    let id = ids[(t + a) % ids.len()];
                    let result = store.append(id, [format!("{t}-{a}")], ExpectedOffset::Any);
                    let result = result.unwrap();
                    // Acknowledged means durable means visible.
                    assert!(store.head(id).unwrap().next_offset >= result.next_offset);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let flushes = faults.flushes.load(Ordering::SeqCst);
    let appends = (THREADS * APPENDS) as u64;
    assert!(flushes < appends, "{flushes} syncs for {appends} appends");
    let events: u64 = store
        .list_streams()
        .iter()
        .map(|s| s.head.next_offset.as_u64())
        .sum();
    assert_eq!(events, appends);
}

#[test]
fn sync_each_append_never_needs_a_flush() {
    let (store, faults) = Kimberlite::faulty(Config::default());
    let id = store.create_stream("audit").unwrap();
    store.append(id, ["a"], ExpectedOffset::Any).unwrap();
    assert_eq!(faults.flushes.load(Ordering::SeqCst), 0);
    store.sync().unwrap();
    assert_eq!(faults.flushes.load(Ordering::SeqCst), 1);
}

/// Appenders of one group-commit store in the tests below.
const THREADS: usize = 8;

/// A fresh group-commit store whose syncs take 3 ms, and [`THREADS`] threads that each append
/// one event (`"{round}-{thread}"`) at once; `fault` is injected 1 ms later, while the first
/// group's sync is under way and the other appends queue behind it. Returns the store, the
/// stream and the threads, not yet joined.
fn appends_queued_behind_a_slow_sync(
    round: usize,
    fault: impl FnOnce(&crate::testing::Faults),
) -> (
    Kimberlite,
    StreamId,
    Vec<std::thread::JoinHandle<Result<AppendResult>>>,
) {
    let config = Config::default().durability(Durability::GroupCommit);
    let (store, faults) = Kimberlite::faulty(config);
    let id = store.create_stream("audit").unwrap();
    faults.flush_micros.store(3_000, Ordering::SeqCst);
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                store.append(id, [format!("{round}-{t}")], ExpectedOffset::Any)
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(std::time::Duration::from_micros(1_000));
    fault(&faults);
    (store, id, threads)
}

/// A failed group sync with many callers in the group: not one of them may be told its append
/// is durable, wherever the leader's own request sits in the group. The first sync is slow and
/// succeeds while the others queue behind it; the syncs after it fail.
#[test]
fn a_failed_group_sync_acknowledges_nobody_in_the_group() {
    for round in 0..50 {
        let (store, id, threads) = appends_queued_behind_a_slow_sync(round, |faults| {
            faults.fail_flushes.store(true, Ordering::SeqCst);
        });
        let durable = |store: &Kimberlite| store.head(id).unwrap().next_offset;
        for thread in threads {
            if let Ok(appended) = thread.join().unwrap() {
                assert!(
                    durable(&store) >= appended.next_offset,
                    "round {round}: acknowledged {} but only {} is durable",
                    appended.next_offset,
                    durable(&store)
                );
            }
        }
    }
}

/// A write that fails under group commit, while the appends queued behind a slow sync are
/// written together as one batch: the caller whose append the failed write held first gets
/// the error, every other caller of that group `Poisoned`, nobody is acknowledged past what is
/// durable, and the log keeps exactly the acknowledged events.
#[test]
fn a_failed_group_write_fails_the_group_and_poisons() {
    for round in 0..20 {
        let (store, id, threads) = appends_queued_behind_a_slow_sync(round, |faults| {
            faults.fail_appends.store(true, Ordering::SeqCst);
        });
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let acknowledged = results.iter().filter(|r| r.is_ok()).count() as u64;
        let failed_writes = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Storage { .. })))
            .count();
        let poisoned = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Poisoned)))
            .count();
        assert_eq!(
            acknowledged as usize + failed_writes + poisoned,
            THREADS,
            "round {round}: {results:?}"
        );
        if acknowledged < THREADS as u64 {
            assert_eq!(failed_writes, 1, "round {round}: {results:?}");
        }
        assert_eq!(store.head(id).unwrap().next_offset.as_u64(), acknowledged);
        let events = store.read(id, Offset::ZERO, u64::MAX).unwrap();
        assert_eq!(events.len() as u64, acknowledged, "round {round}");
    }
}

/// Under group commit a batch reaches the Merkle tree only once its sync finished: the tree
/// files never hold a leaf a crash can take from the log, so their length is evidence of
/// durable events (module `lost`).
#[test]
fn a_batch_whose_group_sync_failed_never_reaches_the_tree() {
    let config = Config::default().durability(Durability::GroupCommit);
    let (store, faults) = Kimberlite::faulty(config);
    let id = store.create_stream("audit").unwrap();
    store.append(id, ["durable"], ExpectedOffset::Any).unwrap();
    faults.fail_flushes.store(true, Ordering::SeqCst);
    assert!(store.append(id, ["lost"], ExpectedOffset::Any).is_err());
    let state = store.read_state();
    let trees = state.merkle.wait(id).unwrap();
    assert_eq!(trees.size(id), 1);
}
