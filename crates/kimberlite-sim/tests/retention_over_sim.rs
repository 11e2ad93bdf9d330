//! Retention over the simulated file system: a `retain` whose syncs fail at random steps
//! (fail-stop), then a crash that loses whatever was not synced, then a reopen. The stream is
//! either cut where asked or untouched, never anything else, and verifies intact either way.

use kimberlite::proof::{stream_origin, SignerKey};
use kimberlite::{Config, ExpectedOffset, Kimberlite, Offset};
use kimberlite_sim::{FaultConfig, SimFileSystem};

const STORE: &str = "/store";
const EVENTS: u64 = 300;

fn config() -> Config {
    Config::default().max_segment_size(2048)
}

#[test]
fn a_retain_failing_at_any_step_then_a_crash_leaves_it_done_or_not_and_intact() {
    let faults = FaultConfig {
        sync_fail_probability: 0.06,
        write_fail_probability: 0.01,
        ..FaultConfig::NONE
    };
    let key = SignerKey::from_seed("log", [3; 32]).unwrap();
    let (mut done, mut undone) = (0, 0);
    for seed in 0..64 {
        let fs = SimFileSystem::new(seed, faults);
        fs.set_faults_enabled(false);
        let store = Kimberlite::open_with_fs(fs.clone(), STORE, config()).unwrap();
        let id = store.create_stream("audit").unwrap();
        for batch in 0..EVENTS / 10 {
            let events: Vec<String> = (batch * 10..batch * 10 + 10)
                .map(|i| format!("e{i}"))
                .collect();
            store.append(id, events, ExpectedOffset::Any).unwrap();
        }
        let origin = stream_origin("store", "audit").unwrap();
        store.sign_checkpoint(id, &origin, &key).unwrap();
        let head = store.head(id).unwrap();
        fs.set_faults_enabled(true);
        let retained = store.retain(id, Offset::new(EVENTS / 2));
        fs.set_faults_enabled(false);
        fs.crash();
        drop(store);

        let store = Kimberlite::open_with_fs(fs.clone(), STORE, config()).unwrap();
        let report = store.verify_all().unwrap();
        assert!(report.is_intact(), "seed {seed}: {report:?}");
        assert_eq!(store.head(id).unwrap().hash, head.hash, "seed {seed}");
        let first = store.first_offset(id).unwrap();
        if first == Offset::ZERO {
            assert!(retained.is_err(), "seed {seed}: a finished retain is kept");
            assert_eq!(store.read(id, Offset::ZERO, 1).unwrap().len(), 1);
            undone += 1;
        } else {
            assert!(first.as_u64() <= EVENTS / 2, "seed {seed}: cut at {first}");
            if let Ok(retained) = &retained {
                assert_eq!(retained.first_offset, first, "seed {seed}");
            }
            assert!(store.read(id, Offset::new(first.as_u64() - 1), 1).is_err());
            done += 1;
        }
    }
    assert!(done > 0 && undone > 0, "done {done}, undone {undone}");
}
