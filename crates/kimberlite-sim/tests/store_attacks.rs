//! The whole-store simulator's attack rounds as CI runs them (`store_sim/attack.rs`): links
//! and wrong entry types, derived files forged consistently, directories removed, read-only
//! mounts; and proof that the checks catch a file system that follows links, a read-only open
//! that writes, and a store blind to the attacks.

use kimberlite_sim::{run_store_seed, RunStats, StoreSimOptions};

const SEEDS: u64 = 24;
const ROUNDS: usize = 60;

fn options() -> StoreSimOptions {
    StoreSimOptions {
        rounds: ROUNDS,
        attack_probability: 0.3,
        ..StoreSimOptions::default()
    }
}

fn run_all(options: &StoreSimOptions, seeds: std::ops::Range<u64>) -> (RunStats, Vec<String>) {
    let mut total = RunStats::default();
    let mut violations = Vec::new();
    for seed in seeds {
        match run_store_seed(seed, options) {
            Ok(stats) => total.absorb(&stats),
            Err(violation) => violations.push(violation.to_string()),
        }
    }
    (total, violations)
}

#[test]
fn fixed_seeds_hold_every_invariant_under_attack() {
    let (total, violations) = run_all(&options(), 0..SEEDS);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let attacks = &total.attacks;
    assert!(attacks.links > 0 && attacks.wrong_types > 0, "{total}");
    assert!(attacks.forged_trees > 0, "{total}");
    assert!(
        attacks.forged_indexes > 0 && attacks.forged_manifests > 0,
        "{total}"
    );
    assert!(attacks.dirs_removed > 0, "{total}");
    assert!(attacks.reported > 0, "{total}");
    assert!(attacks.read_only_opens > 0, "{total}");
    assert!(attacks.writable_opens_refused > 0, "{total}");
    assert!(total.faults.read_only_refusals > 0, "{total}");
    println!("{}", total.store_summary(0));
}

#[test]
fn a_file_system_that_follows_links_is_caught() {
    let options = StoreSimOptions {
        follow_links: true,
        faults: false,
        attack_probability: 0.5,
        ..options()
    };
    // Most seeds fail first on a link never named (the store read through it); some seed soon
    // has the store write through one.
    let caught = (0..64).find(|seed| {
        run_store_seed(*seed, &options)
            .is_err_and(|violation| violation.message.contains("outside the store"))
    });
    assert!(caught.is_some(), "no write outside the store was caught");
}

#[test]
fn a_read_only_open_that_writes_is_caught() {
    let options = StoreSimOptions {
        lie_read_only: true,
        faults: false,
        attack_probability: 0.5,
        ..options()
    };
    let (_, violations) = run_all(&options, 0..4);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("a read-only open changed the file system")),
        "{violations:?}"
    );
}

/// A store that does not see the attacks (each is undone before it opens) answers as an
/// intact one: every demand must then be reported missed.
#[test]
fn a_store_blind_to_attacks_is_caught() {
    let options = StoreSimOptions {
        unseen_attacks: true,
        faults: false,
        attack_probability: 0.5,
        ..options()
    };
    let (_, violations) = run_all(&options, 0..SEEDS);
    for missed in [
        "never named as damage",
        "its tree was forged",
        "does not say which",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(missed)),
            "{missed}: {violations:?}"
        );
    }
}
