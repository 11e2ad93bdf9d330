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
        ChainHash::compute(Some(&prev), Offset::new(1), RecordKind::Checkpoint, b"abc"),
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
