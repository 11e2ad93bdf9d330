//! One seed's run of the whole-store simulator: its options, its state, and the rules every
//! step shares (which errors are allowed, which stream to pick).

use std::collections::BTreeMap;

use kimberlite::{Config, Durability, Error, Kimberlite, StreamId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::model::{FailedBatches, StreamModel};
use crate::fs::SimFileSystem;
use crate::outcome::RunStats;

/// How to run seeds of the whole-store simulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreSimOptions {
    /// Rounds per seed (a round is one step: a group of concurrent appends, a read, ...).
    pub rounds: usize,
    /// Whether seeds may inject read flips, sync and write failures (crash losses happen
    /// regardless).
    pub faults: bool,
    /// Test-only breakage of the file system: syncs report success without persisting. A
    /// correct checker must report lost acknowledged events with it.
    pub lie_on_sync: bool,
    /// Chance per round of an attack on the closed store at rest, or a read-only mount
    /// (`store_sim/attack.rs`); 0.0 for none.
    pub attack_probability: f64,
    /// Test-only breakage of the file system: links are followed. A correct checker must
    /// report the writes outside the store it lets through.
    pub follow_links: bool,
    /// Test-only breakage: the read-only open is a writable one on a writable file system. A
    /// correct checker must report the changes it makes.
    pub lie_read_only: bool,
    /// Test-only breakage: each attack is undone before the store opens, as if the store did
    /// not see it. A correct checker must report every report the attack demanded and missed.
    pub unseen_attacks: bool,
}

impl Default for StoreSimOptions {
    fn default() -> Self {
        Self {
            rounds: 300,
            faults: true,
            lie_on_sync: false,
            attack_probability: 0.03,
            follow_links: false,
            lie_read_only: false,
            unseen_attacks: false,
        }
    }
}

pub(super) const STORE_DIR: &str = "/store";
/// Named streams a run creates at most.
pub(super) const STREAMS_MAX: usize = 6;
/// Threads appending at once in one round, at most.
pub(super) const APPENDERS_MAX: usize = 4;

/// The outcome of one check: `Err` describes the violation.
pub(super) type Check = Result<(), String>;

/// One seed's run.
pub(super) struct StoreRun {
    pub(super) options: StoreSimOptions,
    pub(super) step: usize,
    pub(super) rng: ChaCha8Rng,
    pub(super) fs: SimFileSystem,
    pub(super) config: Config,
    /// The durability policy of the store as last opened.
    pub(super) durability: Durability,
    pub(super) store: Option<Kimberlite>,
    /// Per stream name, what was acknowledged.
    pub(super) models: BTreeMap<String, StreamModel>,
    /// Streams named so far (names are never reused: a stream lost at a crash keeps its).
    pub(super) names_used: usize,
    /// Appends that failed since the last reopen: their events may be in the log.
    pub(super) failed: FailedBatches,
    /// An append or a stream creation failed: the store refuses writes until reopened.
    pub(super) poisoned: bool,
    /// Detectable faults injected before the store was last opened.
    pub(super) faults_at_open: u64,
    /// Of those, the failed writes and syncs.
    pub(super) failures_at_open: u64,
    /// Of those, the bit flips on read.
    pub(super) flips_at_open: u64,
    pub(super) stats: RunStats,
}

impl StoreRun {
    pub(super) fn store(&self) -> Result<&Kimberlite, String> {
        self.store
            .as_ref()
            .ok_or_else(|| "the store is not open".to_owned())
    }

    /// Detectable faults injected so far.
    pub(super) fn faults_now(&self) -> u64 {
        self.fs.counts().detectable()
    }

    /// Failed writes and syncs injected so far.
    pub(super) fn failures_now(&self) -> u64 {
        let counts = self.fs.counts();
        counts.sync_failures + counts.write_failures
    }

    /// Whether a detectable fault was injected since the store was last opened.
    pub(super) fn faulted_since_open(&self) -> bool {
        self.faults_now() > self.faults_at_open
    }

    /// An error from the store: allowed (and the store is then restarted) only after an
    /// injected fault.
    pub(super) fn failed(&mut self, what: &str, error: &Error) -> Check {
        if !self.faulted_since_open() {
            return Err(format!("{what} failed with no fault injected: {error}"));
        }
        self.stats.faults_detected += 1;
        self.poisoned = true;
        Ok(())
    }

    pub(super) fn pick_stream(&mut self) -> Option<(String, StreamId)> {
        let names: Vec<&String> = self.models.keys().collect();
        let name = (*names.get(self.rng.random_range(0..names.len().max(1)))?).clone();
        let id = self.store.as_ref()?.stream(&name)?;
        Some((name, id))
    }
}
