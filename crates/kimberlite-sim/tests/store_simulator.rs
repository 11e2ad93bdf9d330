//! The whole-store simulator as CI runs it: fixed seeds, and proof that its checker can fail.

use kimberlite_sim::{run_store_seed, RunStats, StoreSimOptions};

const CI_SEEDS: u64 = 24;
const CI_ROUNDS: usize = 120;

fn run_all(options: &StoreSimOptions, seeds: std::ops::Range<u64>) -> (RunStats, Vec<String>) {
    let mut total = RunStats::default();
    let mut violations = Vec::new();
    for seed in seeds {
        match run_store_seed(seed, options) {
            Ok(stats) => total.absorb(&stats),
            Err(violation) => {
                total.seeds += 1;
                violations.push(violation.to_string());
            }
        }
    }
    (total, violations)
}

#[test]
fn fixed_seeds_hold_every_invariant_under_crashes_and_faults() {
    let options = StoreSimOptions {
        rounds: CI_ROUNDS,
        faults: true,
        attack_probability: 0.0,
        ..StoreSimOptions::default()
    };
    let (total, violations) = run_all(&options, 0..CI_SEEDS);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(total.seeds, CI_SEEDS);
    assert!(total.faults.crashes > CI_SEEDS, "{total}");
    assert!(total.appends > 0, "{total}");
    assert!(total.verifications > CI_SEEDS, "{total}");
    // Every kind of fault reaches the store in these seeds: torn tails of unsynced appends,
    // read flips, failed syncs and writes (full disk).
    let faults = &total.faults;
    assert!(
        faults.torn_writes > 0 && faults.dropped_operations > 0,
        "{total}"
    );
    assert!(faults.read_flips > 0, "{total}");
    assert!(
        faults.sync_failures > 0 && faults.write_failures > 0,
        "{total}"
    );
    assert!(total.faults_detected > 0, "{total}");
    println!("{total}");
    println!("{}", total.store_summary(violations.len() as u64));
}

#[test]
fn a_file_system_that_lies_about_syncs_is_caught() {
    let options = StoreSimOptions {
        rounds: CI_ROUNDS,
        faults: false,
        lie_on_sync: true,
        attack_probability: 0.0,
        ..StoreSimOptions::default()
    };
    let (total, violations) = run_all(&options, 0..8);
    // What a lying sync loses shows as lost acknowledged events, lost streams, or a store that
    // no longer opens (its marker or a segment lost): every one a violation.
    assert!(violations.len() >= 4, "{violations:?}");
    // A violation names its seed and round, and how to rerun it.
    assert!(
        violations
            .iter()
            .all(|v| v.starts_with("VIOLATION seed ") && v.contains("--store --seed ")),
        "{violations:?}"
    );
    println!("{}", total.store_summary(violations.len() as u64));
}
