//! What runs report: their figures ([`RunStats`]) and the first invariant that did not hold
//! ([`Violation`], with its reproduction command).

use std::fmt;

use crate::fs::FaultCounts;

/// What one or more runs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Seeds run.
    pub seeds: u64,
    /// Operations performed.
    pub ops: u64,
    /// Batches acknowledged.
    pub appends: u64,
    /// Reads checked.
    pub reads: u64,
    /// Clean restarts.
    pub restarts: u64,
    /// Faults injected, by kind (crashes included).
    pub faults: FaultCounts,
    /// Calls that returned an error caused by an injected fault.
    pub faults_detected: u64,
    /// Verifications that reached a stream's end and were checked against the model.
    pub verifications: u64,
    /// Of those, the ones walked in pieces with other operations between them.
    pub verifications_in_pieces: u64,
    /// Pieces that paused (each resumed by a later operation, or refused after a reopen).
    pub verify_pauses: u64,
    /// Pause points refused by a reopened store, as they must be.
    pub pause_points_refused: u64,
    /// Attacks on the store at rest, and read-only mounts (the whole-store simulator).
    pub attacks: AttackCounts,
}

/// Attacks made on a closed store's directory (`store_sim/attack.rs`), by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackCounts {
    /// Symbolic links placed in place of a file or a directory, pointing outside the store.
    pub links: u64,
    /// Entries of the wrong type: a fifo, a directory where a file belongs, a file where a
    /// directory belongs.
    pub wrong_types: u64,
    /// Merkle side files forged consistently (a leaf or a node replaced and every ancestor
    /// recomputed, or leaves added past the log).
    pub forged_trees: u64,
    /// Sparse indexes forged with a valid checksum.
    pub forged_indexes: u64,
    /// Manifests forged with a valid checksum.
    pub forged_manifests: u64,
    /// Directories removed (a stream's, `streams/`, `merkle/` or one of its, a `torn/`).
    pub dirs_removed: u64,
    /// Attacks whose damage the store was required to report and did.
    pub reported: u64,
    /// Read-only opens over a read-only mount (each wrote nothing).
    pub read_only_opens: u64,
    /// Writable opens over a read-only mount, refused as they must be.
    pub writable_opens_refused: u64,
}

impl AttackCounts {
    fn absorb(&mut self, other: &AttackCounts) {
        self.links += other.links;
        self.wrong_types += other.wrong_types;
        self.forged_trees += other.forged_trees;
        self.forged_indexes += other.forged_indexes;
        self.forged_manifests += other.forged_manifests;
        self.dirs_removed += other.dirs_removed;
        self.reported += other.reported;
        self.read_only_opens += other.read_only_opens;
        self.writable_opens_refused += other.writable_opens_refused;
    }
}

impl fmt::Display for AttackCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attacks: links {}, wrong types {}, forged trees {}, forged indexes {}, forged \
             manifests {}, directories removed {} ({} reported as required) | read-only opens \
             {} (writable opens refused {})",
            self.links,
            self.wrong_types,
            self.forged_trees,
            self.forged_indexes,
            self.forged_manifests,
            self.dirs_removed,
            self.reported,
            self.read_only_opens,
            self.writable_opens_refused
        )
    }
}

impl RunStats {
    /// Adds another run's figures to these.
    pub fn absorb(&mut self, other: &RunStats) {
        self.seeds += other.seeds;
        self.ops += other.ops;
        self.appends += other.appends;
        self.reads += other.reads;
        self.restarts += other.restarts;
        self.faults_detected += other.faults_detected;
        self.verifications += other.verifications;
        self.verifications_in_pieces += other.verifications_in_pieces;
        self.verify_pauses += other.verify_pauses;
        self.pause_points_refused += other.pause_points_refused;
        self.attacks.absorb(&other.attacks);
        let (a, b) = (&mut self.faults, &other.faults);
        a.read_flips += b.read_flips;
        a.sync_failures += b.sync_failures;
        a.write_failures += b.write_failures;
        a.crashes += b.crashes;
        a.torn_writes += b.torn_writes;
        a.dropped_operations += b.dropped_operations;
        a.read_only_refusals += b.read_only_refusals;
    }
}

impl fmt::Display for RunStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults = &self.faults;
        write!(
            f,
            "seeds {} | ops {} (appends {}, reads {}) | crashes {}, restarts {} | faults injected: \
             read flips {}, sync failures {}, write failures {}, torn writes {}, dropped unsynced \
             ops {} | faults detected {} | verifications {} ({} in pieces; {} pauses, {} pause \
             points refused after reopen) | read-only opens {} (writable opens refused {})",
            self.seeds,
            self.ops,
            self.appends,
            self.reads,
            faults.crashes,
            self.restarts,
            faults.read_flips,
            faults.sync_failures,
            faults.write_failures,
            faults.torn_writes,
            faults.dropped_operations,
            self.faults_detected,
            self.verifications,
            self.verifications_in_pieces,
            self.verify_pauses,
            self.pause_points_refused,
            self.attacks.read_only_opens,
            self.attacks.writable_opens_refused
        )
    }
}

impl RunStats {
    /// The whole-store simulator's summary line: seeds, rounds, appends acknowledged, crashes,
    /// faults injected and detected, `violations`.
    #[must_use]
    pub fn store_summary(&self, violations: u64) -> String {
        let faults = &self.faults;
        format!(
            "store simulator: seeds {} | rounds {} | appends acknowledged {} | crashes {} \
             (torn writes {}, dropped unsynced ops {}) | faults injected {} (read flips {}, \
             failed syncs {}, failed writes {}) | faults detected {} | {} | violations \
             {violations}",
            self.seeds,
            self.ops,
            self.appends,
            faults.crashes,
            faults.torn_writes,
            faults.dropped_operations,
            faults.detectable(),
            faults.read_flips,
            faults.sync_failures,
            faults.write_failures,
            self.faults_detected,
            self.attacks,
        )
    }
}

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The seed of the run.
    pub seed: u64,
    /// The operation number (0-based) at which it was found.
    pub step: usize,
    /// Operations per seed of the run (for the reproduction command).
    pub ops: usize,
    /// What went wrong.
    pub message: String,
    /// Whether the run was the whole-store simulator's (`store_sim`), not the engine's.
    pub whole_store: bool,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = if self.whole_store { "--store " } else { "" };
        write!(
            f,
            "VIOLATION seed {} step {}: {}\n  reproduce: cargo run --release -p kimberlite-sim -- \
             {store}--seed {} --ops {}",
            self.seed, self.step, self.message, self.seed, self.ops
        )
    }
}
