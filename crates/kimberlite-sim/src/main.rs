//! `kimberlite-sim`: runs the deterministic simulator over many seeds.
//!
//! ```text
//! cargo run --release -p kimberlite-sim -- --seeds 1000 [--first-seed N] [--ops 2000]
//! cargo run --release -p kimberlite-sim -- --seed 1234 --ops 2000     # replay one seed
//! cargo run --release -p kimberlite-sim -- --store --seeds 100 [--ops 300]   # whole store
//! ```
//!
//! Exit status: 0 when every seed held every invariant, 1 on a violation (its seed, step and
//! reproduction command are printed), 2 on bad arguments.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use kimberlite_sim::{run_seed, run_store_seed, RunStats, SimOptions, StoreSimOptions};

/// Deterministic simulation of Kimberlite's on-disk engine under crashes and faults.
#[derive(Debug, Parser)]
#[command(name = "kimberlite-sim", version)]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// First seed of the range.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run exactly this seed (replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Operations per seed.
    #[arg(long, default_value_t = 2_000)]
    ops: usize,
    /// Disable fault injection (crashes still lose unsynced data) and, with `--store`,
    /// attacks on the store at rest.
    #[arg(long)]
    no_faults: bool,
    /// With `--store`: the chance per round of an attack on the closed store at rest or a
    /// read-only mount (default 0.03; 0 for none).
    #[arg(long, default_value_t = 0.03)]
    attacks: f64,
    /// Run the whole-store simulator (`kimberlite` over the simulated file system; `--ops`
    /// counts its rounds) instead of the engine's.
    #[arg(long)]
    store: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = SimOptions {
        ops: args.ops,
        faults: !args.no_faults,
        lie_on_sync: false,
    };
    let seeds = match args.seed {
        Some(seed) => seed..seed.saturating_add(1),
        None => args.first_seed..args.first_seed.saturating_add(args.seeds),
    };
    let started = Instant::now();
    let mut total = RunStats::default();
    let mut violations = 0u64;
    for seed in seeds {
        if seed > 0 && seed % 1_000 == 0 {
            eprintln!(
                "... seed {seed}: {violations} violations so far, {:.0}s",
                started.elapsed().as_secs_f64()
            );
        }
        let result = if args.store {
            let options = StoreSimOptions {
                rounds: args.ops,
                faults: !args.no_faults,
                attack_probability: if args.no_faults { 0.0 } else { args.attacks },
                ..StoreSimOptions::default()
            };
            run_store_seed(seed, &options)
        } else {
            run_seed(seed, &options)
        };
        match result {
            Ok(stats) => total.absorb(&stats),
            Err(violation) => {
                violations += 1;
                total.seeds += 1;
                eprintln!("{violation}");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if args.store {
        println!("{} | {elapsed:.1}s", total.store_summary(violations));
    } else {
        println!("{total} | violations {violations} | {elapsed:.1}s");
    }
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
