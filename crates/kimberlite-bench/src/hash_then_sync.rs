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
//!
//! [`ProbeWork::HashAndLink`] adds the one step a hash *chain* cannot do without and cannot
//! spread over threads: each record's hash finished with its predecessor's, in order (our
//! format's `UnlinkedHash::new` on both threads, then `UnlinkedHash::link` record after
//! record, at least one SHA-256 block each). The caller links its half while the helper may
//! still be hashing the other, then links the helper's half. Still no framing, checksum or
//! copy: it bounds any hash-chained log from below, as far as one straightforward split of
//! the work can show.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use kimberlite_crypto::{ChainHash, UnlinkedHash};
use kimberlite_types::{Offset, RecordKind};

use crate::{sha256_each, SyncedFile};

/// What the probe does with each record before it writes the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeWork {
    /// SHA-256 of each payload, on two threads.
    HashOnly,
    /// The chain hash of each record (all but its link on two threads), then each linked to
    /// its predecessor in order.
    HashAndLink,
}

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
    work: ProbeWork,
    /// The helper's unlinked hashes of its half of the latest batch (`HashAndLink`).
    unlinked: Mutex<Vec<UnlinkedHash>>,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A batch hashed on two threads, then written and synced; see the module docs.
pub struct HashThenSync {
    shared: Arc<Shared>,
    first_half: Vec<Bytes>,
    frames: SyncedFile,
    helper: Option<JoinHandle<()>>,
    /// The chain's head (`HashAndLink`), and the offset of the next batch's first record.
    head: Option<ChainHash>,
    next_offset: u64,
    batch_len: u64,
}

impl HashThenSync {
    /// A probe for `batch`, writing to `path`, doing `work` per record; its helper thread
    /// waits as `wait` says.
    ///
    /// # Panics
    ///
    /// If the file cannot be created or the helper thread cannot start (a bench setup
    /// failure, like the other benches' `expect`s).
    #[must_use]
    pub fn new(path: &std::path::Path, batch: &[Bytes], wait: HelperWait, work: ProbeWork) -> Self {
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            wait,
            work,
            unlinked: Mutex::new(Vec::new()),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let (first_half, second_half) = batch.split_at(batch.len() / 2);
        let second_half = second_half.to_vec();
        let second_starts = first_half.len() as u64;
        let batch_len = batch.len() as u64;
        let worker = Arc::clone(&shared);
        let helper = std::thread::Builder::new()
            .name("hash-then-sync".into())
            .spawn(move || help(&worker, &second_half, second_starts, batch_len))
            .expect("start the probe's helper");
        Self {
            shared,
            first_half: first_half.to_vec(),
            frames: SyncedFile::frame_sized(path, batch),
            helper: Some(helper),
            head: None,
            next_offset: 0,
            batch_len,
        }
    }

    /// The chain hash of the last record linked (`HashAndLink`; `None` before the first batch
    /// or with `HashOnly`).
    #[must_use]
    pub fn head(&self) -> Option<ChainHash> {
        self.head
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
        match self.shared.work {
            ProbeWork::HashOnly => sha256_each(&self.first_half),
            ProbeWork::HashAndLink => {
                let ours = unlinked_hashes(&self.first_half, self.next_offset);
                self.head = link_all(ours, self.head);
            }
        }
        while self.shared.done.load(Ordering::Acquire) < batch {
            std::hint::spin_loop();
        }
        if self.shared.work == ProbeWork::HashAndLink {
            let theirs = std::mem::take(
                &mut *self
                    .shared
                    .unlinked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            self.head = link_all(theirs, self.head);
        }
        self.next_offset += self.batch_len;
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

/// Each record's chain hash but its link, for `payloads` from offset `first` on.
pub(crate) fn unlinked_hashes(payloads: &[Bytes], first: u64) -> Vec<UnlinkedHash> {
    (first..)
        .zip(payloads)
        .map(|(offset, payload)| UnlinkedHash::new(Offset::new(offset), RecordKind::Data, payload))
        .collect()
}

/// Links `unlinked` in order after `head`; returns the new head.
pub(crate) fn link_all(
    unlinked: Vec<UnlinkedHash>,
    mut head: Option<ChainHash>,
) -> Option<ChainHash> {
    for hash in unlinked {
        head = Some(hash.link(head.as_ref()));
    }
    head
}

/// The helper: does its `half` of each posted batch once (its records start `starts` into
/// the batch, of `batch_len`), waiting as `shared.wait` says.
fn help(shared: &Shared, half: &[Bytes], starts: u64, batch_len: u64) {
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
        match shared.work {
            ProbeWork::HashOnly => sha256_each(half),
            ProbeWork::HashAndLink => {
                let unlinked = unlinked_hashes(half, hashed * batch_len + starts);
                *shared
                    .unlinked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = unlinked;
            }
        }
        hashed += 1;
        shared.done.store(hashed, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chain_hash_each, events};

    /// The linking probe computes the real chain: after two batches its head is the chain hash
    /// of the 2,000 records one by one, whichever way the helper waits.
    #[test]
    fn the_linking_probe_computes_the_chain_of_its_batches() {
        let dir = tempfile::tempdir().unwrap();
        let batch = events(0, 300);
        let twice: Vec<Bytes> = batch.iter().chain(&batch).cloned().collect();
        for wait in [HelperWait::Sleeps, HelperWait::Spins] {
            let mut probe = HashThenSync::new(
                &dir.path().join(format!("{wait:?}.bin")),
                &batch,
                wait,
                ProbeWork::HashAndLink,
            );
            probe.append();
            assert_eq!(probe.head(), chain_hash_each(&batch, 0));
            probe.append();
            assert_eq!(probe.head(), chain_hash_each(&twice, 0), "{wait:?}");
        }
        let mut plain = HashThenSync::new(
            &dir.path().join("plain.bin"),
            &batch,
            HelperWait::Sleeps,
            ProbeWork::HashOnly,
        );
        plain.append();
        assert_eq!(plain.head(), None, "hashing only links nothing");
    }
}
