//! The synced-batch probe of `append_fsync`: the least time a design can take here that hashes
//! a batch on two threads and then writes and syncs it, measured as one sequence of real steps
//! (a helper thread handed half the batch, the caller hashing the other half, the join, one
//! `write` and one `fdatasync` of as many bytes as the batch's frames) rather than as a sum of
//! parts measured apart. Nothing else a store does (encoding, checksums, links, copies,
//! bookkeeping) is in it, so it bounds any store from below.
//!
//! The helper either sleeps between batches (woken through a condition variable, as a helper
//! that does not hold a core while the caller waits for the device must be) or spins (holding
//! the second core through every sync): the difference is what a wake-up costs here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::{sha256_each, SyncedFile};

/// How the probe's helper waits for the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperWait {
    /// On a condition variable: each batch pays the wake-up.
    Sleeps,
    /// Spinning on an atomic: no wake-up, a core held.
    Spins,
}

struct Shared {
    /// Batches posted so far; the helper hashes its half of each once.
    posted: AtomicU64,
    /// Batches whose second half the helper has hashed.
    done: AtomicU64,
    stop: AtomicBool,
    wait: HelperWait,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A batch hashed on two threads, then written and synced; see the module docs.
pub struct HashThenSync {
    shared: Arc<Shared>,
    first_half: Vec<Bytes>,
    frames: SyncedFile,
    helper: Option<JoinHandle<()>>,
}

impl HashThenSync {
    /// A probe for `batch`, writing to `path`; its helper thread waits as `wait` says.
    ///
    /// # Panics
    ///
    /// If the file cannot be created or the helper thread cannot start (a bench setup
    /// failure, like the other benches' `expect`s).
    #[must_use]
    pub fn new(path: &std::path::Path, batch: &[Bytes], wait: HelperWait) -> Self {
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            wait,
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let (first_half, second_half) = batch.split_at(batch.len() / 2);
        let second_half = second_half.to_vec();
        let worker = Arc::clone(&shared);
        let helper = std::thread::Builder::new()
            .name("hash-then-sync".into())
            .spawn(move || help(&worker, &second_half))
            .expect("start the probe's helper");
        Self {
            shared,
            first_half: first_half.to_vec(),
            frames: SyncedFile::frame_sized(path, batch),
            helper: Some(helper),
        }
    }

    /// One batch: hand the helper its half, hash ours, wait for it, then write and sync.
    pub fn append(&mut self) {
        let batch = {
            let _guard = self
                .shared
                .lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.posted.fetch_add(1, Ordering::AcqRel) + 1
        };
        if self.shared.wait == HelperWait::Sleeps {
            self.shared.wake.notify_one();
        }
        sha256_each(&self.first_half);
        while self.shared.done.load(Ordering::Acquire) < batch {
            std::hint::spin_loop();
        }
        self.frames.append();
    }
}

impl Drop for HashThenSync {
    fn drop(&mut self) {
        {
            let _guard = self
                .shared
                .lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.stop.store(true, Ordering::Release);
        }
        self.shared.wake.notify_one();
        if let Some(helper) = self.helper.take() {
            let _ = helper.join();
        }
    }
}

/// The helper: hashes `half` once per posted batch, waiting as `shared.wait` says.
fn help(shared: &Shared, half: &[Bytes]) {
    let mut hashed = 0;
    loop {
        match shared.wait {
            HelperWait::Spins => {
                while shared.posted.load(Ordering::Acquire) == hashed {
                    if shared.stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::hint::spin_loop();
                }
            }
            HelperWait::Sleeps => {
                let mut guard = shared.lock.lock().unwrap_or_else(PoisonError::into_inner);
                while shared.posted.load(Ordering::Acquire) == hashed {
                    if shared.stop.load(Ordering::Acquire) {
                        return;
                    }
                    guard = shared
                        .wake
                        .wait(guard)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        hashed += 1;
        sha256_each(half);
        shared.done.store(hashed, Ordering::Release);
    }
}
