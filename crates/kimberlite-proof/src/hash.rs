//! RFC 9162 hashing and the canonical leaf encoding of a Kimberlite event.
//!
//! - leaf hash: `SHA-256(0x00 || leaf bytes)`;
//! - node hash: `SHA-256(0x01 || left || right)`;
//! - the root of the empty tree: `SHA-256("")`.
//!
//! The leaf bytes of an event are ([`event_leaf_bytes`]):
//!
//! ```text
//!  0            8      9                 17
//!  +------------+------+-----------------+---------------------+
//!  | offset u64 | kind | payload_len u64 | payload (uncompressed) |
//!  +------------+------+-----------------+---------------------+
//! ```
//!
//! integers little-endian, `kind` 0 for a data event (the only kind a stream's tree holds).
//! Kept from the record: the offset (a leaf cannot move), the kind and the uncompressed
//! payload. Dropped: the previous chain hash (the tree itself links the leaves; keeping the
//! chain hash out means a leaf can be checked from the event alone), the compression byte, the
//! frame length and the CRC (storage details) and the stream id (named by the checkpoint's
//! origin line instead).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Prefix of a leaf hash's input (RFC 9162 section 2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash's input (RFC 9162 section 2.1.1).
const NODE_PREFIX: u8 = 0x01;
/// Size of a hash, in bytes.
pub const HASH_LEN: usize = 32;
/// Size of the fixed part of an event's leaf bytes: offset, kind, payload length.
const LEAF_HEADER_LEN: usize = 8 + 1 + 8;
/// The `kind` byte of a data event's leaf bytes.
const LEAF_KIND_DATA: u8 = 0;

/// A SHA-256 hash: a leaf, an interior node or a root. Shown and serialised as 64 lowercase
/// hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Parses 64 hex digits; `None` for anything else.
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// Parses a byte slice of exactly 32 bytes; `None` otherwise.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a hash must be 64 hex digits"))
    }
}

/// `SHA-256(0x00 || leaf)`.
#[must_use]
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(leaf);
    Hash(hasher.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// The root of the empty tree: `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The leaf bytes of the data event at `offset` with `payload` (layout in the module docs).
#[must_use]
pub fn event_leaf_bytes(offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(LEAF_HEADER_LEN + payload.len());
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.push(LEAF_KIND_DATA);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The leaf hash of the data event at `offset` with `payload`, without building the leaf
/// bytes (the same value as `leaf_hash(&event_leaf_bytes(offset, payload))`).
#[must_use]
pub fn event_leaf_hash(offset: u64, payload: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(offset.to_le_bytes());
    hasher.update([LEAF_KIND_DATA]);
    hasher.update((payload.len() as u64).to_le_bytes());
    hasher.update(payload);
    Hash(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn event_leaf_hash_matches_leaf_bytes() {
        for payload in [&b""[..], b"hello", &[7u8; 300]] {
            assert_eq!(
                event_leaf_hash(42, payload),
                leaf_hash(&event_leaf_bytes(42, payload))
            );
        }
    }

    /// The `merkle-vector` block of docs/FORMAT.md ("Merkle leaves and tiles").
    #[test]
    fn format_md_merkle_vectors_hold() {
        let doc = include_str!("../../../docs/FORMAT.md");
        let block = doc
            .split("```merkle-vector\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/FORMAT.md has a merkle-vector block");
        let payloads: [&[u8]; 3] = [
            b"",
            b"hello",
            br#"{"event":"record_viewed","patient":"P-00017","clinician":"C-042"}"#,
        ];
        let mut checked = 0;
        let mut leaves = Vec::new();
        for (offset, payload) in payloads.iter().enumerate() {
            let bytes = event_leaf_bytes(offset as u64, payload);
            let hash = leaf_hash(&bytes);
            let line = |what: &str| {
                block
                    .lines()
                    .find(|l| l.starts_with(&format!("leaf {offset} {what}")))
                    .and_then(|l| l.split('=').nth(1))
                    .map(str::trim)
                    .expect("vector line")
                    .to_owned()
            };
            assert_eq!(hex::encode(&bytes), line("bytes"), "leaf {offset} bytes");
            assert_eq!(hash.to_string(), line("hash"), "leaf {offset} hash");
            leaves.push(hash);
            checked += 2;
        }
        let tree = crate::tree::MemoryTree::from_leaves(leaves);
        for size in [2u64, 3] {
            let expected = block
                .lines()
                .find(|l| l.starts_with(&format!("root {size}")))
                .and_then(|l| l.split('=').nth(1))
                .map(str::trim)
                .expect("root line");
            let root = crate::tree::root_at(&tree, size).unwrap();
            assert_eq!(root.to_string(), expected, "root {size}");
            checked += 1;
        }
        assert_eq!(checked, 8);
    }

    #[test]
    fn hash_parsing_rejects_garbage() {
        assert!(Hash::from_hex("zz").is_none());
        assert!(Hash::from_hex(&"a".repeat(63)).is_none());
        assert!(Hash::from_slice(&[0u8; 31]).is_none());
        let json = serde_json::from_str::<Hash>("\"nothex\"");
        assert!(json.is_err());
    }
}
