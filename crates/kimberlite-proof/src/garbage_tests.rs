//! Property tests: garbage keys, notes, checkpoints, bundles and proofs give errors, never
//! panics, and a random proof never verifies.

use proptest::prelude::*;

use crate::checkpoint::{verify_bundle, Checkpoint};
use crate::hash::Hash;
use crate::note::{SignerKey, VerifierKey};
use crate::verify::{verify_consistency, verify_inclusion};

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic(text in ".{0,200}") {
        let _ = VerifierKey::parse(&text);
        let _ = SignerKey::parse(&text);
        let _ = Checkpoint::parse(&text);
        let signer = SignerKey::from_seed("k", [1; 32]).unwrap();
        let _ = signer.verifier().open(&text);
        let _ = verify_bundle(&signer.verifier(), &text, &text);
    }

    #[test]
    fn signed_notes_with_garbage_appended_or_cut_never_panic(
        cut in 0usize..200,
        tail in ".{0,40}",
    ) {
        let signer = SignerKey::from_seed("k", [1; 32]).unwrap();
        let note = signer.sign("origin/stream\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
        let cut: String = note.chars().take(cut).collect();
        let _ = signer.verifier().open(&cut);
        let _ = signer.verifier().open(&format!("{note}{tail}"));
    }

    #[test]
    fn random_inclusion_proofs_never_verify(
        leaf in hash(),
        root in hash(),
        index in any::<u64>(),
        size in any::<u64>(),
        proof in proptest::collection::vec(hash(), 0..70),
    ) {
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, index % 1000, size % 1000 + 1, &proof, &root).is_err());
    }

    #[test]
    fn random_consistency_proofs_never_verify(
        old_root in hash(),
        new_root in hash(),
        old in any::<u64>(),
        new in any::<u64>(),
        proof in proptest::collection::vec(hash(), 0..70),
    ) {
        prop_assume!(old_root != new_root);
        prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_err());
        let (small, big) = (old % 1000 + 1, new % 1000 + 1);
        prop_assert!(verify_consistency(small.min(big), small.max(big), &old_root, &new_root, &proof).is_err());
    }
}
