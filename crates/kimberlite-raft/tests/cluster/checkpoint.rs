//! Checkpoints published through the log: signed by the leader over committed state, kept by
//! every replica (after a restart that applies the log again, and in a snapshot a new node
//! installs), and a stop on a replica whose tree disagrees.

use std::time::Duration;

use kimberlite::proof::{sign_checkpoint, stream_origin, Checkpoint, Hash, SignerKey};
use kimberlite::StreamId;
use kimberlite_raft::{Cluster, Command, DivergencePoint, Head, Node, PublishedCheckpoint};
use openraft::SnapshotPolicy;

use crate::common::{event, eventually, options, request, WAIT};

fn key() -> SignerKey {
    SignerKey::from_seed("cluster", [4; 32]).unwrap()
}

fn origin() -> String {
    stream_origin("kb", "audit").unwrap()
}

/// The largest checkpoint node `node` keeps for `stream`, as its note.
fn kept(node: &Node, stream: u64) -> Option<String> {
    let (kept, _) = node.with_store(|store| {
        store
            .latest_signed_checkpoint(StreamId::new(stream))
            .unwrap()
    });
    kept.map(|kept| kept.note)
}

/// Publishes a checkpoint of `stream` on the leader (retried across an election).
async fn publish(cluster: &Cluster, stream: u64) -> PublishedCheckpoint {
    for _ in 0..100 {
        let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
        match leader.publish_checkpoint(stream, &origin(), &key()).await {
            Ok(published) => return published,
            Err(error) => eprintln!("publish: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint published");
}

/// Waits until every running node keeps `note` as its largest checkpoint of `stream`.
async fn everywhere(cluster: &Cluster, stream: u64, note: &str) {
    for id in cluster.running() {
        let node = cluster.node(id).unwrap();
        eventually(&format!("node {id} to keep the checkpoint"), || {
            kept(&node, stream).as_deref() == Some(note)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_checkpoint_is_kept_by_every_replica_and_after_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(31))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "audit").await.unwrap();
    let mut last = None;
    for seq in 1..=3 {
        let appended = cluster
            .append(request(0, seq), stream, vec![event(format!("e{seq}"))])
            .await
            .unwrap();
        last = Some(appended.head);
    }
    let published = publish(&cluster, stream).await;
    assert_eq!(published.tree_size, 3);
    assert_eq!(last.unwrap().next_offset, 3);
    let opened = Checkpoint::open_by_log(&published.note, &key().verifier()).unwrap();
    assert_eq!((opened.tree_size, opened.root.0), (3, published.root));
    assert_eq!(opened.origin, origin());
    everywhere(&cluster, stream, &published.note).await;
    // Every replica's tree has that root at that size.
    for id in cluster.running() {
        let node = cluster.node(id).unwrap();
        let (root, _) = node.with_store(|store| store.tree_root_at(StreamId::new(stream), 3));
        assert_eq!(root.unwrap().0, published.root, "node {id}");
    }

    // Asked again with nothing new: the same note, no log entry.
    let index = published.log_id.unwrap().index;
    let again = publish(&cluster, stream).await;
    assert_eq!(again.note, published.note);
    assert!(again.log_id.unwrap().index >= index);
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    assert_eq!(leader.raft().metrics().borrow().last_log_index, Some(index));

    // A follower whose applied state is lost applies the whole log again: same notes.
    let follower = *cluster
        .running()
        .iter()
        .find(|&&id| id != leader.id())
        .unwrap();
    cluster.stop(follower).await;
    std::fs::remove_file(
        cluster
            .node_dir(follower)
            .join(kimberlite_raft::APPLIED_FILE),
    )
    .unwrap();
    cluster
        .append(request(0, 4), stream, vec![event("e4".into())])
        .await
        .unwrap();
    let grown = publish(&cluster, stream).await;
    assert_eq!(grown.tree_size, 4);
    cluster.start_node(follower).await.unwrap();
    everywhere(&cluster, stream, &grown.note).await;
    let node = cluster.node(follower).unwrap();
    let (three, _) = node.with_store(|store| {
        std::fs::read_to_string(
            store
                .path()
                .unwrap()
                .join("checkpoints/00000000000000000001/00000000000000000003.checkpoint"),
        )
    });
    assert_eq!(three.unwrap(), published.note);
    assert!(node.halted().is_none());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_gets_the_checkpoints_in_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(32);
    options.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(10);
    options.raft.max_in_snapshot_log_to_keep = 0;
    options.raft.purge_batch_size = 1;
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options)
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "audit").await.unwrap();
    cluster
        .append(request(0, 1), stream, vec![event("first".into())])
        .await
        .unwrap();
    let published = publish(&cluster, stream).await;
    let entry = published.log_id.unwrap().index;
    for seq in 2..=25 {
        cluster
            .append(request(0, seq), stream, vec![event(format!("e{seq}"))])
            .await
            .unwrap();
    }
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    eventually("the leader's log purged past the checkpoint", || {
        leader.log().first_index().is_none_or(|first| first > entry)
    })
    .await;
    cluster.add_learner(4).await.unwrap();
    let learner = cluster.node(4).unwrap();
    eventually("a snapshot installed", || {
        learner.raft().metrics().borrow().snapshot.is_some()
    })
    .await;
    eventually("the learner to keep the checkpoint", || {
        kept(&learner, stream).as_deref() == Some(published.note.as_str())
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_tree_stops_the_replicas_that_apply_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &[1, 2, 3], options(33))
        .await
        .unwrap();
    let stream = cluster.create_stream(request(0, 0), "audit").await.unwrap();
    cluster
        .append(request(0, 1), stream, vec![event("a".into())])
        .await
        .unwrap();
    let leader = cluster.node(cluster.leader(WAIT).await.unwrap()).unwrap();
    // A note signed over a root no replica has (a leader's bug, or a forged entry).
    let root = Hash([7; 32]);
    let note = sign_checkpoint(
        &key(),
        &Checkpoint {
            origin: origin(),
            tree_size: 1,
            root,
            extensions: Vec::new(),
        },
    )
    .unwrap();
    let forged = Command::PublishCheckpoint {
        stream,
        tree_size: 1,
        root: root.0,
        note,
    };
    let write =
        tokio::time::timeout(Duration::from_secs(3), leader.raft().client_write(forged)).await;
    assert!(
        !matches!(write, Ok(Ok(_))),
        "a checkpoint of another tree was acknowledged"
    );
    eventually("the leader to stop", || leader.halted().is_some()).await;
    let divergence = leader.halted().unwrap().divergence().cloned().unwrap();
    assert_eq!(divergence.point, DivergencePoint::Checkpoint);
    assert_eq!(divergence.stream, stream);
    assert_eq!(
        divergence.expected,
        Head {
            next_offset: 1,
            hash: Some(root.0)
        }
    );
    assert_eq!(divergence.computed.next_offset, 1);
    assert_eq!(kept(&leader, stream), None);
    for id in cluster.running() {
        let node = cluster.node(id).unwrap();
        if let Some(halted) = node.halted() {
            assert_eq!(halted.divergence(), Some(&divergence), "node {id}");
        }
        assert_eq!(kept(&node, stream), None, "node {id} kept it");
    }
    cluster.shutdown().await;
}
