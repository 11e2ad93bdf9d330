//! Tokens: 256 random bits shown once as `kb_<base64url>`, kept only as their SHA-256, and
//! compared in constant time.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "kb_";

/// Bytes of randomness in a token: 256 bits, beyond any guessing.
const TOKEN_RANDOM_BYTES: usize = 32;

/// Bytes of randomness in a key id: enough that ids of one file never collide in practice
/// (a collision is refused, not overwritten).
const KEY_ID_RANDOM_BYTES: usize = 8;

/// A token's SHA-256: all the key file keeps of it.
pub type TokenHash = [u8; 32];

/// Why no random bytes could be had.
#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed: {0}")]
pub struct RandomError(String);

fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(|error| RandomError(error.to_string()))?;
    Ok(bytes)
}

/// A new token: `kb_` and 32 random bytes in unpadded base64url (43 characters).
pub fn new_token() -> Result<String, RandomError> {
    let bytes = random_bytes::<TOKEN_RANDOM_BYTES>()?;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(format!("{TOKEN_PREFIX}{encoded}"))
}

/// A new key id: `kid_` and 16 hex digits.
pub fn new_key_id() -> Result<String, RandomError> {
    Ok(format!(
        "kid_{}",
        hex::encode(random_bytes::<KEY_ID_RANDOM_BYTES>()?)
    ))
}

/// The SHA-256 of `token` as sent (after the `Bearer ` prefix and surrounding spaces).
#[must_use]
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two token hashes are equal, in time independent of where they differ: comparing
/// with `==` would stop at the first differing byte and let a caller who can time many
/// requests learn a stored hash byte by byte.
#[must_use]
pub fn hashes_equal(a: &TokenHash, b: &TokenHash) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_256_bits() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        let body = a.strip_prefix(TOKEN_PREFIX).expect("prefix");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .expect("base64url");
        assert_eq!(decoded.len(), 32);
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let a = hash_token("kb_a");
        assert!(hashes_equal(&a, &hash_token("kb_a")));
        assert!(!hashes_equal(&a, &hash_token("kb_b")));
        let mut last_bit = a;
        last_bit[31] ^= 1;
        assert!(!hashes_equal(&a, &last_bit));
    }

    #[test]
    fn key_ids_have_their_shape() {
        let id = new_key_id().expect("id");
        assert_eq!(id.len(), 4 + 16);
        assert!(id.starts_with("kid_"));
    }
}
