//! Little-endian field readers for the on-disk structures and record frames: a short slice
//! instead of panicking (callers check lengths first; this keeps bad input panic-free).

/// The `u32` at `at`, or 0 when `bytes` is too short.
pub fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    if let Some(src) = bytes.get(at..at.saturating_add(4)) {
        raw.copy_from_slice(src);
    }
    u32::from_le_bytes(raw)
}

/// The `u64` at `at`, or 0 when `bytes` is too short.
pub fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    if let Some(src) = bytes.get(at..at.saturating_add(8)) {
        raw.copy_from_slice(src);
    }
    u64::from_le_bytes(raw)
}
