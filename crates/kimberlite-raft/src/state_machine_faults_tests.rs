//! The state machine over the simulated file system: the applied state file keeps each
//! batch's changes by appending them, survives power loss (a torn tail cut, a prefix of the
//! batches kept), refuses work after a failed write until reopened; a snapshot install that
//! fails or loses power part way leaves the old generation whole or the new one, never a mix;
//! a snapshot that does not match its heads installs nothing; a failed background save halts
//! the replica; a snapshot is built only over saved state; a closed state machine writes
//! nothing more.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use kimberlite::{Config, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_sim::fs::{FaultConfig, SimFileSystem};
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use openraft::{Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership};

use crate::applied_file::APPLIED_FILE;
use crate::command::{Command, Head, RequestId};
use crate::halt::Halt;
use crate::log_file_tests::log_id;
use crate::node_fs::NodeFs;
use crate::replica::Ledger;
use crate::snapshot::SnapshotImage;
use crate::state_machine::{StateMachine, STORE_DIR};
use crate::types::{NodeId, TypeConfig};

const DIR: &str = "/node";
const BATCHES: u64 = 12;

fn open(fs: &SimFileSystem, sync: bool) -> StateMachine {
    StateMachine::open_with(
        NodeFs::new(fs.clone()),
        Path::new(DIR),
        Config::default(),
        sync,
    )
    .unwrap()
}

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(command),
    }
}

/// The entry creating stream "s" (id 1 on an empty store).
fn create() -> Entry<TypeConfig> {
    let request = RequestId { client: 9, seq: 0 };
    entry(
        1,
        Command::CreateStream {
            request,
            name: "s".into(),
        },
    )
}

/// The entry at `index` appending one event to stream 1 at head `prev`.
fn append(index: u64, prev: Head) -> (Entry<TypeConfig>, Head) {
    let events = vec![Bytes::from(format!("e{index}"))];
    let expected = prev.after(&events);
    let command = Command::Append {
        request: RequestId {
            client: 9,
            seq: index,
        },
        stream: 1,
        prev,
        read_at: index - 1,
        expected,
        events,
    };
    (entry(index, command), expected)
}

fn ledger_and_applied(state_machine: &StateMachine) -> (Ledger, Option<LogId<NodeId>>) {
    (state_machine.ledger(), state_machine.last_applied())
}

/// Applies the create and `BATCHES` appends, one entry per batch; returns the ledger after
/// each batch by its last log index.
async fn apply_all(state_machine: &mut StateMachine) -> BTreeMap<u64, Ledger> {
    let mut ledgers = BTreeMap::new();
    state_machine.apply(vec![create()]).await.unwrap();
    ledgers.insert(1, state_machine.ledger());
    let mut head = Head::default();
    for index in 2..=BATCHES + 1 {
        let (entry, next) = append(index, head);
        state_machine.apply(vec![entry]).await.unwrap();
        head = next;
        ledgers.insert(index, state_machine.ledger());
    }
    // Saved in the background; the tests below start from a saved state.
    state_machine.save_now().unwrap();
    ledgers
}

#[tokio::test]
async fn a_batch_appends_its_changes_instead_of_rewriting_the_state() {
    let fs = SimFileSystem::new(1, FaultConfig::NONE);
    let mut state_machine = open(&fs, true);
    apply_all(&mut state_machine).await;
    let path = Path::new(DIR).join(APPLIED_FILE);
    let before = fs.read_raw(&path).unwrap();
    let (entry, _) = append(BATCHES + 2, head_of(&state_machine));
    state_machine.apply(vec![entry]).await.unwrap();
    state_machine.save_now().unwrap();
    let after = fs.read_raw(&path).unwrap();
    assert!(after.len() > before.len());
    assert_eq!(after[..before.len()], before[..], "earlier bytes rewritten");
}

fn head_of(state_machine: &StateMachine) -> Head {
    state_machine
        .read(|store| Head::of(store.head(StreamId::new(1)).unwrap()))
        .0
}

#[tokio::test]
async fn synced_batches_survive_power_loss() {
    for seed in 0..8 {
        let fs = SimFileSystem::new(seed, FaultConfig::NONE);
        let mut state_machine = open(&fs, true);
        let ledgers = apply_all(&mut state_machine).await;
        state_machine.close();
        fs.crash();
        let reopened = open(&fs, true);
        let (ledger, applied) = ledger_and_applied(&reopened);
        assert_eq!(applied, Some(log_id(BATCHES + 1)), "seed {seed}");
        assert_eq!(Some(&ledger), ledgers.get(&(BATCHES + 1)), "seed {seed}");
    }
}

#[tokio::test]
async fn unsynced_batches_lost_to_power_loss_leave_a_prefix() {
    for seed in 0..16 {
        let fs = SimFileSystem::new(seed, FaultConfig::NONE);
        let mut state_machine = open(&fs, false);
        let ledgers = apply_all(&mut state_machine).await;
        state_machine.close();
        fs.crash();
        let reopened = open(&fs, false);
        let (ledger, applied) = ledger_and_applied(&reopened);
        match applied {
            None => assert_eq!(ledger, Ledger::default(), "seed {seed}"),
            Some(log_id) => {
                assert_eq!(Some(&ledger), ledgers.get(&log_id.index), "seed {seed}");
            }
        }
    }
}

#[tokio::test]
async fn a_failed_write_stops_applying_until_reopened() {
    let fs = SimFileSystem::new(
        3,
        FaultConfig {
            write_fail_probability: 1.0,
            ..FaultConfig::NONE
        },
    );
    fs.set_faults_enabled(false);
    let mut state_machine = open(&fs, true);
    state_machine.apply(vec![create()]).await.unwrap();
    state_machine.save_now().unwrap();
    let (first, head) = append(2, Head::default());
    fs.set_faults_enabled(true);
    assert!(state_machine.apply(vec![first.clone()]).await.is_err());
    fs.set_faults_enabled(false);
    assert!(state_machine.apply(vec![first.clone()]).await.is_err());
    state_machine.close();
    let mut reopened = open(&fs, true);
    let applied = reopened.last_applied().map(|log_id| log_id.index);
    assert!(matches!(applied, Some(1 | 2)), "{applied:?}");
    if applied == Some(1) {
        reopened.apply(vec![first]).await.unwrap();
    }
    let (second, _) = append(3, head);
    reopened.apply(vec![second]).await.unwrap();
    assert_eq!(reopened.last_applied(), Some(log_id(3)));
}

/// A snapshot of stream "s" holding `count` events, at log index 100, built from a store
/// on a disk of its own.
fn snapshot(count: u64) -> (SnapshotMeta<NodeId, crate::types::Node>, SnapshotImage) {
    let fs = NodeFs::new(SimFileSystem::new(99, FaultConfig::NONE));
    let source = Path::new("/leader/store");
    let store = Kimberlite::open_with_fs(fs.clone(), source, Config::default()).unwrap();
    let stream = store.create_stream("s").unwrap();
    let events: Vec<String> = (0..count).map(|n| format!("x{n}")).collect();
    store.append(stream, events, ExpectedOffset::Any).unwrap();
    let image = SnapshotImage::build(&fs, source, &store, &Ledger::default())
        .and_then(|image| image.load(&fs, source))
        .unwrap();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(100)),
        last_membership: StoredMembership::default(),
        snapshot_id: "test".into(),
    };
    (meta, image)
}

/// The live generation's applied log index and stream 1's next offset.
fn position(state_machine: &StateMachine) -> (Option<u64>, u64) {
    let (next, applied) = state_machine.read(|store| {
        store
            .head(StreamId::new(1))
            .map_or(0, |head| head.next_offset.as_u64())
    });
    (applied.map(|log_id| log_id.index), next)
}

#[tokio::test]
async fn an_install_that_fails_or_loses_power_leaves_one_generation_whole() {
    let (mut installed, mut kept) = (0, 0);
    for seed in 0..24 {
        let fs = SimFileSystem::new(
            seed,
            FaultConfig {
                write_fail_probability: 0.02,
                sync_fail_probability: 0.1,
                ..FaultConfig::NONE
            },
        );
        fs.set_faults_enabled(false);
        let mut state_machine = open(&fs, true);
        apply_all(&mut state_machine).await;
        let old = position(&state_machine);
        let (meta, image) = snapshot(40);
        fs.set_faults_enabled(true);
        let result = state_machine.install_snapshot(&meta, Box::new(image)).await;
        fs.set_faults_enabled(false);
        state_machine.close();
        fs.crash();
        let now = position(&open(&fs, true));
        if now == (Some(100), 40) {
            installed += 1;
        } else {
            assert_eq!(now, old, "seed {seed}: {result:?}");
            assert!(
                result.is_err(),
                "seed {seed}: an install answered Ok was lost"
            );
            kept += 1;
        }
    }
    assert!(
        installed > 0 && kept > 0,
        "{installed} installed, {kept} kept"
    );
}

#[tokio::test]
async fn a_snapshot_that_does_not_match_its_heads_installs_nothing() {
    let fs = SimFileSystem::new(5, FaultConfig::NONE);
    let mut state_machine = open(&fs, true);
    apply_all(&mut state_machine).await;
    let old = position(&state_machine);
    let (meta, mut image) = snapshot(40);
    let segment = image
        .files
        .iter_mut()
        .rfind(|file| file.path.ends_with(".seg"));
    let segment = segment.unwrap();
    let mut bytes = segment.bytes.clone().unwrap().to_vec();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    segment.bytes = Some(Bytes::from(bytes));
    assert!(state_machine
        .install_snapshot(&meta, Box::new(image))
        .await
        .is_err());
    assert_eq!(position(&state_machine), old);
    state_machine.close();
    fs.crash();
    assert_eq!(position(&open(&fs, true)), old);
}

#[tokio::test]
async fn a_kept_snapshot_whose_segment_is_gone_is_built_again() {
    let fs = SimFileSystem::new(6, FaultConfig::NONE);
    let mut state_machine = open(&fs, true);
    apply_all(&mut state_machine).await;
    let built = state_machine.build_snapshot().await.unwrap();
    let segment = built
        .snapshot
        .files
        .iter()
        .rfind(|file| file.path.ends_with(".seg"))
        .unwrap();
    let path = Path::new(DIR).join("store").join(&segment.path);
    // Gone, as retention drops a segment: the kept snapshot cannot be sent as it is.
    kimberlite_storage::FileSystem::remove_file(&NodeFs::new(fs.clone()), &path).unwrap();
    let current = state_machine.get_current_snapshot().await.unwrap().unwrap();
    assert_ne!(current.meta.snapshot_id, built.meta.snapshot_id);
}

#[tokio::test]
async fn a_failed_background_save_halts_the_replica() {
    let fs = SimFileSystem::new(
        7,
        FaultConfig {
            sync_fail_probability: 1.0,
            ..FaultConfig::NONE
        },
    );
    fs.set_faults_enabled(false);
    let mut state_machine = open(&fs, true);
    state_machine.apply(vec![create()]).await.unwrap();
    // The stream's first append creates its files (synced as any new file is).
    let (first, head) = append(2, Head::default());
    state_machine.apply(vec![first]).await.unwrap();
    state_machine.save_now().unwrap();
    let (second, head) = append(3, head);
    fs.set_faults_enabled(true);
    // Answered without waiting for the store's or the applied state's sync ...
    state_machine.apply(vec![second]).await.unwrap();
    // ... which then fails in the background: the replica stops, and says why.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state_machine.halted().is_none() {
        assert!(std::time::Instant::now() < deadline, "no halt");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let halt = state_machine.halted().unwrap();
    assert!(matches!(halt, Halt::SaveFailed { .. }), "{halt:?}");
    fs.set_faults_enabled(false);
    let (third, _) = append(4, head);
    assert!(state_machine.apply(vec![third]).await.is_err());
    assert_eq!(state_machine.last_applied(), Some(log_id(3)));
}

#[tokio::test]
async fn a_snapshot_is_built_only_over_saved_state() {
    for seed in 0..4 {
        let fs = SimFileSystem::new(seed, FaultConfig::NONE);
        let mut state_machine = open(&fs, true);
        state_machine.apply(vec![create()]).await.unwrap();
        let mut head = Head::default();
        for index in 2..=BATCHES + 1 {
            let (entry, next) = append(index, head);
            state_machine.apply(vec![entry]).await.unwrap();
            head = next;
        }
        let built = state_machine.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(BATCHES + 1)));
        // Power lost with no close: openraft may have purged the log up to the snapshot, so
        // the store and the applied state must hold all it covers.
        fs.crash();
        let reopened = open(&fs, true);
        assert_eq!(
            position(&reopened),
            (Some(BATCHES + 1), BATCHES),
            "seed {seed}"
        );
    }
}

#[tokio::test]
async fn a_closed_state_machine_releases_its_store_and_writes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut state_machine = StateMachine::open(dir.path(), Config::default(), false).unwrap();
    state_machine.apply(Vec::new()).await.unwrap();
    state_machine.close();
    // A new incarnation of the node opens the store while the old one's tasks run.
    let reopened = Kimberlite::open_with(dir.path().join(STORE_DIR), Config::default());
    assert!(reopened.is_ok(), "{:?}", reopened.err());
    std::fs::remove_file(dir.path().join(APPLIED_FILE)).unwrap();
    assert!(state_machine.apply(Vec::new()).await.is_err());
    assert!(state_machine.build_snapshot().await.is_err());
    assert!(!dir.path().join(APPLIED_FILE).exists());
    assert!(!dir.path().join("snapshot.json").exists());
}
