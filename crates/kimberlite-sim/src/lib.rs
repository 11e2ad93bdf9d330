//! Kimberlite's deterministic simulation testing.
//!
//! - [`fs::SimFileSystem`]: a seeded, in-memory file system that loses and tears unsynced
//!   writes at a crash, flips bits on read, fails syncs and fills up. Its module docs are the
//!   **fault model**.
//! - [`SimStorage`]: the real on-disk engine (`kimberlite_storage::Storage`) running over it:
//!   the same code paths, no second implementation.
//! - [`simulator`]: random workloads with crashes and restarts, checked after every step
//!   against a model and against `MemoryStorage` (SPEC.md section 4). A failing seed prints a
//!   one-line reproduction command and replays exactly.
//!
//! - [`store_sim`]: the whole `kimberlite` store (named streams, group commit with concurrent
//!   appenders, Merkle trees) over the same file system, with crashes: no acknowledged event
//!   lost, every reopen verifies, tree heads match a recomputation; and attacks on the closed
//!   store (links, forged derived files, removed directories, read-only mounts).
//!
//! Run it: `cargo run --release -p kimberlite-sim -- --seeds 1000 [--seed N] [--ops 2000]`
//! (`--store` for the whole-store simulator).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod faults;
pub mod fs;
mod model;
pub mod outcome;
pub mod simulator;
pub mod store_sim;

pub use fs::{FaultConfig, FaultCounts, SimFileSystem, Snapshot};
pub use outcome::{AttackCounts, RunStats, Violation};
pub use simulator::{run_seed, SimOptions, SimStorage};
pub use store_sim::{run_store_seed, StoreSimOptions};
