//! Every row of the decision table, garbage, and a forked log.

use super::*;
use kimberlite_proof::{consistency_proof, leaf_hash, MemoryTree, NodeSource, SignerKey};

const ORIGIN: &str = "example.org/store/audit";

fn log_key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [5; 32]).unwrap()
}

fn tree(leaves: &[&str]) -> MemoryTree {
    MemoryTree::from_leaves(leaves.iter().map(|leaf| leaf_hash(leaf.as_bytes())))
}

fn note(signer: &SignerKey, origin: &str, tree: &MemoryTree) -> String {
    let checkpoint = Checkpoint {
        origin: origin.into(),
        tree_size: tree.leaf_count(),
        root: tree.root(),
        extensions: vec![],
    };
    signer.sign(&checkpoint.to_text()).unwrap()
}

fn body(old_size: u64, proof: Vec<Hash>, checkpoint: String) -> Vec<u8> {
    AddCheckpoint {
        old_size,
        proof,
        checkpoint,
    }
    .to_body()
    .into_bytes()
}

fn logs() -> BTreeMap<String, VerifierKey> {
    BTreeMap::from([(ORIGIN.to_owned(), log_key().verifier())])
}

fn at(tree: &MemoryTree) -> impl Fn(&str) -> Option<Cosigned> + '_ {
    move |_| {
        Some(Cosigned {
            size: tree.leaf_count(),
            root: tree.root(),
        })
    }
}

fn never(_: &str) -> Option<Cosigned> {
    None
}

fn status(result: Result<Accepted, Refusal>) -> u16 {
    result.map_or_else(|refusal| refusal.status(), |_| 200)
}

#[test]
fn the_first_checkpoint_is_cosigned_from_zero() {
    let t3 = tree(&["a", "b", "c"]);
    let accepted = decide(
        &body(0, vec![], note(&log_key(), ORIGIN, &t3)),
        &logs(),
        never,
    )
    .unwrap();
    assert_eq!(accepted.origin, ORIGIN);
    assert_eq!(
        accepted.cosigned,
        Cosigned {
            size: 3,
            root: t3.root()
        }
    );
    assert!(accepted.text.starts_with(ORIGIN));
}

#[test]
fn an_extension_with_its_proof_is_cosigned() {
    let t3 = tree(&["a", "b", "c"]);
    let t5 = tree(&["a", "b", "c", "d", "e"]);
    let proof = consistency_proof(&t5, 3, 5).unwrap();
    let request = body(3, proof, note(&log_key(), ORIGIN, &t5));
    let accepted = decide(&request, &logs(), at(&t3)).unwrap();
    assert_eq!(accepted.cosigned.size, 5);
    // The same checkpoint again (old = size, same root, empty proof): cosigned again.
    let again = body(5, vec![], note(&log_key(), ORIGIN, &t5));
    assert_eq!(status(decide(&again, &logs(), at(&t5))), 200);
}

#[test]
fn every_refusal_has_the_specs_code() {
    let t3 = tree(&["a", "b", "c"]);
    let t5 = tree(&["a", "b", "c", "d", "e"]);
    let good_note = note(&log_key(), ORIGIN, &t5);
    let proof = consistency_proof(&t5, 3, 5).unwrap();

    // 400: garbage, not UTF-8, a malformed checkpoint text.
    for garbage in [
        &b""[..],
        b"\xff\xfe",
        b"old 3\n\nnot a checkpoint\n\n\xe2\x80\x94 x AAAAAAAA\n",
        b"hello",
    ] {
        assert_eq!(
            status(decide(garbage, &logs(), at(&t3))),
            400,
            "{garbage:?}"
        );
    }
    // 404: another origin (even if signed by the right key).
    let other = note(
        &log_key().renamed("example.org/store/other").unwrap(),
        "example.org/store/other",
        &t5,
    );
    assert_eq!(
        status(decide(&body(3, proof.clone(), other), &logs(), at(&t3))),
        404
    );
    // 403: signed by another key under the log's name.
    let impostor = SignerKey::from_seed(ORIGIN, [6; 32]).unwrap();
    let forged = note(&impostor, ORIGIN, &t5);
    assert_eq!(
        status(decide(&body(3, proof.clone(), forged), &logs(), at(&t3))),
        403
    );
    // 400: old size above the checkpoint's.
    assert_eq!(
        status(decide(
            &body(6, vec![], good_note.clone()),
            &logs(),
            at(&t3)
        )),
        400
    );
    // 409 with the witness's size: old size is not what the witness cosigned.
    let conflict = decide(&body(2, proof.clone(), good_note.clone()), &logs(), at(&t3));
    assert_eq!(
        conflict,
        Err(Refusal::Conflict {
            witness_size: 3,
            reason: "the request's old size is another"
        })
    );
    assert_eq!(
        status(decide(
            &body(0, vec![], good_note.clone()),
            &logs(),
            at(&t3)
        )),
        409
    );
    // 422: a proof of the wrong length, a changed hash, a proof from 0.
    let mut short = proof.clone();
    short.pop();
    assert_eq!(
        status(decide(&body(3, short, good_note.clone()), &logs(), at(&t3))),
        422
    );
    let mut long = proof.clone();
    long.push(Hash([0; 32]));
    assert_eq!(
        status(decide(&body(3, long, good_note.clone()), &logs(), at(&t3))),
        422
    );
    let mut changed = proof.clone();
    changed[0].0[0] ^= 1;
    assert_eq!(
        status(decide(
            &body(3, changed, good_note.clone()),
            &logs(),
            at(&t3)
        )),
        422
    );
    assert_eq!(
        status(decide(&body(0, proof, good_note), &logs(), never)),
        422
    );
}

#[test]
fn a_forked_log_is_cosigned_on_one_branch_only() {
    // Two trees under the same key that share the first two events.
    let common = tree(&["a", "b"]);
    let branch_a = tree(&["a", "b", "c", "d"]);
    let branch_b = tree(&["a", "b", "x", "y"]);
    let longer_b = tree(&["a", "b", "x", "y", "z"]);
    // The witness cosigned branch A at 4.
    let witness = at(&branch_a);
    // B at the same size: 409 (same size, another root).
    let same_size = body(4, vec![], note(&log_key(), ORIGIN, &branch_b));
    assert!(matches!(
        decide(&same_size, &logs(), &witness),
        Err(Refusal::Conflict {
            witness_size: 4,
            ..
        })
    ));
    // B grown past A, with B's honest proof from 4: 422.
    let proof = consistency_proof(&longer_b, 4, 5).unwrap();
    let grown = body(4, proof, note(&log_key(), ORIGIN, &longer_b));
    assert_eq!(status(decide(&grown, &logs(), &witness)), 422);
    // B from their common prefix: 409, the witness is past it.
    let proof = consistency_proof(&longer_b, 2, 5).unwrap();
    let from_common = body(
        common.leaf_count(),
        proof,
        note(&log_key(), ORIGIN, &longer_b),
    );
    assert_eq!(status(decide(&from_common, &logs(), &witness)), 409);
    // A rolled back to 2: 400 with old 4, 409 with old 2.
    let rolled_back = note(&log_key(), ORIGIN, &common);
    assert_eq!(
        status(decide(
            &body(4, vec![], rolled_back.clone()),
            &logs(),
            &witness
        )),
        400
    );
    assert_eq!(
        status(decide(&body(2, vec![], rolled_back), &logs(), &witness)),
        409
    );
}

#[test]
fn a_size_zero_checkpoint_needs_the_empty_root() {
    let empty = tree(&[]);
    let ok = body(0, vec![], note(&log_key(), ORIGIN, &empty));
    assert_eq!(status(decide(&ok, &logs(), never)), 200);
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: 0,
        root: Hash([1; 32]),
        extensions: vec![],
    };
    let forged = log_key().sign(&forged.to_text()).unwrap();
    assert_eq!(
        status(decide(&body(0, vec![], forged), &logs(), never)),
        409
    );
}
