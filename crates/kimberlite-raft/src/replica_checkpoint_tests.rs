//! [`Command::PublishCheckpoint`] on one replica: kept when its tree agrees, a stop when it
//! does not; and the kept notes travel in snapshots, checked on install.

use kimberlite::proof::{sign_checkpoint, stream_origin, Checkpoint, SignerKey};
use kimberlite::{Config, ExpectedOffset, Kimberlite, StreamId};

use crate::command::{Command, Head, Rejection, Response};
use crate::node_fs::NodeFs;
use crate::replica::{ApplyError, DivergencePoint, Ledger, Replica};
use crate::snapshot::SnapshotImage;
use crate::snapshot_error::SnapshotError;

/// A store in `dir` with stream "s" holding `events`, and the stream's id.
fn store_with(dir: &std::path::Path, events: &[&'static str]) -> (Kimberlite, u64) {
    let store = Kimberlite::open(dir).unwrap();
    let id = store.create_stream("s").unwrap();
    store
        .append(id, events.iter().copied(), ExpectedOffset::Any)
        .unwrap();
    (store, id.as_u64())
}

/// What a leader holding `store` proposes for a checkpoint of `size` events of `stream`.
fn publish(store: &Kimberlite, stream: u64, size: u64) -> Command {
    let key = SignerKey::from_seed("cluster", [5; 32]).unwrap();
    let root = store.tree_root_at(StreamId::new(stream), size).unwrap();
    let checkpoint = Checkpoint {
        origin: stream_origin("kb", "s").unwrap(),
        tree_size: size,
        root,
        extensions: Vec::new(),
    };
    Command::PublishCheckpoint {
        stream,
        tree_size: size,
        root: root.0,
        note: sign_checkpoint(&key, &checkpoint).unwrap(),
    }
}

fn note(command: &Command) -> &str {
    match command {
        Command::PublishCheckpoint { note, .. } => note,
        _ => unreachable!(),
    }
}

#[test]
fn a_checkpoint_is_kept_at_its_size_and_applied_again_keeps_the_same_note() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, stream) = store_with(&dir.path().join("leader"), &["a", "b"]);
    let command = publish(&leader, stream, 2);
    // The replica applied an append after the leader signed: it holds more events.
    let (store, _) = store_with(&dir.path().join("replica"), &["a", "b", "c"]);
    let mut replica = Replica::new(store, Ledger::default());
    for index in [7, 7] {
        assert_eq!(
            replica.apply(index, &command).unwrap(),
            Response::CheckpointKept { tree_size: 2 }
        );
    }
    let kept = replica
        .store()
        .latest_signed_checkpoint(StreamId::new(stream))
        .unwrap()
        .unwrap();
    assert_eq!((kept.tree_size, kept.note.as_str()), (2, note(&command)));
    // In a batch, answered in its place.
    assert_eq!(
        replica
            .apply(8, &Command::Batch(vec![command.clone()]))
            .unwrap(),
        Response::Batch(vec![Response::CheckpointKept { tree_size: 2 }])
    );
    // Nothing a request table or a stream's head records.
    assert!(replica.ledger().requests.is_empty());
    assert!(replica.take_changes().is_empty());
    // Refused the same way everywhere: an unknown stream, a note that says another size.
    let mut unknown = command.clone();
    if let Command::PublishCheckpoint { stream, .. } = &mut unknown {
        *stream = 9;
    }
    assert_eq!(
        replica.apply(8, &unknown).unwrap(),
        Response::Rejected(Rejection::UnknownStream { stream: 9 })
    );
    let mut lying = command.clone();
    if let Command::PublishCheckpoint { tree_size, .. } = &mut lying {
        *tree_size = 1;
    }
    assert!(matches!(
        replica.apply(8, &lying).unwrap(),
        Response::Rejected(Rejection::Invalid { .. })
    ));
}

#[test]
fn a_replica_whose_tree_has_another_root_or_fewer_events_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, stream) = store_with(&dir.path().join("leader"), &["a", "b"]);
    let command = publish(&leader, stream, 2);
    for (name, events) in [("other", &["a", "B"][..]), ("short", &["a"][..])] {
        let (store, _) = store_with(&dir.path().join(name), events);
        let mut replica = Replica::new(store, Ledger::default());
        let Err(ApplyError::Diverged(divergence)) = replica.apply(5, &command) else {
            panic!("{name}: a checkpoint of another history was kept")
        };
        assert_eq!(divergence.point, DivergencePoint::Checkpoint, "{name}");
        assert_eq!((divergence.index, divergence.stream), (5, stream));
        let Command::PublishCheckpoint { root, .. } = &command else {
            unreachable!()
        };
        assert_eq!(
            divergence.expected,
            Head {
                next_offset: 2,
                hash: Some(*root)
            }
        );
        assert_ne!(divergence.computed, divergence.expected);
        assert!(
            divergence.to_string().contains("at the checkpoint"),
            "{divergence}"
        );
        assert_eq!(
            replica
                .store()
                .latest_signed_checkpoint(StreamId::new(stream))
                .unwrap(),
            None,
            "{name}"
        );
    }
}

#[test]
fn a_snapshot_carries_the_kept_checkpoints_and_refuses_one_of_another_tree() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let (store, stream) = store_with(&source, &["a", "b", "c"]);
    let command = publish(&store, stream, 2);
    let mut replica = Replica::new(store, Ledger::default());
    replica.apply(4, &command).unwrap();
    let fs = NodeFs::os();
    let image = SnapshotImage::build(&fs, &source, replica.store(), &Ledger::default()).unwrap();
    let path = "checkpoints/00000000000000000001/00000000000000000002.checkpoint";
    assert!(image.unloaded().files.iter().any(|file| file.path == path));
    let image = image.load(&fs, &source).unwrap();
    let rebuilt = image
        .rebuild(
            fs.clone(),
            &dir.path().join("one"),
            Config::default(),
            false,
        )
        .unwrap();
    let kept = rebuilt
        .latest_signed_checkpoint(StreamId::new(stream))
        .unwrap()
        .unwrap();
    assert_eq!(kept.note, note(&command));

    // A checkpoint signed over another tree, under the same name: nothing installed.
    let (other, _) = store_with(&dir.path().join("other"), &["a", "B", "c"]);
    let forged = publish(&other, stream, 2);
    let mut bad = image.clone();
    for file in bad.files.iter_mut().filter(|file| file.path == path) {
        let bytes = bytes::Bytes::from(note(&forged).to_owned());
        file.len_bytes = bytes.len() as u64;
        file.bytes = Some(bytes);
    }
    let refused = bad.rebuild(fs, &dir.path().join("two"), Config::default(), false);
    assert!(
        matches!(
            refused,
            Err(SnapshotError::Mismatch {
                what: "checkpoint",
                ..
            })
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_kept_checkpoint_survives_power_loss_once_its_entry_is_applied() {
    use kimberlite_sim::fs::{FaultConfig, SimFileSystem};
    use openraft::storage::RaftStateMachine;
    use openraft::{Entry, EntryPayload};

    use crate::command::RequestId;
    use crate::log_file_tests::log_id;
    use crate::state_machine::StateMachine;

    let entry = |index: u64, command: Command| Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(command),
    };
    for seed in 0..8 {
        let fs = SimFileSystem::new(seed, FaultConfig::NONE);
        let open = || {
            StateMachine::open_with(
                NodeFs::new(fs.clone()),
                std::path::Path::new("/node"),
                Config::default(),
                true,
            )
            .unwrap()
        };
        let mut state_machine = open();
        let request = |seq| RequestId { client: 1, seq };
        let events = vec![bytes::Bytes::from_static(b"a")];
        let create = Command::CreateStream {
            request: request(0),
            name: "s".into(),
        };
        let append = Command::Append {
            request: request(1),
            stream: 1,
            prev: Head::default(),
            read_at: 1,
            expected: Head::default().after(&events),
            events,
        };
        state_machine
            .apply(vec![entry(1, create), entry(2, append)])
            .await
            .unwrap();
        let (command, _) = state_machine.read(|store| publish(store, 1, 1));
        state_machine
            .apply(vec![entry(3, command.clone())])
            .await
            .unwrap();
        state_machine.close();
        fs.crash();
        let reopened = open();
        assert_eq!(reopened.last_applied(), Some(log_id(3)), "seed {seed}");
        let (kept, _) = reopened.read(|store| store.latest_signed_checkpoint(StreamId::new(1)));
        assert_eq!(
            kept.unwrap().map(|kept| kept.note).as_deref(),
            Some(note(&command)),
            "seed {seed}"
        );
    }
}
