//! Group commit: many appenders, one sync.
//!
//! Under [`crate::Durability::GroupCommit`], appends are written without a sync under the
//! store's write lock (by the leader of their writer-queue group, `writers.rs`), each
//! taking a *write sequence number* there (1, 2, 3, ... in write order). The group's leader
//! then calls `SyncCoordinator::wait_durable` with the group's last number, outside the lock
//! (as does [`crate::Kimberlite::sync`]):
//!
//! - if a finished sync already covers the number, it returns at once;
//! - if no sync is running, the caller becomes the *leader*: it runs the sync, which makes
//!   everything written so far durable and reports the highest number it covered;
//! - otherwise it parks until the running sync ends, then checks again (a sync that started
//!   before its batch was written does not cover it; the next one will).
//!
//! So every caller returns only after a sync that covers its own batch, and batches written
//! while a sync runs share the next one. A failed sync latches the coordinator: the leader gets
//! the error, waiting and later callers get [`Error::Poisoned`] (what is durable is unknown
//! until the store is reopened and recovers).
//!
//! Waiting callers park one by one (`std::thread::park`) rather than on one condition
//! variable: when a sync ends, the leader unparks exactly the waiters it covered, plus one
//! waiter it did not cover, which becomes the next leader. The rest sleep on. A condition
//! variable's `notify_all` would wake every waiter to fight for the mutex, half of them only
//! to sleep again (the figure is in `docs/PERFORMANCE.md`, group commit). Behind the writer
//! queue, at most one group leader waits here at a time, beside callers of
//! `Kimberlite::sync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

use crate::error::{Error, Result};

/// A caller parked until a sync covers its write.
#[derive(Debug)]
struct Waiter {
    seq: u64,
    thread: Thread,
}

#[derive(Debug, Default)]
struct SyncState {
    /// A leader is running a sync.
    leader_active: bool,
    /// A sync failed (or its leader panicked): no more syncs.
    failed: bool,
    /// Parked callers, in the order they parked. Each thread is here at most once.
    waiters: Vec<Waiter>,
}

impl SyncState {
    /// After a sync ends (`leader_active` is false again), with `durable_seq` what is now
    /// durable: unparks every waiter it made durable, and the first one it did not, to lead
    /// the next sync. After a failure, unparks everyone, to collect the error.
    fn wake_after_sync(&mut self, durable_seq: u64) {
        let failed = self.failed;
        let mut next_leader_woken = false;
        self.waiters.retain(|waiter| {
            if failed || waiter.seq <= durable_seq {
                waiter.thread.unpark();
                return false;
            }
            if !next_leader_woken {
                waiter.thread.unpark();
                next_leader_woken = true;
            }
            true
        });
    }

    /// Registers the calling thread as waiting for `seq` (once, however often it wakes).
    fn park_me(&mut self, seq: u64) {
        let me = thread::current();
        self.waiters.retain(|waiter| waiter.thread.id() != me.id());
        self.waiters.push(Waiter { seq, thread: me });
    }
}

/// Coordinates the syncs of concurrent appenders. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct SyncCoordinator {
    state: Mutex<SyncState>,
    /// Highest write sequence number a finished sync covers. Only raised while `state` is
    /// locked; read without the lock, so that a woken waiter the sync covered returns without
    /// queueing for the mutex behind the others.
    durable_seq: AtomicU64,
}

/// Marks the coordinator failed if a leader unwinds out of its sync, so followers wake up
/// instead of waiting forever for a sync nobody runs.
struct LeaderGuard<'a> {
    coordinator: &'a SyncCoordinator,
    finished: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.coordinator.lock();
            state.leader_active = false;
            state.failed = true;
            state.wake_after_sync(self.coordinator.durable_seq());
        }
    }
}

impl SyncCoordinator {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        // The state is plain fields updated together; a panic elsewhere cannot leave them
        // half-written, so a poisoned mutex is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True once a sync has failed.
    pub(crate) fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Highest write sequence number known durable.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Returns once a sync covering write number `seq` has finished, running one if none is
    /// running. `sync` makes everything written so far durable and returns the highest write
    /// number it covered (read *after* it started, so it is at least `seq`).
    pub(crate) fn wait_durable(
        &self,
        seq: u64,
        mut sync: impl FnMut() -> Result<u64>,
    ) -> Result<()> {
        loop {
            if self.durable_seq() >= seq {
                return Ok(());
            }
            let mut state = self.lock();
            if self.durable_seq() >= seq {
                return Ok(());
            }
            if state.failed {
                return Err(Error::Poisoned);
            }
            if state.leader_active {
                state.park_me(seq);
                drop(state);
                // An unpark that comes before this park is not lost (the thread keeps its
                // token), and a spurious return just checks again.
                thread::park();
                continue;
            }
            state.leader_active = true;
            drop(state);
            let mut guard = LeaderGuard {
                coordinator: self,
                finished: false,
            };
            let outcome = sync();
            guard.finished = true;
            let mut state = self.lock();
            state.leader_active = false;
            match outcome {
                Ok(covered) => {
                    // Wake the followers before any panic, so none waits forever.
                    let covers = covered >= seq;
                    if covers {
                        self.durable_seq.fetch_max(covered, Ordering::AcqRel);
                    } else {
                        state.failed = true;
                    }
                    state.wake_after_sync(self.durable_seq());
                    drop(state);
                    assert!(covers, "a sync must cover its leader's write");
                }
                Err(error) => {
                    state.failed = true;
                    state.wake_after_sync(self.durable_seq());
                    return Err(error);
                }
            }
        }
    }

    /// Latches the coordinator failed (an append failed mid-write).
    pub(crate) fn poison(&self) {
        let mut state = self.lock();
        state.failed = true;
        state.wake_after_sync(self.durable_seq());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn covered_writes_return_without_syncing() {
        let coordinator = SyncCoordinator::default();
        coordinator.wait_durable(3, || Ok(5)).unwrap();
        assert_eq!(coordinator.durable_seq(), 5);
        coordinator
            .wait_durable(4, || panic!("already durable"))
            .unwrap();
    }

    #[test]
    fn a_failed_sync_poisons_everyone() {
        let coordinator = SyncCoordinator::default();
        let error = coordinator
            .wait_durable(1, || Err(Error::Poisoned))
            .unwrap_err();
        assert!(matches!(error, Error::Poisoned));
        assert!(coordinator.failed());
        assert!(matches!(
            coordinator.wait_durable(1, || Ok(1)),
            Err(Error::Poisoned)
        ));
    }

    #[test]
    #[should_panic(expected = "a sync must cover its leader's write")]
    fn a_sync_that_misses_its_leader_panics() {
        let coordinator = SyncCoordinator::default();
        let _ = coordinator.wait_durable(7, || Ok(6));
    }

    #[test]
    fn a_sync_that_misses_its_leader_poisons() {
        let coordinator = Arc::new(SyncCoordinator::default());
        let leader = Arc::clone(&coordinator);
        let result = std::thread::spawn(move || leader.wait_durable(7, || Ok(6))).join();
        assert!(result.is_err());
        assert!(coordinator.failed());
    }

    #[test]
    fn a_panicking_leader_releases_followers() {
        let coordinator = Arc::new(SyncCoordinator::default());
        let leader = Arc::clone(&coordinator);
        let result =
            std::thread::spawn(move || leader.wait_durable(1, || panic!("disk on fire"))).join();
        assert!(result.is_err());
        assert!(matches!(
            coordinator.wait_durable(1, || Ok(1)),
            Err(Error::Poisoned)
        ));
    }

    /// Runs `followers` threads that each wait for write number `2 + i` while this thread's
    /// leader sync (for write 1) runs `sync`, which starts once every follower is parked.
    fn with_parked_followers(
        followers: u64,
        sync: impl FnOnce() -> Result<u64> + Send,
        follower_sync: impl Fn() -> Result<u64> + Sync,
    ) -> (Result<()>, Vec<Result<()>>) {
        let coordinator = SyncCoordinator::default();
        std::thread::scope(|scope| {
            let coordinator = &coordinator;
            let mut sync = Some(sync);
            let leader = scope.spawn(move || {
                coordinator.wait_durable(1, || {
                    while coordinator.lock().waiters.len() < followers as usize {
                        std::thread::yield_now();
                    }
                    sync.take().expect("the leader syncs once")()
                })
            });
            while !coordinator.lock().leader_active {
                std::thread::yield_now();
            }
            let handles: Vec<_> = (0..followers)
                .map(|i| {
                    let follower_sync = &follower_sync;
                    scope.spawn(move || coordinator.wait_durable(2 + i, follower_sync))
                })
                .collect();
            let results = handles
                .into_iter()
                .map(|handle| handle.join().expect("a follower panicked"))
                .collect();
            (leader.join().expect("the leader panicked"), results)
        })
    }

    #[test]
    fn a_failed_sync_releases_parked_followers_with_poisoned() {
        let (leader, followers) = with_parked_followers(
            5,
            || Err(Error::Poisoned),
            || panic!("no follower may sync after a failure"),
        );
        assert!(leader.is_err());
        assert_eq!(followers.len(), 5);
        assert!(followers
            .iter()
            .all(|result| matches!(result, Err(Error::Poisoned))));
    }

    #[test]
    fn followers_a_sync_did_not_cover_elect_one_leader_for_the_next() {
        let next_syncs = AtomicU64::new(0);
        let (leader, followers) = with_parked_followers(
            6,
            || Ok(1),
            || {
                next_syncs.fetch_add(1, Ordering::SeqCst);
                Ok(7)
            },
        );
        leader.unwrap();
        assert!(followers.iter().all(Result::is_ok));
        assert_eq!(next_syncs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn followers_a_sync_covered_return_without_another_sync() {
        let (leader, followers) =
            with_parked_followers(4, || Ok(5), || panic!("everyone was covered"));
        leader.unwrap();
        assert!(followers.iter().all(Result::is_ok));
    }

    #[test]
    fn concurrent_waiters_share_syncs() {
        let coordinator = Arc::new(SyncCoordinator::default());
        let written = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (coordinator, written, syncs) = (
                    Arc::clone(&coordinator),
                    Arc::clone(&written),
                    Arc::clone(&syncs),
                );
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let seq = written.fetch_add(1, Ordering::SeqCst) + 1;
                        coordinator
                            .wait_durable(seq, || {
                                syncs.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                Ok(written.load(Ordering::SeqCst))
                            })
                            .unwrap();
                        assert!(coordinator.durable_seq() >= seq);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(coordinator.durable_seq(), 400);
        assert!(syncs.load(Ordering::SeqCst) <= 400);
    }
}
