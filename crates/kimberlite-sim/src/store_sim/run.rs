//! A seed's run from start to end: the configuration, the rounds, and every reopen with the
//! checks of what survived.

use std::collections::BTreeMap;

use kimberlite::{CompressionKind, Config, Durability, Kimberlite, Offset};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::batches::check_whole_batches;
use super::model::{check_survivors, FailedBatches};
use super::state::{Check, StoreRun, StoreSimOptions, STORE_DIR};
use crate::fs::{FaultConfig, SimFileSystem};
use crate::outcome::{RunStats, Violation};

/// Runs one seed of the whole-store simulator; returns its figures or the first violation
/// (with the step it was found at).
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
        let flips = if faulty {
            rng.random_range(0.0..0.03)
        } else {
            0.0
        };
        let faults = FaultConfig {
            read_flip_probability: flips,
            sync_fail_probability: failure(&mut rng),
            write_fail_probability: failure(&mut rng),
            lie_on_sync: options.lie_on_sync,
        };
        let compression = if rng.random_bool(0.5) {
            CompressionKind::Lz4
        } else {
            CompressionKind::None
        };
        let config = Config::default()
            .compression(compression)
            .max_segment_size(rng.random_range(2_048..32_768))
            .read_page_bytes(rng.random_range(256..8_192));
        let fs = SimFileSystem::new(rng.random(), faults);
        Self {
            options: *options,
            step: 0,
            rng,
            fs,
            config,
            durability: Durability::SyncEachAppend,
            store: None,
            models: BTreeMap::new(),
            names_used: 0,
            failed: FailedBatches::new(),
            poisoned: false,
            faults_at_open: 0,
            failures_at_open: 0,
            flips_at_open: 0,
            stats: RunStats::default(),
        }
    }

    fn execute(&mut self, rounds: usize) -> Check {
        self.reopen(false)?;
        self.create_stream()?;
        while self.step < rounds {
            self.stats.ops += 1;
            if self.poisoned {
                let crash = self.rng.random_bool(0.5);
                self.reopen(crash)?;
            } else if self.options.attack_probability > 0.0
                && self
                    .rng
                    .random_bool(self.options.attack_probability.min(1.0))
            {
                self.attack_round()?;
            } else {
                match self.rng.random_range(0..100) {
                    0..=49 => self.append_round()?,
                    50..=56 => self.create_stream()?,
                    57..=68 => self.read()?,
                    69..=74 => self.sync()?,
                    75..=78 => self.verify()?,
                    79..=84 => self.check_tree_heads()?,
                    85..=90 => self.reopen(false)?,
                    _ => self.reopen(true)?,
                }
            }
            self.trace();
            self.step += 1;
        }
        self.reopen(true)
    }

    /// With `KIMBERLITE_SIM_TRACE` set, one line per round: what the run looks like after it,
    /// so that two runs of a seed can be compared line by line (`docs/TESTING.md`).
    fn trace(&self) {
        if std::env::var_os("KIMBERLITE_SIM_TRACE").is_none() {
            return;
        }
        let streams: Vec<_> = self
            .models
            .values()
            .map(|model| (model.events.len(), model.durable))
            .collect();
        let faults = self.fs.counts();
        eprintln!(
            "step {}: {:?}, streams (events, durable) {streams:?}, poisoned {}, crashes {}, \
             flips {}, failed syncs {}, failed writes {}, torn {}, dropped {}",
            self.step,
            self.durability,
            self.poisoned,
            faults.crashes,
            faults.read_flips,
            faults.sync_failures,
            faults.write_failures,
            faults.torn_writes,
            faults.dropped_operations
        );
    }

    /// Closes the store (after a crash of the file system when `crash`), opens it again with
    /// faults off and a durability policy picked anew, and checks what survived: every
    /// durable event, a clean verification, and tree heads that match the events.
    pub(super) fn reopen(&mut self, crash: bool) -> Check {
        self.fs.set_faults_enabled(false);
        if crash {
            self.fs.crash();
        } else if self.store.is_some() {
            self.stats.restarts += 1;
        }
        // After a crash the old store's handles are dead: what it does on its way out is lost.
        drop(self.store.take());
        self.durability = match self.rng.random_range(0..3) {
            0 => Durability::SyncEachAppend,
            1 => Durability::GroupCommit,
            _ => Durability::Unsynced,
        };
        self.config = self.config.clone().durability(self.durability);
        let store = Kimberlite::open_with_fs(self.fs.clone(), STORE_DIR, self.config.clone())
            .map_err(|error| format!("reopen failed: {error}"))?;
        self.store = Some(store);
        self.poisoned = false;
        self.take_survivors(crash)?;
        self.failed.clear();
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
        self.faults_at_open = self.faults_now();
        self.failures_at_open = self.failures_now();
        self.flips_at_open = self.fs.counts().read_flips;
        Ok(())
    }

    /// Checks each stream of the reopened store against its model (`check_survivors`), then
    /// makes the model what was found: streams and events of failed calls, never
    /// acknowledged, are taken in. A created stream is never gone: creation syncs its name.
    fn take_survivors(&mut self, crash: bool) -> Check {
        let store = self.store()?.clone();
        for info in store.list_streams() {
            self.models.entry(info.name).or_default();
        }
        for (name, model) in &mut self.models {
            let Some(id) = store.stream(name) else {
                return Err(format!("{name}: a created stream is gone after reopen"));
            };
            let events: Vec<_> = store
                .read(id, Offset::ZERO, u64::MAX)
                .map_err(|error| format!("{name}: reading after reopen: {error}"))?
                .into_iter()
                .map(|event| event.payload)
                .collect();
            check_survivors(model, &events, &self.failed, crash)
                .and_then(|()| check_whole_batches(&events))
                .map_err(|error| format!("{name} after reopen: {error}"))?;
            model.events = events;
        }
        Ok(())
    }
}
