use aes_gcm::aead::{AeadInOut, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use proptest::prelude::*;

use super::*;

/// `aes-gcm`'s ciphertext and tag of `text`.
fn reference(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], text: &[u8]) -> Vec<u8> {
    let mut sealed = text.to_vec();
    let tag = Aes256Gcm::new(&(*key).into())
        .encrypt_inout_detached(&Nonce::from(*nonce), aad, sealed.as_mut_slice().into())
        .unwrap();
    sealed.extend_from_slice(&tag);
    sealed
}

fn sealed(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], text: &[u8]) -> Vec<u8> {
    let mut sealed = text.to_vec();
    let tag = ManyGcm::new(key).seal_detached(nonce, aad, &mut sealed);
    sealed.extend_from_slice(&tag);
    sealed
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

/// The AES-256 test cases with 96-bit IVs of the GCM specification (McGrew and Viega, "The
/// Galois/Counter Mode of Operation", test cases 13 to 16): key, IV, plaintext, AAD,
/// ciphertext, tag.
const VECTORS: [[&str; 6]; 4] = [
    [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
        "",
        "",
        "",
        "530f8afbc74536b9a963b4f1c4cb738b",
    ],
    [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
        "00000000000000000000000000000000",
        "",
        "cea7403d4d606b6e074ec5d3baf39d18",
        "d0d1c8a799996bf0265b98b5d48ab919",
    ],
    [
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        "b094dac5d93471bdec1a502270e3cc6c",
    ],
    [
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ],
];

#[test]
fn the_gcm_specification_vectors() {
    for [key, nonce, text, aad, ciphertext, tag] in VECTORS {
        let key: [u8; 32] = unhex(key).try_into().unwrap();
        let nonce: [u8; NONCE_LEN] = unhex(nonce).try_into().unwrap();
        let expected = [unhex(ciphertext), unhex(tag)].concat();
        let (text, aad) = (unhex(text), unhex(aad));
        assert_eq!(sealed(&key, &nonce, &aad, &text), expected);
        assert_eq!(reference(&key, &nonce, &aad, &text), expected, "aes-gcm");
    }
}

#[test]
fn a_group_seals_each_message_as_aes_gcm_does_alone() {
    let key = [0x42; 32];
    let gcm = ManyGcm::new(&key);
    let messages: Vec<([u8; NONCE_LEN], Vec<u8>)> = (0..200usize)
        .map(|n| {
            let mut nonce = [0u8; NONCE_LEN];
            nonce[..8].copy_from_slice(&(n as u64 * 7919).to_le_bytes());
            (nonce, (0..(n * 37) % 600).map(|b| (b * n) as u8).collect())
        })
        .collect();
    let mut keystream = Vec::new();
    gcm.keystream(
        messages.iter().map(|(nonce, text)| (*nonce, text.len())),
        &mut keystream,
    );
    let mut at = 0;
    let mut scratch = Vec::new();
    for (nonce, text) in &messages {
        let blocks = blocks_of(text.len());
        let mut out = Vec::new();
        let tag = gcm
            .seal_onto(
                &keystream[at..at + blocks],
                &gcm.after_aad(b"aad"),
                text,
                &mut out,
                &mut scratch,
            )
            .unwrap();
        out.extend_from_slice(&tag);
        assert_eq!(out, reference(&key, nonce, b"aad", text));
        at += blocks;
    }
    assert_eq!(at, keystream.len());
}

#[test]
fn a_keystream_of_another_length_is_refused_and_nothing_written() {
    let gcm = ManyGcm::new(&[1; 32]);
    let mut keystream = Vec::new();
    gcm.keystream([([2; NONCE_LEN], 40)], &mut keystream);
    let mut scratch = Vec::new();
    for (len, blocks) in [(40, 3), (49, 4), (40, 5), (0, 0)] {
        let text = vec![7u8; len];
        let mut out = vec![1u8; 3];
        let short = keystream.get(..blocks.min(keystream.len())).unwrap();
        let given = if blocks > keystream.len() {
            [keystream.as_slice(), &keystream[..1]].concat()
        } else {
            short.to_vec()
        };
        assert_eq!(
            gcm.seal_onto(&given, &gcm.after_aad(b""), &text, &mut out, &mut scratch),
            Err(WrongKeystream),
            "{len} bytes, {blocks} blocks"
        );
        assert_eq!(out, vec![1u8; 3]);
    }
    let text = vec![7u8; 40];
    let mut out = Vec::new();
    assert!(gcm
        .seal_onto(
            &keystream,
            &gcm.after_aad(b""),
            &text,
            &mut out,
            &mut scratch
        )
        .is_ok());
    assert_eq!(out.len(), 40);
    assert_ne!(out, vec![7u8; 40]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_length_and_nonce_seals_as_aes_gcm_does(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; NONCE_LEN]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        text in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        prop_assert_eq!(sealed(&key, &nonce, &aad, &text), reference(&key, &nonce, &aad, &text));
    }

    #[test]
    fn nonces_near_the_counter_wrap_seal_as_aes_gcm_does(
        key in any::<[u8; 32]>(),
        high in any::<[u8; 8]>(),
        low in (u32::MAX - 200)..=u32::MAX,
        len in 0usize..2000,
    ) {
        // GCM's counter is the last 32 bits of `J0`, incremented from 1 whatever the nonce:
        // nonces ending near 2^32 must not carry into the nonce's other bytes.
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&high);
        nonce[8..].copy_from_slice(&low.to_be_bytes());
        let text = vec![0x5a; len];
        prop_assert_eq!(sealed(&key, &nonce, &[], &text), reference(&key, &nonce, &[], &text));
    }
}
