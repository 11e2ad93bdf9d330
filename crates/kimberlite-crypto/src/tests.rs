use super::*;
use proptest::prelude::*;

#[test]
fn display_and_parse_round_trip() {
    let hash = ChainHash::compute(None, Offset::ZERO, RecordKind::Data, b"x");
    let text = hash.to_string();
    assert_eq!(text.len(), 64);
    assert!(text
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(text.parse::<ChainHash>(), Ok(hash));
    assert_eq!(text.to_uppercase().parse::<ChainHash>(), Ok(hash));
    assert!(format!("{hash:?}").contains(&text));
}

#[test]
fn parse_rejects_bad_text() {
    for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
        let error = bad.parse::<ChainHash>().unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error}");
    }
}

#[test]
fn every_input_field_changes_the_hash() {
    let prev = ChainHash::compute(None, Offset::ZERO, RecordKind::Data, b"p");
    let base = ChainHash::compute(Some(&prev), Offset::new(1), RecordKind::Data, b"abc");
    let variants = [
        ChainHash::compute(None, Offset::new(1), RecordKind::Data, b"abc"),
        ChainHash::compute(Some(&prev), Offset::new(2), RecordKind::Data, b"abc"),
        ChainHash::compute(Some(&prev), Offset::new(1), RecordKind::Restart, b"abc"),
        ChainHash::compute(Some(&prev), Offset::new(1), RecordKind::Data, b"abd"),
        ChainHash::compute(Some(&prev), Offset::new(1), RecordKind::Data, b"ab"),
    ];
    for variant in variants {
        assert_ne!(variant, base);
    }
}

#[test]
fn absent_prev_differs_from_all_zero_prev() {
    let zero = ChainHash::from_bytes([0; 32]);
    assert_ne!(
        ChainHash::compute(None, Offset::ZERO, RecordKind::Data, b""),
        ChainHash::compute(Some(&zero), Offset::ZERO, RecordKind::Data, b"")
    );
}

proptest! {
    #[test]
    fn compute_is_deterministic(offset in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let a = ChainHash::compute(None, Offset::new(offset), RecordKind::Data, &payload);
        let b = ChainHash::compute(None, Offset::new(offset), RecordKind::Data, &payload);
        prop_assert_eq!(a, b);
        prop_assert_eq!(a.to_string().parse::<ChainHash>().unwrap(), a);
    }
}

/// The saved state after the domain block must give exactly SHA-256 over the whole input as
/// `docs/FORMAT.md` writes it, computed here from scratch in one piece.
#[test]
fn compute_is_sha256_of_the_documented_bytes() {
    let prev = ChainHash::from_bytes([0xab; 32]);
    for (prev, kind, payload) in [
        (None, RecordKind::Data, &b""[..]),
        (Some(&prev), RecordKind::Data, &[7u8; 256][..]),
        (Some(&prev), RecordKind::Restart, &b"checkpoint"[..]),
    ] {
        let offset = 0x0102_0304_0506_0708u64;
        let mut input = Vec::new();
        input.extend_from_slice(b"kimberlite.chain.v3\0");
        input.resize(64, 0);
        input.extend_from_slice(&offset.to_le_bytes());
        input.push(kind.as_byte());
        input.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        input.extend_from_slice(payload);
        input.push(u8::from(prev.is_some()));
        input.extend_from_slice(prev.map_or(&[0u8; 32], |hash| hash.as_bytes()));
        let expected: [u8; 32] = Sha256::digest(&input).into();
        let computed = ChainHash::compute(prev, Offset::new(offset), kind, payload);
        assert_eq!(computed.as_bytes(), &expected);
    }
    assert_eq!(CHAIN_HASH_DOMAIN.len(), 64);
    assert!(CHAIN_HASH_DOMAIN.starts_with(b"kimberlite.chain.v3\0"));
}

proptest! {
    /// Unlinked hashes computed in any order and linked in order give the chain
    /// `ChainHash::compute` gives one record after another.
    #[test]
    fn unlinked_then_linked_is_compute(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
        let unlinked: Vec<UnlinkedHash> = payloads
            .iter()
            .enumerate()
            .rev()
            .map(|(offset, payload)| UnlinkedHash::new(Offset::new(offset as u64), RecordKind::Data, payload))
            .collect();
        let mut prev = None;
        for (offset, (payload, unlinked)) in payloads.iter().zip(unlinked.into_iter().rev()).enumerate() {
            let expected = ChainHash::compute(prev.as_ref(), Offset::new(offset as u64), RecordKind::Data, payload);
            let linked = unlinked.link(prev.as_ref());
            prop_assert_eq!(linked, expected);
            prev = Some(linked);
        }
    }
}
