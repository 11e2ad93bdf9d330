//! Cosignatures: the spec's example, round trips, forgeries, policies, and an independent
//! C2SP implementation (`signed_note` from crates.io) reading what we write.

use super::*;
use crate::note::{parse_signature_line, SignerKey, VerifierKey};
use crate::witness_policy::{verify_witnessed, WitnessPolicy};

const CHECKPOINT: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn log() -> SignerKey {
    SignerKey::from_seed("example.com/behind-the-sofa", [1; 32]).unwrap()
}

fn witness(n: u8) -> WitnessSigner {
    WitnessSigner::from_seed(&format!("witness.example/w{n}"), [n; 32]).unwrap()
}

fn cosigned(note: &str, witnesses: &[&WitnessSigner], timestamp: u64) -> String {
    let mut note = note.to_owned();
    for witness in witnesses {
        note.push_str(&witness.cosign(CHECKPOINT, timestamp).unwrap());
    }
    note
}

#[test]
fn the_spec_example_message_and_line() {
    // tlog-cosignature, "Ed25519 signed message": the message for time 1679315147.
    assert_eq!(
        cosigned_message(CHECKPOINT, 1_679_315_147),
        "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n\
         CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    // Its example line: key id, then that timestamp big-endian, then 64 signature bytes.
    let line = parse_signature_line(
        "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
    )
    .unwrap();
    assert_eq!(line.name, "witness.example.com/w1");
    assert_eq!(line.key_id, 0x8d66_cf3f);
    assert_eq!(line.signature.len(), COSIGNATURE_BYTES);
    let timestamp = u64::from_be_bytes(line.signature[..8].try_into().unwrap());
    assert_eq!(timestamp, 1_679_315_147);
}

#[test]
fn cosign_then_verify() {
    let note = log().sign(CHECKPOINT).unwrap();
    let w1 = witness(1);
    let note = cosigned(&note, &[&w1], 1_700_000_000);
    let got = w1.verifier().verify(&note).unwrap();
    assert_eq!(got.timestamp, 1_700_000_000);
    assert_eq!(got.witness, "witness.example/w1");
    // The log's own signature still verifies on the cosigned note.
    assert!(log().verifier().open(&note).is_ok());
}

#[test]
fn forged_or_foreign_cosignatures_are_refused() {
    let note = log().sign(CHECKPOINT).unwrap();
    let w1 = witness(1);
    let good = cosigned(&note, &[&w1], 1_700_000_000);
    let changed = good.replace("20852163", "20852164");
    assert!(matches!(
        w1.verifier().verify(&changed),
        Err(CosignatureError::BadCosignature { .. })
    ));
    // Another key under the same name: another key id, so absent.
    let impostor = WitnessSigner::from_seed("witness.example/w1", [9; 32]).unwrap();
    let forged = cosigned(&note, &[&impostor], 1_700_000_000);
    assert!(matches!(
        w1.verifier().verify(&forged),
        Err(CosignatureError::NoCosignature { .. })
    ));
    // A log-type (0x01) signature by the witness's own key is not a cosignature.
    let seed_twin = SignerKey::from_seed("witness.example/w1", [1; 32]).unwrap();
    let plain = seed_twin.sign(CHECKPOINT).unwrap();
    assert!(w1.verifier().verify(&plain).is_err());
    // A changed timestamp breaks the signature.
    let line = w1.cosign(CHECKPOINT, 5).unwrap();
    let mut parsed = parse_signature_line(line.trim_end()).unwrap();
    parsed.signature[7] ^= 1;
    let relined = signature_line(parsed.name, parsed.key_id, &parsed.signature);
    assert!(matches!(
        w1.verifier().verify(&format!("{note}{relined}")),
        Err(CosignatureError::BadCosignature { .. })
    ));
    assert!(matches!(
        w1.cosign(CHECKPOINT, MAX_TIMESTAMP + 1),
        Err(CosignatureError::TimestampTooLarge { .. })
    ));
}

#[test]
fn keys_roundtrip_and_refuse_the_other_type() {
    for seed in 0..32u8 {
        let signer = WitnessSigner::from_seed("w", [seed; 32]).unwrap();
        let parsed = WitnessSigner::parse(&signer.to_text()).unwrap();
        assert_eq!(parsed.to_text(), signer.to_text());
        let key = WitnessKey::parse(&signer.verifier().to_text()).unwrap();
        assert_eq!(key, signer.verifier());
    }
    // A log key (0x01) is not a witness key, nor the reverse.
    let log = log();
    assert!(WitnessKey::parse(&log.verifier().to_text()).is_err());
    assert!(WitnessSigner::parse(&log.to_text()).is_err());
    assert!(VerifierKey::parse(&witness(1).verifier().to_text()).is_err());
    for text in ["", "w", "w+00000000+BAAA", "a b+00000000+BA==", "+++"] {
        assert!(WitnessKey::parse(text).is_err(), "{text:?}");
        assert!(WitnessSigner::parse(text).is_err(), "{text:?}");
    }
    // A text whose key id is not its name's and key's.
    let signer = witness(1);
    let (id, other) = (signer.key_id(), signer.key_id() ^ 1);
    let forged = |text: String| text.replacen(&format!("{id:08x}"), &format!("{other:08x}"), 1);
    let mismatch = |what| NoteError::MalformedKey {
        what,
        reason: "the key id does not match the name and key",
    };
    for (parsed, what) in [
        (
            WitnessSigner::parse(&forged(signer.to_text())).err(),
            "witness signer",
        ),
        (
            WitnessKey::parse(&forged(signer.verifier().to_text())).err(),
            "witness verifier",
        ),
    ] {
        assert_eq!(
            parsed.map(|error| error.to_string()),
            Some(CosignatureError::from(mismatch(what)).to_string())
        );
    }
}

#[test]
fn a_policy_counts_distinct_valid_cosignatures() {
    let (w1, w2, w3) = (witness(1), witness(2), witness(3));
    let keys = vec![w1.verifier(), w2.verifier(), w3.verifier()];
    let policy = WitnessPolicy::new(keys.clone(), 2).unwrap();
    let note = log().sign(CHECKPOINT).unwrap();

    let two = cosigned(&note, &[&w1, &w3], 1);
    let (checkpoint, valid) = verify_witnessed(&two, &log().verifier(), &policy).unwrap();
    assert_eq!(checkpoint.tree_size, 20_852_163);
    assert_eq!(valid.len(), 2);

    // The same witness twice is one.
    let one_twice = cosigned(&note, &[&w1, &w1], 1);
    assert!(matches!(
        policy.check(&one_twice),
        Err(CosignatureError::BelowThreshold {
            valid: 1,
            threshold: 2,
            ..
        })
    ));
    // A bad cosignature counts as none; an unknown witness is ignored.
    let stranger = witness(7);
    let mixed = cosigned(&note, &[&w2, &stranger], 1).replace("20852163", "20852160");
    assert!(policy.check(&mixed).is_err());
    // The log's signature is checked too.
    let other_log = SignerKey::from_seed("example.com/behind-the-sofa", [2; 32]).unwrap();
    assert!(matches!(
        verify_witnessed(&two, &other_log.verifier(), &policy),
        Err(CosignatureError::Checkpoint(_))
    ));

    for threshold in [0, 4] {
        assert!(matches!(
            WitnessPolicy::new(keys.clone(), threshold),
            Err(CosignatureError::BadThreshold { .. })
        ));
    }
    let duplicated = vec![w1.verifier(), w1.verifier()];
    assert!(WitnessPolicy::new(duplicated, 2).is_err());
}

/// A cosignature verifier written against `signed_note`'s traits only: its key id comes from
/// `signed_note::key_id`, its message is built here from the spec's text.
struct IndependentCosignatureVerifier {
    name: String,
    public: ed25519_dalek::VerifyingKey,
}

impl signed_note::Verifier for IndependentCosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        let mut key = vec![0x04];
        key.extend_from_slice(self.public.as_bytes());
        signed_note::key_id(&self.name, &key)
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, sig)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let mut message =
            format!("cosignature/v1\ntime {}\n", u64::from_be_bytes(*time)).into_bytes();
        message.extend_from_slice(msg);
        ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|sig| ed25519_dalek::Verifier::verify(&self.public, &message, &sig).is_ok())
    }
}

#[test]
fn signed_note_reads_our_cosigned_notes() {
    let w1 = witness(1);
    let note = cosigned(&log().sign(CHECKPOINT).unwrap(), &[&w1], 1_700_000_000);
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    assert_eq!(parsed.text(), CHECKPOINT.as_bytes());

    let public = ed25519_dalek::VerifyingKey::from_bytes(
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            w1.verifier().to_text().rsplit('+').next().unwrap(),
        )
        .unwrap()[1..]
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let cosigner = IndependentCosignatureVerifier {
        name: w1.name().to_owned(),
        public,
    };
    assert_eq!(signed_note::Verifier::key_id(&cosigner), w1.key_id());
    let log_verifier = signed_note::StandardVerifier::new(&log().verifier().to_text()).unwrap();
    let known = signed_note::VerifierList::new(vec![Box::new(cosigner), Box::new(log_verifier)]);
    let (verified, unverified) = parsed.verify(&known).unwrap();
    assert_eq!(verified.len(), 2);
    assert!(unverified.is_empty());

    // A changed checkpoint: signed_note refuses our cosignature too.
    let changed = note.replace("20852163", "20852164");
    let parsed = signed_note::Note::from_bytes(changed.as_bytes()).unwrap();
    assert!(parsed.verify(&known).is_err());
}
