//! The witness as a whole: its store across restarts, and its HTTP face on loopback.

use std::sync::Arc;

use kimberlite_proof::{
    add_cosignatures, consistency_proof, leaf_hash, parse_size_body, AddCheckpoint, Checkpoint,
    MemoryTree, NodeSource, SignerKey, WitnessPolicy, WitnessSigner, SIZE_CONTENT_TYPE,
};
use kimberlite_witness::{Witness, WitnessState, BODY_BYTES_MAX};

const ORIGIN: &str = "example.org/store/audit";

fn log_key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [5; 32]).unwrap()
}

fn witness_key() -> WitnessSigner {
    WitnessSigner::from_seed("witness.example/w1", [9; 32]).unwrap()
}

fn tree(leaves: &[&str]) -> MemoryTree {
    MemoryTree::from_leaves(leaves.iter().map(|leaf| leaf_hash(leaf.as_bytes())))
}

fn note(tree: &MemoryTree) -> String {
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: tree.leaf_count(),
        root: tree.root(),
        extensions: vec![],
    };
    log_key().sign(&checkpoint.to_text()).unwrap()
}

fn request(old: &MemoryTree, new: &MemoryTree) -> (String, String) {
    let old_size = old.leaf_count();
    let proof = if old_size == 0 {
        vec![]
    } else {
        consistency_proof(new, old_size, new.leaf_count()).unwrap()
    };
    let checkpoint = note(new);
    let body = AddCheckpoint {
        old_size,
        proof,
        checkpoint: checkpoint.clone(),
    }
    .to_body();
    (body, checkpoint)
}

fn open(dir: &std::path::Path) -> Witness {
    let mut state = WitnessState::open(dir).unwrap();
    if state.logs().is_empty() {
        state
            .add_log(ORIGIN, &log_key().verifier().to_text())
            .unwrap();
    }
    Witness::new(witness_key(), state)
}

#[test]
fn a_restart_keeps_the_state_and_the_fork_stays_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t3, t5) = (tree(&["a", "b", "c"]), tree(&["a", "b", "c", "d", "e"]));
    let fork5 = tree(&["a", "b", "c", "x", "y"]);
    {
        let witness = open(dir.path());
        let (body, checkpoint) = request(&tree(&[]), &t3);
        let answer = witness.add_checkpoint_at(body.as_bytes(), 1_700_000_000);
        assert_eq!(answer.status, 200, "{}", answer.body);
        let cosigned = add_cosignatures(&checkpoint, &answer.body).unwrap();
        let got = witness_key().verifier().verify(&cosigned).unwrap();
        assert_eq!(got.timestamp, 1_700_000_000);
        let answer = witness.add_checkpoint_at(request(&t3, &t5).0.as_bytes(), 1_700_000_001);
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // Reopened: the state is rebuilt from the store's streams.
    let witness = open(dir.path());
    let listed = witness.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].cosigned.unwrap().size, 5);
    let stale = witness.add_checkpoint_at(request(&tree(&[]), &t3).0.as_bytes(), 1);
    assert_eq!((stale.status, stale.content_type), (409, SIZE_CONTENT_TYPE));
    assert_eq!(parse_size_body(&stale.body).unwrap(), 5);
    // The other branch at the same size: refused, before and after the restart alike.
    let fork = AddCheckpoint {
        old_size: 5,
        proof: vec![],
        checkpoint: note(&fork5),
    };
    assert_eq!(
        witness
            .add_checkpoint_at(fork.to_body().as_bytes(), 2)
            .status,
        409
    );
}

#[test]
fn a_witness_with_another_key_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let witness = open(dir.path());
    let (body, checkpoint) = request(&tree(&[]), &tree(&["a"]));
    let answer = witness.add_checkpoint_at(body.as_bytes(), 7);
    let cosigned = add_cosignatures(&checkpoint, &answer.body).unwrap();
    let rotated = WitnessSigner::from_seed("witness.example/w1", [10; 32]).unwrap();
    let policy = WitnessPolicy::new(vec![rotated.verifier()], 1).unwrap();
    assert!(policy.check(&cosigned).is_err());
    let policy = WitnessPolicy::new(vec![witness_key().verifier()], 1).unwrap();
    assert_eq!(policy.check(&cosigned).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_endpoint_answers_with_the_specs_codes() {
    let dir = tempfile::tempdir().unwrap();
    let witness = Arc::new(open(dir.path()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kimberlite_witness::serve(listener, witness, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/add-checkpoint");
    let post = |body: String| client.post(&url).body(body).send();

    let (body, checkpoint) = request(&tree(&[]), &tree(&["a", "b"]));
    let response = post(body).await.unwrap();
    assert_eq!(response.status(), 200);
    let lines = response.text().await.unwrap();
    let cosigned = add_cosignatures(&checkpoint, &lines).unwrap();
    witness_key().verifier().verify(&cosigned).unwrap();

    let (stale, _) = request(&tree(&[]), &tree(&["a", "b"]));
    let response = post(stale).await.unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["content-type"], SIZE_CONTENT_TYPE);
    assert_eq!(response.text().await.unwrap(), "2\n");

    assert_eq!(post("garbage".into()).await.unwrap().status(), 400);
    let unknown = log_key().renamed("example.org/other").unwrap();
    let other = Checkpoint {
        origin: "example.org/other".into(),
        tree_size: 0,
        root: tree(&[]).root(),
        extensions: vec![],
    };
    let other = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: unknown.sign(&other.to_text()).unwrap(),
    };
    assert_eq!(post(other.to_body()).await.unwrap().status(), 404);
    // Over HTTP too: a signature by another key under the log's name (403), and a proof of
    // the wrong length from the size cosigned (422).
    let four = tree(&["a", "b", "c", "d"]);
    let impostor = SignerKey::from_seed(ORIGIN, [6; 32]).unwrap();
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: 4,
        root: four.root(),
        extensions: vec![],
    };
    let forged = AddCheckpoint {
        old_size: 2,
        proof: consistency_proof(&four, 2, 4).unwrap(),
        checkpoint: impostor.sign(&forged.to_text()).unwrap(),
    };
    assert_eq!(post(forged.to_body()).await.unwrap().status(), 403);
    let mut short = consistency_proof(&four, 2, 4).unwrap();
    short.pop();
    let short = AddCheckpoint {
        old_size: 2,
        proof: short,
        checkpoint: note(&four),
    };
    assert_eq!(post(short.to_body()).await.unwrap().status(), 422);
    assert_eq!(
        post("x".repeat(BODY_BYTES_MAX + 1)).await.unwrap().status(),
        413
    );
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn racing_branches_get_one_cosignature() {
    // Two forks of one log sent at once, each from size 0, many times over: the check and
    // the record are one step, so exactly one branch is ever cosigned.
    let dir = tempfile::tempdir().unwrap();
    let witness = Arc::new(open(dir.path()));
    let branches = [tree(&["a", "b"]), tree(&["x", "y"])];
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let witness = Arc::clone(&witness);
                let (body, _) = request(&tree(&[]), &branches[i % 2]);
                scope.spawn(move || witness.add_checkpoint_at(body.as_bytes(), 1).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        answers.iter().filter(|&&status| status == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(answers.iter().all(|&status| status == 200 || status == 409));
}
