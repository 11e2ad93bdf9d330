//! Group commit: many appenders, one sync.
//!
//! Under [`crate::Durability::GroupCommit`], an append writes its batch without a sync while it
//! holds the store's write lock, and takes a *write sequence number* there (1, 2, 3, ... in write
//! order). It then calls `SyncCoordinator::wait_durable` with that number, outside the lock:
//!
//! - if a finished sync already covers the number, it returns at once;
//! - if no sync is running, the caller becomes the *leader*: it runs the sync, which makes
//!   everything written so far durable and reports the highest number it covered;
//! - otherwise it waits on a condition variable for the running sync, then checks again
//!   (a sync that started before its batch was written does not cover it; the next one will).
//!
//! So every caller returns only after a sync that covers its own batch, and batches written
//! while a sync runs share the next one. A failed sync latches the coordinator: the leader gets
//! the error, waiting and later callers get [`Error::Poisoned`] (what is durable is unknown
//! until the store is reopened and recovers).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct SyncState {
    /// Highest write sequence number a finished sync covers.
    durable_seq: u64,
    /// A leader is running a sync.
    leader_active: bool,
    /// A sync failed (or its leader panicked): no more syncs.
    failed: bool,
}

/// Coordinates the syncs of concurrent appenders. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct SyncCoordinator {
    state: Mutex<SyncState>,
    synced: Condvar,
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
            self.coordinator.synced.notify_all();
        }
    }
}

impl SyncCoordinator {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        // The state is three plain fields updated together; a panic elsewhere cannot leave
        // them half-written, so a poisoned mutex is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True once a sync has failed.
    pub(crate) fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Highest write sequence number known durable.
    #[cfg(test)]
    pub(crate) fn durable_seq(&self) -> u64 {
        self.lock().durable_seq
    }

    /// Returns once a sync covering write number `seq` has finished, running one if none is
    /// running. `sync` makes everything written so far durable and returns the highest write
    /// number it covered (read *after* it started, so it is at least `seq`).
    pub(crate) fn wait_durable(
        &self,
        seq: u64,
        mut sync: impl FnMut() -> Result<u64>,
    ) -> Result<()> {
        let mut state = self.lock();
        loop {
            if state.durable_seq >= seq {
                return Ok(());
            }
            if state.failed {
                return Err(Error::Poisoned);
            }
            if state.leader_active {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
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
            state = self.lock();
            state.leader_active = false;
            match outcome {
                Ok(covered) => {
                    // Wake the followers before any panic, so none waits forever.
                    let covers = covered >= seq;
                    if covers {
                        state.durable_seq = state.durable_seq.max(covered);
                    } else {
                        state.failed = true;
                    }
                    self.synced.notify_all();
                    drop(state);
                    assert!(covers, "a sync must cover its leader's write");
                    state = self.lock();
                }
                Err(error) => {
                    state.failed = true;
                    self.synced.notify_all();
                    return Err(error);
                }
            }
        }
    }

    /// Latches the coordinator failed (an append failed mid-write).
    pub(crate) fn poison(&self) {
        let mut state = self.lock();
        state.failed = true;
        self.synced.notify_all();
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
