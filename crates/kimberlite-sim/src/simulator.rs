//! The simulator: random workloads with crashes, restarts and faults, checked against a model.
//!
//! One run is one `u64` seed. The seed picks the store's configuration (segment size, restart
//! record and index intervals, compression), the fault probabilities, and every operation:
//! appends of random batches (1–12 events; one in a hundred 128–512 events, which the store
//! hashes on its helper thread and writes in several chunks) with and without fsync, reads at
//! random offsets and budgets, `flush_indexes`, `flush`, full verifications (whole, or in
//! pieces: `verify_op`), clean restarts and crashes (a quarter of them followed by opens on a
//! read-only mount: `read_only_op`). The same seed replays the same run exactly.
//!
//! # What is checked (SPEC.md section 4)
//!
//! After every operation, against a model of each stream (`log`: what the store must show;
//! `durable_len`: how much of it a crash may not take; `uncertain`: a batch whose append failed
//! and that may or may not have reached the media):
//!
//! 1. **Parity**: every acknowledged append returns the offset and chain hash that
//!    `MemoryStorage` returns for the same batches; segment counts match until the first crash
//!    (after a crash cuts a batch in half, batch boundaries, and so rotation points, differ).
//! 2. **Nothing acknowledged is lost**: after a crash, every stream still holds at least its
//!    `durable_len` events.
//! 3. **Nothing wrong is returned**: every read returns exactly the model's events at that
//!    offset, with the `max_bytes` rule; an error is allowed only if a fault was injected during
//!    that very call (a flipped bit on read).
//! 4. **A failed append changes nothing visible until restart**, and after restart the log is
//!    the acknowledged events plus the failed batch whole or not at all; a crash leaves no
//!    batch in part (the log ends on a batch end).
//! 5. **Offsets are dense and only move forward**: each append returns exactly
//!    `expected + batch length`.
//!
//! And fail-stop: once an append failed on an injected fault, every further append must fail
//! until the store is reopened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kimberlite_storage::{
    MemoryStorage, Storage, StorageBackend, StorageConfig, StorageError, StoreBackend,
};
use kimberlite_types::{CompressionKind, Offset, StreamId};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fs::{FaultConfig, SimFileSystem};
use crate::model::{check_read, check_survivors, Check, StreamModel};
use crate::outcome::{RunStats, Violation};

mod read_only_op;
mod verify_op;

/// The on-disk engine over the simulated file system.
pub type SimStorage = Storage<SimFileSystem>;

/// How to run seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimOptions {
    /// Operations per seed.
    pub ops: usize,
    /// Whether seeds may inject faults (crash losses happen regardless).
    pub faults: bool,
    /// Test-only breakage of the file system: syncs report success without persisting. A
    /// correct checker must report violations with it.
    pub lie_on_sync: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            ops: 2_000,
            faults: true,
            lie_on_sync: false,
        }
    }
}

const STORE_DIR: &str = "/store";

/// One seed's run.
struct Run {
    step: usize,
    options: SimOptions,
    rng: ChaCha8Rng,
    fs: SimFileSystem,
    config: StorageConfig,
    storage: Option<SimStorage>,
    mirror: MemoryStorage,
    models: BTreeMap<StreamId, StreamModel>,
    streams: Vec<StreamId>,
    /// False once batch boundaries on disk may differ from the mirror's (a crash or a failed
    /// batch cut one), after which segment counts are no longer comparable.
    segment_parity: bool,
    poisoned: bool,
    /// Detectable faults injected before the store was last opened.
    faults_at_open: u64,
    /// Read flips injected before the store was last opened.
    flips_at_open: u64,
    /// A verification walked in pieces, paused between operations (`verify_op`).
    paused_verify: Option<kimberlite_storage::VerifyResume>,
    stats: RunStats,
}

/// Runs one seed; returns its figures or the first violation.
pub fn run_seed(seed: u64, options: &SimOptions) -> Result<RunStats, Violation> {
    let mut run = Run::new(seed, *options);
    let result = run.execute();
    run.stats.faults = run.fs.counts();
    run.stats.seeds = 1;
    result.map_err(|message| Violation {
        seed,
        step: run.step,
        ops: options.ops,
        message,
        whole_store: false,
    })?;
    Ok(run.stats)
}

impl Run {
    fn new(seed: u64, options: SimOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let faulty = options.faults && rng.random_bool(0.7);
        let faults = FaultConfig {
            read_flip_probability: if faulty {
                rng.random_range(0.0..0.01)
            } else {
                0.0
            },
            sync_fail_probability: if faulty {
                rng.random_range(0.0..0.01)
            } else {
                0.0
            },
            write_fail_probability: if faulty {
                rng.random_range(0.0..0.01)
            } else {
                0.0
            },
            lie_on_sync: options.lie_on_sync,
        };
        let config = StorageConfig {
            max_segment_size: rng.random_range(2_048..32_768),
            restart_interval: *[0, 1, 3, 16, 64].choose(&mut rng).unwrap_or(&0),
            compression: if rng.random_bool(0.5) {
                CompressionKind::Lz4
            } else {
                CompressionKind::None
            },
            index_interval: *[0, 1, 4, 16].choose(&mut rng).unwrap_or(&0),
            // Fixed, not drawn (drawing it would shift every seed's random sequence) and not
            // the machine's, so a seed runs the same everywhere. Long reads and verifications
            // take the parallel path; results never depend on the count, and the file system
            // sees the same reads whatever it is (`disk/walk.rs`).
            verify_threads: 2,
            // Same reasoning: batches of 128 events or more are hashed on the store's helper
            // thread; the frames and writes are the same either way.
            hash_ahead: true,
        };
        let stream_count = rng.random_range(1..=4u64);
        let streams = (0..stream_count)
            .map(|i| StreamId::new(i * 7 + 1))
            .collect();
        let fs = SimFileSystem::new(rng.random(), faults);
        Self {
            step: 0,
            options,
            rng,
            fs,
            mirror: MemoryStorage::with_max_segment_size(config.max_segment_size),
            config,
            storage: None,
            models: BTreeMap::new(),
            streams,
            segment_parity: true,
            poisoned: false,
            faults_at_open: 0,
            flips_at_open: 0,
            paused_verify: None,
            stats: RunStats::default(),
        }
    }

    fn execute(&mut self) -> Check {
        self.reopen(false)?;
        while self.step < self.options.ops {
            self.stats.ops += 1;
            if self.poisoned {
                self.trace("restart (poisoned)");
                self.restart()?;
            } else {
                let choice = self.rng.random_range(0..100);
                self.trace(&format!("op {choice} {:?}", self.fs.counts()));
                match choice {
                    0..=49 => self.append()?,
                    50..=74 => self.read()?,
                    75..=77 => self.flush_indexes()?,
                    78..=82 => self.flush()?,
                    83..=86 => self.verify()?,
                    87..=92 => self.restart()?,
                    _ => self.crash()?,
                }
            }
            self.step += 1;
        }
        self.crash()
    }

    fn trace(&self, what: &str) {
        if std::env::var_os("KIMBERLITE_SIM_TRACE").is_some() {
            eprintln!("step {}: {what}", self.step);
        }
    }

    fn storage(&mut self) -> Result<&mut SimStorage, String> {
        self.storage
            .as_mut()
            .ok_or_else(|| "store is not open".to_owned())
    }

    fn pick_stream(&mut self) -> StreamId {
        self.streams
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(StreamId::new(1))
    }

    /// Whether a bit flip was read since the store was last opened: the engine may hold the
    /// flipped bytes (a mapped segment, say) and report them as corruption until reopened.
    /// Errors are then allowed; wrong data never is.
    fn flipped_since_open(&self) -> bool {
        self.fs.counts().read_flips > self.flips_at_open
    }

    /// Whether a detectable fault was injected since the store was last opened.
    fn faulted_since_open(&self) -> bool {
        self.fs.counts().detectable() > self.faults_at_open
    }

    /// Runs `call` and reports whether the file system injected a detectable fault during it.
    fn observed<T>(&mut self, call: impl FnOnce(&mut Self) -> T) -> (T, bool) {
        let before = self.fs.counts().detectable();
        let result = call(self);
        (result, self.fs.counts().detectable() > before)
    }

    fn random_batch(&mut self) -> Vec<Bytes> {
        // Mostly small batches (many batches, many crash points); one in a hundred large
        // enough to be hashed on the store's helper thread and written in several chunks.
        let count = if self.rng.random_bool(0.01) {
            self.rng
                .random_range(kimberlite_storage::HASH_AHEAD_MIN_EVENTS..=512)
        } else {
            self.rng.random_range(1..=12)
        };
        (0..count)
            .map(|_| {
                let len = self.rng.random_range(0..300);
                if self.rng.random_bool(0.5) {
                    let byte: u8 = self.rng.random();
                    Bytes::from(vec![byte; len])
                } else {
                    Bytes::from((0..len).map(|_| self.rng.random()).collect::<Vec<u8>>())
                }
            })
            .collect()
    }

    fn append(&mut self) -> Check {
        let stream = self.pick_stream();
        let batch = self.random_batch();
        let fsync = self.rng.random_bool(0.5);
        let model = self.models.entry(stream).or_default();
        let expected = Offset::new(model.log.len() as u64);
        let prev = self
            .mirror
            .latest_chain_hash(stream)
            .map_err(|e| format!("mirror: {e}"))?;
        self.trace(&format!(
            "append stream {stream} at {expected}: {} events, fsync {fsync}",
            batch.len()
        ));
        let (result, faulted) = self.observed(|run| {
            run.storage()
                .map(|s| s.append_batch(stream, batch.clone(), expected, prev, fsync))
        });
        match result? {
            Ok((next, hash)) => {
                let (mirror_next, mirror_hash) = self
                    .mirror
                    .append_batch(stream, batch.clone(), expected, prev, false)
                    .map_err(|e| format!("mirror: {e}"))?;
                if next != mirror_next || hash != mirror_hash {
                    return Err(format!(
                        "stream {stream}: append returned ({next}, {hash}), MemoryStorage \
                         ({mirror_next}, {mirror_hash})"
                    ));
                }
                if next.as_u64() != expected.as_u64() + batch.len() as u64 {
                    return Err(format!(
                        "stream {stream}: next offset {next} after a batch of {} at {expected}",
                        batch.len()
                    ));
                }
                let model = self.models.entry(stream).or_default();
                model.push_batch(batch);
                if fsync {
                    model.durable_len = model.log.len();
                }
                self.stats.appends += 1;
                self.check_segment_parity(stream)
            }
            Err(StorageError::Poisoned { .. }) if self.faulted_since_open() => {
                // An earlier call's fault (say, a rotation after an acknowledged batch) latched
                // the store; nothing of this batch was written.
                self.poisoned = true;
                Ok(())
            }
            Err(_) if faulted => {
                self.stats.faults_detected += 1;
                self.poisoned = true;
                self.models.entry(stream).or_default().uncertain = batch;
                Ok(())
            }
            Err(error) => Err(format!(
                "stream {stream}: append at {expected} failed with no fault injected: {error}"
            )),
        }
    }

    fn check_segment_parity(&mut self, stream: StreamId) -> Check {
        // A fault may have stopped a rotation after an acknowledged batch; the store is then
        // latched and will be reopened.
        if !self.segment_parity || self.faulted_since_open() {
            return Ok(());
        }
        let mirror = (
            self.mirror.segment_count(stream),
            self.mirror.completed_segments(stream),
        );
        let storage = self.storage()?;
        let disk = (
            storage.segment_count(stream),
            storage.completed_segments(stream),
        );
        if disk != mirror {
            return Err(format!(
                "stream {stream}: segments {disk:?} on disk, {mirror:?} in MemoryStorage"
            ));
        }
        Ok(())
    }

    fn read(&mut self) -> Check {
        let stream = self.pick_stream();
        let log = self
            .models
            .get(&stream)
            .map(|m| m.log.clone())
            .unwrap_or_default();
        let from = self.rng.random_range(0..=log.len() + 2) as u64;
        let max_bytes = self.rng.random_range(0..2_000);
        let (result, faulted) = self.observed(|run| {
            run.storage()
                .map(|s| s.read_from(stream, Offset::new(from), max_bytes))
        });
        match result? {
            Ok(events) => {
                self.stats.reads += 1;
                check_read(stream, &log, from, max_bytes, &events)
            }
            Err(error) => self.read_error_allowed(
                faulted,
                &format!("stream {stream}: read from {from}"),
                &error,
            ),
        }
    }

    /// A read-path error is allowed when a fault was injected during the call, or when a flip
    /// read since the store was opened may be cached; never otherwise.
    fn read_error_allowed(&mut self, faulted: bool, what: &str, error: &StorageError) -> Check {
        if faulted || self.flipped_since_open() {
            self.stats.faults_detected += 1;
            return Ok(());
        }
        Err(format!("{what} failed with no fault injected: {error}"))
    }

    fn flush_indexes(&mut self) -> Check {
        let (result, faulted) = self.observed(|run| run.storage().map(|s| s.flush_indexes()));
        self.expect_ok_unless_faulted("flush_indexes", result?, faulted)
    }

    fn flush(&mut self) -> Check {
        let (result, faulted) = self.observed(|run| run.storage().map(|s| s.flush()));
        let result = result?;
        if result.is_ok() {
            for model in self.models.values_mut() {
                model.durable_len = model.log.len();
            }
        }
        self.expect_ok_unless_faulted("flush", result, faulted)
    }

    fn expect_ok_unless_faulted(
        &mut self,
        what: &str,
        result: Result<(), StorageError>,
        faulted: bool,
    ) -> Check {
        match result {
            Ok(()) => Ok(()),
            Err(StorageError::Poisoned { .. }) if self.faulted_since_open() => {
                self.poisoned = true;
                Ok(())
            }
            Err(_) if faulted => {
                self.stats.faults_detected += 1;
                self.poisoned = true;
                Ok(())
            }
            Err(error) => Err(format!("{what} failed with no fault injected: {error}")),
        }
    }

    /// Closes and reopens the store without losing anything.
    fn restart(&mut self) -> Check {
        self.stats.restarts += 1;
        self.reopen(false)
    }

    /// Loses power: unsynced data may vanish or tear; then reopens.
    fn crash(&mut self) -> Check {
        self.storage = None;
        self.fs.crash();
        let read_only = self.rng.random_bool(0.25);
        let view = read_only.then(|| self.read_only_open()).transpose()?;
        let faults = self.fs.counts().detectable();
        self.reopen(true)?;
        // A fault during recovery may make it keep less than is there (never a durable event).
        if let Some(view) = view.filter(|_| self.fs.counts().detectable() == faults) {
            self.check_read_only_view(&view)?;
        }
        for model in self.models.values_mut() {
            model.durable_len = model.log.len();
        }
        Ok(())
    }

    /// Opens the store and reconciles the model with what survived.
    ///
    /// Faults stay on during `open`: recovery must not mistake a flipped bit for a torn tail or
    /// for corruption it then acts on. If `open` fails, or what it opened cannot be read back,
    /// *because* of flips injected during it, the store is reopened once more with faults off;
    /// that second open must succeed, and what it shows must hold every durable event.
    fn reopen(&mut self, after_crash: bool) -> Check {
        self.storage = None;
        let flips_before = self.fs.counts().read_flips;
        let (opened, faulted) =
            self.observed(|run| Storage::open_on(run.fs.clone(), Path::new(STORE_DIR), run.config));
        let storage = match opened {
            Ok(storage) => storage,
            Err(_) if faulted => {
                self.stats.faults_detected += 1;
                return self.reopen_without_faults(after_crash);
            }
            Err(error) => return Err(format!("reopen failed with no fault injected: {error}")),
        };
        self.trace(&format!(
            "reopened: {:?} {:?}",
            storage.recovery_report(),
            self.fs.counts()
        ));
        self.adopt(storage)?;
        match self.read_back() {
            Ok(actual) => self.reconcile(actual, after_crash),
            Err(_) if self.fs.counts().read_flips > flips_before => {
                // A flip read during recovery may be remembered until the next open.
                self.stats.faults_detected += 1;
                self.reopen_without_faults(after_crash)
            }
            Err(error) => Err(error),
        }
    }

    fn reopen_without_faults(&mut self, after_crash: bool) -> Check {
        self.storage = None;
        self.fs.set_faults_enabled(false);
        let opened = Storage::open_on(self.fs.clone(), Path::new(STORE_DIR), self.config);
        self.fs.set_faults_enabled(true);
        let storage = opened.map_err(|e| format!("reopen failed with faults off: {e}"))?;
        self.adopt(storage)?;
        let actual = self.read_back()?;
        self.reconcile(actual, after_crash)
    }

    fn adopt(&mut self, storage: SimStorage) -> Check {
        self.refuse_paused_verify(&storage)?;
        self.storage = Some(storage);
        self.poisoned = false;
        self.faults_at_open = self.fs.counts().detectable();
        self.flips_at_open = self.fs.counts().read_flips;
        Ok(())
    }

    /// Every modelled stream's events as the store now shows them, read with faults off.
    fn read_back(&mut self) -> Result<BTreeMap<StreamId, Vec<Bytes>>, String> {
        self.fs.set_faults_enabled(false);
        let streams: Vec<StreamId> = self.models.keys().copied().collect();
        let mut result = BTreeMap::new();
        let mut failure = None;
        for stream in streams {
            match self.storage().and_then(|storage| read_all(storage, stream)) {
                Ok(events) => {
                    result.insert(stream, events);
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        self.fs.set_faults_enabled(true);
        match failure {
            Some(error) => Err(error),
            None => Ok(result),
        }
    }

    /// Checks what survived against the model, then makes it the model.
    fn reconcile(&mut self, survived: BTreeMap<StreamId, Vec<Bytes>>, after_crash: bool) -> Check {
        let mut boundaries_changed = false;
        for (stream, actual) in survived {
            let model = self.models.entry(stream).or_default();
            check_survivors(stream, model, &actual, after_crash)?;
            boundaries_changed |= actual.len() != model.log.len();
            model.take_survivors(actual);
        }
        // The mirror holds acknowledged batches only. When the store now holds something else
        // (a crash cut a batch, or a failed batch survived), rebuild it from what survived:
        // hashes stay comparable, segment counts no longer are. Otherwise it already holds
        // exactly the surviving events.
        if boundaries_changed {
            self.segment_parity = false;
            self.mirror = self.rebuilt_mirror()?;
        }
        let streams: Vec<StreamId> = self.models.keys().copied().collect();
        for stream in streams {
            let head = self
                .mirror
                .latest_chain_hash(stream)
                .map_err(|e| e.to_string())?;
            let disk_head = self
                .storage()?
                .latest_chain_hash(stream)
                .map_err(|e| format!("stream {stream}: latest_chain_hash after reopen: {e}"))?;
            if disk_head != head {
                return Err(format!(
                    "stream {stream}: head {disk_head:?} after reopen, model {head:?}"
                ));
            }
        }
        Ok(())
    }

    /// A `MemoryStorage` holding every modelled stream's log, each as one batch.
    fn rebuilt_mirror(&self) -> Result<MemoryStorage, String> {
        let mut mirror = MemoryStorage::with_max_segment_size(self.config.max_segment_size);
        for (stream, model) in self.models.iter().filter(|(_, m)| !m.log.is_empty()) {
            mirror
                .append_batch(*stream, model.log.clone(), Offset::ZERO, None, false)
                .map_err(|e| format!("mirror: {e}"))?;
        }
        Ok(mirror)
    }
}

fn read_all<F: kimberlite_storage::FileSystem>(
    storage: &mut Storage<F>,
    stream: StreamId,
) -> Result<Vec<Bytes>, String> {
    let mut events = Vec::new();
    loop {
        let page = storage
            .read_from(stream, Offset::new(events.len() as u64), 64 * 1024)
            .map_err(|e| format!("stream {stream}: read after reopen failed: {e}"))?;
        if page.is_empty() {
            return Ok(events);
        }
        events.extend(page);
    }
}

/// The directory the simulated store lives in.
#[must_use]
pub fn store_dir() -> PathBuf {
    PathBuf::from(STORE_DIR)
}
