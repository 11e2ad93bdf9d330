//! The simulator as CI runs it: fixed seeds, and proof that its checker can fail.

use kimberlite_sim::{run_seed, RunStats, SimOptions};

const CI_SEEDS: u64 = 200;
const CI_OPS: usize = 150;

fn run_all(options: &SimOptions, seeds: std::ops::Range<u64>) -> (RunStats, Vec<String>) {
    let mut total = RunStats::default();
    let mut violations = Vec::new();
    for seed in seeds {
        match run_seed(seed, options) {
            Ok(stats) => total.absorb(&stats),
            Err(violation) => violations.push(violation.to_string()),
        }
    }
    (total, violations)
}

#[test]
fn fixed_seeds_hold_every_invariant_under_faults() {
    let options = SimOptions {
        ops: CI_OPS,
        faults: true,
        lie_on_sync: false,
    };
    let (total, violations) = run_all(&options, 0..CI_SEEDS);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(total.seeds, CI_SEEDS);
    // The run exercised what it claims to: crashes that lost data, and injected faults that
    // the engine reported.
    assert!(total.faults.crashes > CI_SEEDS, "{total}");
    assert!(total.faults.dropped_operations > 0, "{total}");
    assert!(total.faults.torn_writes > 0, "{total}");
    assert!(total.faults.detectable() > 0, "{total}");
    assert!(total.faults_detected > 0, "{total}");
    println!("{total}");
}

#[test]
fn a_file_system_that_lies_about_fsync_is_caught() {
    // Syncs that report success without persisting lose acknowledged batches at the next
    // crash; the checker must say so, or it could not fail at all.
    let options = SimOptions {
        ops: CI_OPS,
        faults: false,
        lie_on_sync: true,
    };
    let (_, violations) = run_all(&options, 0..20);
    assert!(!violations.is_empty(), "no violation with lying fsyncs");
    assert!(
        violations
            .iter()
            .any(|v| v.contains("acknowledged as durable")),
        "{}",
        violations.join("\n")
    );
    let first = &violations[0];
    assert!(
        first.contains("reproduce: cargo run --release -p kimberlite-sim -- --seed"),
        "{first}"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let options = SimOptions {
        ops: 300,
        faults: true,
        lie_on_sync: false,
    };
    for seed in [3, 17, 4242] {
        let first = run_seed(seed, &options);
        let second = run_seed(seed, &options);
        assert_eq!(first, second, "seed {seed}");
    }
}
