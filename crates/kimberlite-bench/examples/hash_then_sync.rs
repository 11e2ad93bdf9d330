//! A probe of synced batches, not a bench: the least time a design can take here that hashes
//! a batch on two threads and then writes and syncs it, measured as one sequence of real steps
//! (a helper thread handed half the batch, the caller hashing the other half, the join, one
//! `write` and one `fdatasync` of as many bytes as the batch's frames) rather than as a sum of
//! parts measured apart. Nothing else a store does (encoding, checksums, links, copies,
//! bookkeeping) is in it. The bound the targets rely on is `append_fsync`'s work bound
//! (`kimberlite_bench::work_bound`); this probe shows what one straightforward split of the
//! work reaches, and what a wake-up costs.
//!
//! The helper either sleeps between batches (woken through a condition variable, as a helper
//! that does not hold a core while the caller waits for the device must be) or spins (holding
//! the second core through every sync): the difference is what a wake-up costs here.
//!
//! [`ProbeWork::HashAndLink`] adds the one step a hash *chain* cannot do without and cannot
//! spread over threads: each record's hash finished with its predecessor's, in order (our
//! format's `UnlinkedHash::new` on both threads, then `UnlinkedHash::link` record after
//! record, at least one SHA-256 block each). The caller links its half while the helper may
//! still be hashing the other, then links the helper's half.
//!
//! Each variant is interleaved with `append_fsync`'s baseline (`write` + `fdatasync` of the
//! payload bytes) and printed as a ratio to it, like the bench's `RESULT` line.
//!
//! Run: `cargo run --release -p kimberlite-bench --example hash_then_sync [rounds]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use kimberlite_bench::{
    events, interleaved, link_all, sha256_each, unlinked_hashes, SyncedFile, BATCH_EVENTS,
};
use kimberlite_crypto::{ChainHash, UnlinkedHash};

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
    /// or with `HashOnly`); read by the test that checks the probe computes the real chain.
    #[cfg(test)]
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

/// Runs the four variants, each interleaved with the baseline, and prints their ratios.
fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(200, |rounds| rounds.parse().expect("rounds: a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut raw = SyncedFile::payloads(&dir.path().join("raw.bin"), &batch);
    let variants = [
        (
            HelperWait::Sleeps,
            ProbeWork::HashOnly,
            "hash only, helper sleeping",
        ),
        (
            HelperWait::Spins,
            ProbeWork::HashOnly,
            "hash only, helper spinning",
        ),
        (
            HelperWait::Sleeps,
            ProbeWork::HashAndLink,
            "chain linked, helper sleeping",
        ),
        (
            HelperWait::Spins,
            ProbeWork::HashAndLink,
            "chain linked, helper spinning",
        ),
    ];
    for (index, (wait, work, name)) in variants.into_iter().enumerate() {
        let path = dir.path().join(format!("probe-{index}.bin"));
        let mut probe = HashThenSync::new(&path, &batch, wait, work);
        let (probed, base) = interleaved(rounds, || probe.append(), || raw.append());
        println!(
            "{name}: {probed:.2?} per batch against write+fdatasync {base:.2?}: ratio {:.3}",
            base.as_secs_f64() / probed.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kimberlite_bench::chain_hash_each;

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
