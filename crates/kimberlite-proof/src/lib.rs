//! Proofs a third party can check for Kimberlite streams.
//!
//! Each stream of a Kimberlite store is also a Merkle tree over its events, hashed as
//! RFC 9162 (Certificate Transparency v2) says. This crate has everything an auditor needs and
//! nothing else: no storage, no I/O.
//!
//! - [`hash`]: leaf and node hashing, the canonical leaf bytes of an event.
//! - [`tree`]: the compact [`Frontier`] a store keeps per stream, and proof *generation* over
//!   any [`NodeSource`] of complete subtree hashes (memory, files).
//! - [`verify`]: pure inclusion and consistency proof *verification*.
//! - [`note`]: C2SP signed notes with Ed25519 keys (`vkey` text form, key ids).
//! - [`checkpoint`]: C2SP tlog checkpoints (origin, tree size, root) and the JSON proof
//!   bundles the `kimberlite` program prints, with their offline verification.
//!
//! # What is kept and dropped
//!
//! Kept: RFC 9162's hashing and proof shapes exactly, so any RFC 9162 verifier checks our
//! proofs, and C2SP's checkpoint and signed-note texts exactly, so any note verifier checks
//! our signatures. Dropped: RFC 9162's binary TLS-style structures (we print JSON bundles),
//! and signature types other than Ed25519.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod checkpoint;
pub mod hash;
pub mod note;
pub mod tree;
pub mod verify;

pub use checkpoint::{
    verify_bundle, Checkpoint, CheckpointError, ConsistencyBundle, InclusionBundle, Verified,
    CONSISTENCY_FORMAT, INCLUSION_FORMAT,
};
pub use hash::{empty_root, event_leaf_bytes, event_leaf_hash, leaf_hash, node_hash, Hash};
pub use note::{NoteError, SignerKey, VerifierKey};
pub use tree::{
    consistency_proof, inclusion_proof, root_at, subtree_root, Frontier, MemoryTree, NodeSource,
    RangeError,
};
pub use verify::{root_from_inclusion_proof, verify_consistency, verify_inclusion, ProofError};

#[cfg(test)]
mod garbage_tests;
#[cfg(test)]
mod vector_tests;
