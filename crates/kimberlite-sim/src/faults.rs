//! What [`crate::fs::SimFileSystem`] injects: fault probabilities and counts.

/// Fault probabilities, each per operation of its kind (0.0 disables the fault).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Chance that a read returns one flipped bit.
    pub read_flip_probability: f64,
    /// Chance that a `sync_data` fails.
    pub sync_fail_probability: f64,
    /// Chance that a write fails part-way with "storage full".
    pub write_fail_probability: f64,
    /// Test-only breakage: `sync_data` reports success without making anything durable. A
    /// correct simulator must catch the lost acknowledged data this causes.
    pub lie_on_sync: bool,
}

impl FaultConfig {
    /// No faults at all: crashes still lose unsynced data.
    pub const NONE: FaultConfig = FaultConfig {
        read_flip_probability: 0.0,
        sync_fail_probability: 0.0,
        write_fail_probability: 0.0,
        lie_on_sync: false,
    };
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self::NONE
    }
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Reads that returned a flipped bit.
    pub read_flips: u64,
    /// Syncs that failed.
    pub sync_failures: u64,
    /// Writes that failed part-way.
    pub write_failures: u64,
    /// Crashes.
    pub crashes: u64,
    /// Crashes that tore a write in the middle.
    pub torn_writes: u64,
    /// Unsynced operations dropped by crashes.
    pub dropped_operations: u64,
    /// Changes refused by a read-only mount or a handle opened read-only
    /// ([`crate::SimFileSystem::set_read_only`]): a read-only open must make none.
    pub read_only_refusals: u64,
}

impl FaultCounts {
    /// Faults that the engine is expected to notice (everything but crash losses).
    #[must_use]
    pub fn detectable(&self) -> u64 {
        self.read_flips + self.sync_failures + self.write_failures
    }
}
