//! The whole-store simulator: the `kimberlite` store ([`Kimberlite`]) over [`SimFileSystem`],
//! so that crashes and faults reach everything the store writes: segments, the catalogue of
//! named streams, the marker and the Merkle tree levels.
//!
//! One run is one `u64` seed. The seed picks the store's configuration (durability: a sync
//! per append or group commit; segment size; compression; page size), the fault
//! probabilities, and each round's work: rounds of 1–4 threads appending at once (group
//! commit merges and syncs them together), stream creation, reads, syncs (which write the
//! Merkle trees' buffered nodes, never synced), tree heads, clean restarts and crashes. The seed fixes the work; the interleaving of the concurrent appenders is the
//! operating system's, so a failing seed replays its workload, and its interleaving only
//! mostly.
//!
//! # What is checked
//!
//! Against a model of each named stream (the events acknowledged to appenders, by offset):
//!
//! 1. **No acknowledged event is lost**: every append that returned `Ok` was synced (both
//!    durability policies sync before they acknowledge), so after every crash and reopen each
//!    acknowledged event is at its offset with its payload.
//! 2. **Every reopen verifies**: `verify_all` finds every stream intact, the catalogue too.
//! 3. **Tree heads match a recomputation**: each stream's tree head (size and root) equals the
//!    RFC 9162 root recomputed from the events read back, after every reopen and in between.
//! 4. **Appends are what a lone append would return**: each acknowledged batch got dense
//!    offsets no other batch got; readers and heads show exactly the acknowledged events.
//!
//! Errors are allowed only after a fault was injected since the store was opened (then the
//! store is poisoned and restarted, fail-stop). Events of an append that failed may or may not
//! be in the log after a reopen; the model then takes them (they were never acknowledged).
//! Read flips are not injected here (the engine simulator covers them): a flipped read makes
//! `verify` report damage, which is right, but not a violation to look for.

use std::collections::BTreeMap;

use bytes::Bytes;
use kimberlite::proof::{event_leaf_hash, MemoryTree};
use kimberlite::{
    AppendResult, CompressionKind, Config, Durability, Error, ExpectedOffset, Kimberlite, Offset,
    StreamId,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fs::{FaultConfig, SimFileSystem};
use crate::outcome::{RunStats, Violation};

/// How to run seeds of the whole-store simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSimOptions {
    /// Rounds per seed (a round is one step: a group of concurrent appends, a read, ...).
    pub rounds: usize,
    /// Whether seeds may inject sync and write failures (crash losses happen regardless).
    pub faults: bool,
    /// Test-only breakage of the file system: syncs report success without persisting. A
    /// correct checker must report lost acknowledged events with it.
    pub lie_on_sync: bool,
}

impl Default for StoreSimOptions {
    fn default() -> Self {
        Self {
            rounds: 300,
            faults: true,
            lie_on_sync: false,
        }
    }
}

const STORE_DIR: &str = "/store";
/// Named streams a run creates at most.
const STREAMS_MAX: usize = 6;
/// Threads appending at once in one round, at most.
const APPENDERS_MAX: usize = 4;

/// The outcome of one check: `Err` describes the violation.
type Check = Result<(), String>;

/// One seed's run.
struct StoreRun {
    step: usize,
    rng: ChaCha8Rng,
    fs: SimFileSystem,
    config: Config,
    store: Option<Kimberlite>,
    /// Per stream name, the acknowledged events by offset.
    models: BTreeMap<String, BTreeMap<u64, Bytes>>,
    /// An append or a stream creation failed: the store refuses writes until reopened.
    poisoned: bool,
    /// Detectable faults injected before the store was last opened.
    faults_at_open: u64,
    stats: RunStats,
}

/// One thread's append of a round.
struct Request {
    name: String,
    id: StreamId,
    events: Vec<Bytes>,
    expected: ExpectedOffset,
}

/// Runs one seed of the whole-store simulator; returns its figures or the first violation.
pub fn run_store_seed(seed: u64, options: &StoreSimOptions) -> Result<RunStats, Violation> {
    let mut run = StoreRun::new(seed, options);
    let result = run.execute(options.rounds);
    run.stats.faults = run.fs.counts();
    run.stats.seeds = 1;
    result.map_err(|message| Violation {
        seed,
        step: run.step,
        ops: options.rounds,
        message,
        whole_store: true,
    })?;
    Ok(run.stats)
}

impl StoreRun {
    fn new(seed: u64, options: &StoreSimOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let faulty = options.faults && rng.random_bool(0.5);
        let failure = |rng: &mut ChaCha8Rng| {
            if faulty {
                rng.random_range(0.0..0.005)
            } else {
                0.0
            }
        };
        let faults = FaultConfig {
            read_flip_probability: 0.0,
            sync_fail_probability: failure(&mut rng),
            write_fail_probability: failure(&mut rng),
            lie_on_sync: options.lie_on_sync,
        };
        let durability = if rng.random_bool(0.5) {
            Durability::GroupCommit
        } else {
            Durability::SyncEachAppend
        };
        let compression = if rng.random_bool(0.5) {
            CompressionKind::Lz4
        } else {
            CompressionKind::None
        };
        let config = Config::default()
            .durability(durability)
            .compression(compression)
            .max_segment_size(rng.random_range(2_048..32_768))
            .read_page_bytes(rng.random_range(256..8_192));
        let fs = SimFileSystem::new(rng.random(), faults);
        Self {
            step: 0,
            rng,
            fs,
            config,
            store: None,
            models: BTreeMap::new(),
            poisoned: false,
            faults_at_open: 0,
            stats: RunStats::default(),
        }
    }

    fn execute(&mut self, rounds: usize) -> Check {
        self.reopen(false)?;
        self.create_stream()?;
        while self.step < rounds {
            self.stats.ops += 1;
            if self.poisoned {
                self.reopen(false)?;
            } else {
                match self.rng.random_range(0..100) {
                    0..=54 => self.append_round()?,
                    55..=61 => self.create_stream()?,
                    62..=74 => self.read()?,
                    75..=78 => self.sync()?,
                    79..=84 => self.check_tree_heads()?,
                    85..=90 => self.reopen(false)?,
                    _ => self.reopen(true)?,
                }
            }
            self.step += 1;
        }
        self.reopen(true)
    }

    fn store(&self) -> Result<&Kimberlite, String> {
        self.store
            .as_ref()
            .ok_or_else(|| "the store is not open".to_owned())
    }

    /// Whether a detectable fault was injected since the store was last opened.
    fn faulted_since_open(&self) -> bool {
        self.fs.counts().detectable() > self.faults_at_open
    }

    /// An error from the store: allowed (and the store is then restarted) only after an
    /// injected fault.
    fn failed(&mut self, what: &str, error: &Error) -> Check {
        if !self.faulted_since_open() {
            return Err(format!("{what} failed with no fault injected: {error}"));
        }
        self.stats.faults_detected += 1;
        self.poisoned = true;
        Ok(())
    }

    fn pick_stream(&mut self) -> Option<(String, StreamId)> {
        let names: Vec<&String> = self.models.keys().collect();
        let name = (*names.get(self.rng.random_range(0..names.len().max(1)))?).clone();
        let id = self.store.as_ref()?.stream(&name)?;
        Some((name, id))
    }

    fn create_stream(&mut self) -> Check {
        if self.models.len() >= STREAMS_MAX {
            return Ok(());
        }
        let name = format!("stream-{}", self.models.len());
        match self.store()?.create_stream(&name) {
            Ok(_) => {
                self.models.insert(name, BTreeMap::new());
                Ok(())
            }
            Err(error) => self.failed("create_stream", &error),
        }
    }

    /// 1–4 threads append at once, each a batch of 1–8 events to a random stream.
    fn append_round(&mut self) -> Check {
        let appenders = self.rng.random_range(1..=APPENDERS_MAX);
        let mut requests = Vec::with_capacity(appenders);
        for thread in 0..appenders {
            let Some((name, id)) = self.pick_stream() else {
                return Ok(());
            };
            let count = self.rng.random_range(1..=8usize);
            let events = (0..count)
                .map(|i| {
                    let padding = "x".repeat(self.rng.random_range(0..200));
                    Bytes::from(format!("{name}/{}/{thread}/{i}/{padding}", self.step))
                })
                .collect();
            let len = self.models.get(&name).map_or(0, BTreeMap::len) as u64;
            let expected = if self.rng.random_bool(0.2) {
                ExpectedOffset::Exact(Offset::new(len))
            } else {
                ExpectedOffset::Any
            };
            requests.push(Request {
                name,
                id,
                events,
                expected,
            });
        }
        let store = self.store()?.clone();
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = requests
                .iter()
                .map(|request| {
                    let store = store.clone();
                    scope.spawn(move || {
                        store.append(request.id, request.events.clone(), request.expected)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join()).collect()
        });
        for (request, result) in requests.into_iter().zip(results) {
            let result = result.map_err(|_| "an appending thread panicked".to_owned())?;
            self.acknowledge(request, result)?;
        }
        if !self.poisoned {
            self.check_heads()?;
        }
        Ok(())
    }

    /// Adds an acknowledged append to the model, after checking it is what a lone append
    /// would have returned.
    fn acknowledge(&mut self, request: Request, result: kimberlite::Result<AppendResult>) -> Check {
        let appended = match result {
            Ok(appended) => appended,
            Err(Error::OffsetConflict { .. }) if request.expected != ExpectedOffset::Any => {
                return Ok(());
            }
            Err(error) => return self.failed("append", &error),
        };
        self.stats.appends += 1;
        let first = appended.first_offset.as_u64();
        let count = request.events.len() as u64;
        if appended.next_offset.as_u64() != first + count {
            return Err(format!(
                "{}: append of {count} events at {first} returned next offset {}",
                request.name, appended.next_offset
            ));
        }
        if let ExpectedOffset::Exact(expected) = request.expected {
            if appended.first_offset != expected {
                return Err(format!(
                    "{}: append expecting {expected} went to {first}",
                    request.name
                ));
            }
        }
        let model = self.models.entry(request.name.clone()).or_default();
        for (offset, event) in (first..).zip(request.events) {
            if model.insert(offset, event).is_some() {
                return Err(format!(
                    "{}: offset {offset} acknowledged to two appends",
                    request.name
                ));
            }
        }
        Ok(())
    }

    /// Each stream's durable head is its acknowledged events, dense from 0.
    fn check_heads(&self) -> Check {
        let store = self.store()?;
        for (name, model) in &self.models {
            let id = store
                .stream(name)
                .ok_or_else(|| format!("{name}: the stream is gone"))?;
            let head = store.head(id).map_err(|error| format!("{name}: {error}"))?;
            let len = model.len() as u64;
            let dense = model.keys().next_back().is_none_or(|last| last + 1 == len);
            if !dense || head.next_offset.as_u64() != len {
                return Err(format!(
                    "{name}: head {} but {len} events acknowledged (dense: {dense})",
                    head.next_offset
                ));
            }
        }
        Ok(())
    }

    /// A read from a random offset returns exactly the acknowledged events from there.
    fn read(&mut self) -> Check {
        let Some((name, id)) = self.pick_stream() else {
            return Ok(());
        };
        let len = self.models.get(&name).map_or(0, BTreeMap::len) as u64;
        let from = self.rng.random_range(0..=len);
        self.stats.reads += 1;
        let events = match self.store()?.read(id, Offset::new(from), u64::MAX) {
            Ok(events) => events,
            Err(error) => return self.failed("read", &error),
        };
        let model = self.models.get(&name).cloned().unwrap_or_default();
        let expected: Vec<&Bytes> = model.range(from..).map(|(_, event)| event).collect();
        let read: Vec<&Bytes> = events.iter().map(|event| &event.payload).collect();
        if read != expected {
            return Err(format!(
                "{name}: read from {from} returned {} events, {} acknowledged",
                read.len(),
                expected.len()
            ));
        }
        Ok(())
    }

    /// `Kimberlite::sync`: also writes the Merkle trees' buffered nodes, unsynced, which a
    /// later crash may lose or tear (reopen repairs them from the log).
    fn sync(&mut self) -> Check {
        match self.store()?.sync() {
            Ok(()) => Ok(()),
            Err(error) => self.failed("sync", &error),
        }
    }

    /// Each stream's tree head is the root recomputed from its acknowledged events.
    fn check_tree_heads(&mut self) -> Check {
        let models = self.models.clone();
        for (name, model) in &models {
            let Some(id) = self.store()?.stream(name) else {
                return Err(format!("{name}: the stream is gone"));
            };
            let head = match self.store()?.tree_head(id) {
                Ok(head) => head,
                Err(error) => return self.failed("tree_head", &error),
            };
            let leaves = model
                .iter()
                .map(|(offset, event)| event_leaf_hash(*offset, event));
            let root = MemoryTree::from_leaves(leaves).root();
            if head.tree_size != model.len() as u64 || head.root != root {
                return Err(format!(
                    "{name}: tree head of size {} does not match the recomputation over {} \
                     events",
                    head.tree_size,
                    model.len()
                ));
            }
        }
        Ok(())
    }

    /// Closes the store (after a crash of the file system when `crash`), opens it again with
    /// faults off, and checks what survived: every acknowledged event, a clean verification,
    /// and tree heads that match the events.
    fn reopen(&mut self, crash: bool) -> Check {
        self.fs.set_faults_enabled(false);
        if crash {
            self.fs.crash();
        } else if self.store.is_some() {
            self.stats.restarts += 1;
        }
        // After a crash the old store's handles are dead: what it does on its way out is lost.
        drop(self.store.take());
        let store = Kimberlite::open_with_fs(self.fs.clone(), STORE_DIR, self.config.clone())
            .map_err(|error| format!("reopen failed: {error}"))?;
        self.store = Some(store);
        self.poisoned = false;
        self.check_survivors()?;
        self.stats.verifications += 1;
        let report = self
            .store()?
            .verify_all()
            .map_err(|error| format!("verify_all failed: {error}"))?;
        if !report.is_intact() {
            return Err(format!("reopen does not verify: {report:?}"));
        }
        self.check_heads()?;
        self.check_tree_heads()?;
        self.fs.set_faults_enabled(true);
        self.faults_at_open = self.fs.counts().detectable();
        Ok(())
    }

    /// Every acknowledged event is in the reopened store at its offset; events past them (of
    /// appends that failed, never acknowledged) and streams whose creation failed are taken
    /// into the model.
    fn check_survivors(&mut self) -> Check {
        let store = self.store()?.clone();
        for info in store.list_streams() {
            self.models.entry(info.name).or_default();
        }
        for (name, model) in &mut self.models {
            let id = store
                .stream(name)
                .ok_or_else(|| format!("{name}: a created stream is gone after reopen"))?;
            let events = store
                .read(id, Offset::ZERO, u64::MAX)
                .map_err(|error| format!("{name}: reading after reopen: {error}"))?;
            for (offset, acknowledged) in model.iter() {
                let found = usize::try_from(*offset)
                    .ok()
                    .and_then(|index| events.get(index));
                if found.map(|event| &event.payload) != Some(acknowledged) {
                    return Err(format!(
                        "{name}: acknowledged event {offset} lost or changed after reopen \
                         ({} events read)",
                        events.len()
                    ));
                }
            }
            for event in events.iter().skip(model.len()) {
                model.insert(event.offset.as_u64(), event.payload.clone());
            }
        }
        Ok(())
    }
}
