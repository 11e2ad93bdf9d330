//! Receipts: the spec's example, round trips, every single-bit and line alteration refused,
//! quorums, keys, proof lengths.

use super::*;
use crate::checkpoint::Checkpoint;
use crate::cosignature::WitnessSigner;
use crate::note::{NoteError, SignerKey};
use crate::signing::sign_checkpoint;
use crate::tree::{inclusion_proof, MemoryTree};

const EVENTS: [&[u8]; 7] = [b"e0", b"e1", b"e2", b"e3", b"e4", b"e5", b"e6"];
const INDEX: u64 = 5;

fn log() -> SignerKey {
    SignerKey::from_seed("kimberlite", [7; 32]).unwrap()
}

fn witness(n: u8) -> WitnessSigner {
    WitnessSigner::from_seed(&format!("witness.example/w{n}"), [n; 32]).unwrap()
}

/// A receipt of event 5 of 7, its checkpoint cosigned by `cosigners`.
fn receipt(cosigners: &[u8]) -> Receipt {
    let tree = MemoryTree::from_leaves((0u64..).zip(EVENTS).map(|(o, e)| event_leaf_hash(o, e)));
    let checkpoint = Checkpoint {
        origin: "ehr/audit".into(),
        tree_size: 7,
        root: tree.root(),
        extensions: vec![],
    };
    let mut note = sign_checkpoint(&log(), &checkpoint).unwrap();
    for n in cosigners {
        note.push_str(
            &witness(*n)
                .cosign(&checkpoint.to_text(), 1_700_000_000)
                .unwrap(),
        );
    }
    let proof = inclusion_proof(&tree, INDEX, 7).unwrap();
    Receipt::new(INDEX, event_leaf_hash(INDEX, EVENTS[5]), proof, &note)
}

fn policy(witnesses: &[u8], quorum: usize) -> WitnessPolicy {
    let keys = witnesses.iter().map(|n| witness(*n).verifier()).collect();
    WitnessPolicy::new(keys, quorum).unwrap()
}

#[test]
fn a_receipt_round_trips_and_verifies_with_and_without_the_event() {
    let receipt = receipt(&[1, 2]);
    let text = receipt.to_text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
    assert!(text.contains("\nindex 5\n"));
    assert_eq!(Receipt::parse(&text).unwrap(), receipt);
    let policy = policy(&[1, 2, 3], 2);
    let verified =
        verify_receipt(&text, &log().verifier(), Some(&policy), Some(EVENTS[5])).unwrap();
    assert_eq!(verified.index, 5);
    assert_eq!(verified.checkpoint.tree_size, 7);
    assert_eq!(verified.checkpoint.origin, "ehr/audit");
    assert!(verified.event_checked);
    let names: Vec<_> = verified
        .cosigned
        .iter()
        .map(|c| c.witness.as_str())
        .collect();
    assert_eq!(names, ["witness.example/w1", "witness.example/w2"]);
    // Without the event, the leaf hash in `extra` is what is proven.
    let bare = verify_receipt(&text, &log().verifier(), None, None).unwrap();
    assert!(!bare.event_checked);
    assert_eq!(bare.leaf_hash, verified.leaf_hash);
    assert!(bare.cosigned.is_empty());
    // Without `extra` (as another log may write it), the event is needed.
    let plain = Receipt {
        extra: None,
        ..receipt
    };
    let plain = plain.to_text();
    assert!(verify_receipt(&plain, &log().verifier(), None, Some(EVENTS[5])).is_ok());
    assert_eq!(
        verify_receipt(&plain, &log().verifier(), None, None),
        Err(ReceiptError::NoLeaf)
    );
    assert_eq!(
        other_signers(&receipt_text_note(&text), &log().verifier()),
        ["witness.example/w1", "witness.example/w2"]
    );
}

fn receipt_text_note(text: &str) -> String {
    Receipt::parse(text).unwrap().checkpoint
}

/// The spec's example (its signatures elided, so it parses but cannot verify) reads back
/// byte for byte.
#[test]
fn the_spec_example_reads_back_byte_for_byte() {
    let example = "c2sp.org/tlog-proof@v1\n\
        extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n\
        index 73894\n\
        gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\
        B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n\
        EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n\
        RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n\
        AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n\
        \n\
        example.com/fancylog\n\
        109482\n\
        sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\
        \n\
        \u{2014} example.com/fancylog hI2DJw[...]1roloI=\n";
    let parsed = Receipt::parse(example).unwrap();
    assert_eq!(parsed.index, 73894);
    assert_eq!(parsed.proof.len(), 5);
    assert!(parsed
        .extra
        .as_deref()
        .unwrap()
        .starts_with(b"age-v1.2.1-darwin-arm64.tar.gz"));
    assert!(parsed
        .checkpoint
        .starts_with("example.com/fancylog\n109482\n"));
    assert_eq!(parsed.to_text(), example);
    // The smallest shapes: no extra line, an empty proof, an empty extra.
    for text in [
        "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nextra \nindex 10\n\ncheckpoint\n",
    ] {
        assert_eq!(Receipt::parse(text).unwrap().to_text(), text);
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    let text = receipt(&[1, 2]).to_text();
    let policy = policy(&[1, 2], 2);
    let key = log().verifier();
    assert!(verify_receipt(&text, &key, Some(&policy), None).is_ok());
    let mut checked = 0;
    for position in 0..text.len() {
        for bit in 0..8 {
            let mut bytes = text.clone().into_bytes();
            bytes[position] ^= 1 << bit;
            // Bytes that are no longer UTF-8 are not a receipt at all (a reader refuses them
            // or, reading lossily, sees U+FFFD, which no line may hold).
            let Ok(altered) = String::from_utf8(bytes) else {
                continue;
            };
            for event in [None, Some(EVENTS[5])] {
                let outcome = verify_receipt(&altered, &key, Some(&policy), event);
                assert!(outcome.is_err(), "byte {position} bit {bit}: {altered}");
            }
            checked += 1;
        }
    }
    assert!(checked > text.len() * 4, "{checked}");
}

#[test]
fn every_line_removed_or_swapped_is_refused() {
    let text = receipt(&[1, 2]).to_text();
    let policy = policy(&[1, 2], 2);
    let key = log().verifier();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for removed in 0..lines.len() {
        let mut altered = lines.clone();
        altered.remove(removed);
        let altered = altered.concat();
        assert!(
            verify_receipt(&altered, &key, Some(&policy), None).is_err(),
            "line {removed} removed: {altered}"
        );
    }
    // Signature lines are a set (signed-note): their order means nothing. Every other pair
    // of neighbours, swapped, is refused.
    let signatures = lines.iter().filter(|l| l.starts_with('\u{2014}')).count();
    for first in 0..lines.len() - signatures - 1 {
        if lines[first] == lines[first + 1] {
            continue;
        }
        let mut altered = lines.clone();
        altered.swap(first, first + 1);
        let altered = altered.concat();
        assert!(
            verify_receipt(&altered, &key, Some(&policy), None).is_err(),
            "lines {first} and {} swapped: {altered}",
            first + 1
        );
    }
}

#[test]
fn below_quorum_and_foreign_cosignatures_are_refused() {
    let key = log().verifier();
    let text = receipt(&[1, 2, 9]).to_text();
    // w9 is not in the policy: two of the three it asks for.
    match verify_receipt(&text, &key, Some(&policy(&[1, 2, 3], 3)), None) {
        Err(ReceiptError::Witnesses(CosignatureError::BelowThreshold {
            valid: 2,
            threshold: 3,
            names,
        })) => assert!(names.contains("witness.example/w3"), "{names}"),
        other => panic!("{other:?}"),
    }
    assert!(verify_receipt(&text, &key, Some(&policy(&[1, 2, 3], 2)), None).is_ok());
    // A cosignature over another checkpoint (a fork the witness saw) counts as absent.
    let unwitnessed = receipt(&[]).to_text();
    assert!(matches!(
        verify_receipt(&unwitnessed, &key, Some(&policy(&[1], 1)), None),
        Err(ReceiptError::Witnesses(CosignatureError::BelowThreshold {
            valid: 0,
            ..
        }))
    ));
}

#[test]
fn another_log_key_is_refused() {
    let text = receipt(&[1]).to_text();
    let other = SignerKey::from_seed("kimberlite", [8; 32]).unwrap();
    let outcome = verify_receipt(&text, &other.verifier(), None, None);
    assert!(
        matches!(
            outcome,
            Err(ReceiptError::Checkpoint(CheckpointError::Note(
                NoteError::NoSignature { .. }
            )))
        ),
        "{outcome:?}"
    );
    assert!(outcome
        .unwrap_err()
        .to_string()
        .starts_with("log signature:"));
}

#[test]
fn proofs_of_the_wrong_length_or_index_are_refused() {
    let key = log().verifier();
    let good = receipt(&[]);
    let mut longer = good.clone();
    longer.proof.push(Hash([0; 32]));
    let mut shorter = good.clone();
    shorter.proof.pop();
    for (altered, got) in [(longer, 4), (shorter, 2)] {
        match verify_receipt(&altered.to_text(), &key, None, None) {
            Err(ReceiptError::Inclusion {
                index: 5,
                tree_size: 7,
                source:
                    ProofError::WrongLength {
                        got: g,
                        expected: 3,
                    },
            }) => assert_eq!(g, got),
            other => panic!("{other:?}"),
        }
    }
    let beyond = Receipt {
        index: 7,
        ..good.clone()
    };
    assert!(matches!(
        verify_receipt(&beyond.to_text(), &key, None, None),
        Err(ReceiptError::Inclusion {
            source: ProofError::IndexOutOfRange {
                index: 7,
                tree_size: 7
            },
            ..
        })
    ));
    // Another event at the same index.
    match verify_receipt(&good.to_text(), &key, None, Some(b"e4")) {
        Err(ReceiptError::LeafMismatch {
            index: 5,
            event,
            receipt,
        }) => {
            assert_eq!(event, event_leaf_hash(5, b"e4"));
            assert_eq!(receipt, event_leaf_hash(5, EVENTS[5]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_receipts_name_the_line() {
    let note = receipt(&[]).checkpoint;
    let hash = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let many = format!("{hash}\n").repeat(65);
    let cases = [
        (String::new(), 1),
        ("c2sp.org/tlog-proof@v2\nindex 0\n\n".to_owned() + &note, 1),
        ("c2sp.org/tlog-proof@v1\n".to_owned(), 2),
        ("c2sp.org/tlog-proof@v1\nindex 01\n\n".to_owned() + &note, 2),
        ("c2sp.org/tlog-proof@v1\nindex -1\n\n".to_owned() + &note, 2),
        ("c2sp.org/tlog-proof@v1\nindex +1\n\n".to_owned() + &note, 2),
        ("c2sp.org/tlog-proof@v1\nindex  1\n\n".to_owned() + &note, 2),
        (
            "c2sp.org/tlog-proof@v1\r\nindex 1\n\n".to_owned() + &note,
            1,
        ),
        (
            "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\n".to_owned() + &note,
            2,
        ),
        (
            "c2sp.org/tlog-proof@v1\nextra AA==\n\n".to_owned() + &note,
            3,
        ),
        (
            "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\n".to_owned() + &note,
            3,
        ),
        (
            format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash}\r\n\n{note}"),
            3,
        ),
        (
            format!("c2sp.org/tlog-proof@v1\nindex 1\n{many}\n{note}"),
            67,
        ),
        (format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash}\n"), 4),
        (format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash}\n\n"), 5),
    ];
    for (text, line) in cases {
        match Receipt::parse(&text) {
            Err(ReceiptError::Malformed { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let huge = "x".repeat(MAX_RECEIPT_BYTES + 1);
    assert!(matches!(
        Receipt::parse(&huge),
        Err(ReceiptError::Malformed { line: 0, .. })
    ));
}
