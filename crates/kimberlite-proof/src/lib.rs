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
//! - [`signing`]: checkpoints signed under their origin, as C2SP clients expect.
//! - [`checkpoint`]: C2SP tlog checkpoints (origin, tree size, root) and the JSON proof
//!   bundles the `kimberlite` program prints, with their offline verification.
//! - [`cosignature`]: C2SP tlog cosignatures (Ed25519, `cosignature/v1`): witness keys,
//!   cosigning, verifying, and a k-of-n [`WitnessPolicy`].
//! - [`add_checkpoint`]: the bodies of C2SP tlog-witness's `add-checkpoint` call, for the
//!   log side (build the request, read the answer) and the witness side (the reverse).
//! - [`receipt`]: receipts, C2SP tlog proofs: an event's index, inclusion proof and the
//!   (cosigned) checkpoint, checked offline against the log key and a witness policy.
//! - [`succession`]: the monitor's check that a log's new checkpoint extends the last one
//!   seen (or is a rollback, a split view, an inconsistent extension).
//! - [`tile_nodes`]: complete nodes read from a remote log's tiles, to compute its proofs.
//! - [`tiles`]: the C2SP tlog-tiles view of a tree: tile paths, tiles, entry bundles, and the
//!   check that a tile belongs to a root.
//!
//! # Example
//!
//! A log signs a checkpoint of a stream's tree and proves that an event is in it; an auditor
//! holding only the log's public key checks the proof:
//!
//! ```
//! use kimberlite_proof::{
//!     event_leaf_hash, inclusion_proof, verify_bundle, Checkpoint, InclusionBundle, MemoryTree,
//!     SignerKey, Verified,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let events: [&[u8]; 3] = [b"login", b"read", b"logout"];
//! let tree = MemoryTree::from_leaves((0u64..).zip(events).map(|(o, e)| event_leaf_hash(o, e)));
//!
//! // The log's side: sign the tree head, prove event 1.
//! let signer = SignerKey::from_seed("example.org/log", [7; 32])?;
//! let checkpoint = Checkpoint {
//!     origin: "store/audit".into(),
//!     tree_size: 3,
//!     root: tree.root(),
//!     extensions: vec![],
//! };
//! let note = signer.sign(&checkpoint.to_text())?;
//! let proof = inclusion_proof(&tree, 1, 3)?;
//! let bundle = InclusionBundle::new("store/audit", 1, b"read", 3, tree.root(), proof);
//!
//! // The auditor's side: the public key, the signed note and the bundle's JSON.
//! let verifier = signer.verifier();
//! let verified = verify_bundle(&verifier, &note, &serde_json::to_string(&bundle)?)?;
//! let expected = Verified::Inclusion { offset: 1, payload: b"read".to_vec(), tree_size: 3 };
//! assert_eq!(verified, expected);
//! # Ok(())
//! # }
//! ```
//!
//! # What is kept and dropped
//!
//! Kept: RFC 9162's hashing and proof shapes exactly, so any RFC 9162 verifier checks our
//! proofs, and C2SP's checkpoint and signed-note texts exactly, so any note verifier checks
//! our signatures. Dropped: RFC 9162's binary TLS-style structures (we print JSON bundles),
//! and signature types other than Ed25519.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod add_checkpoint;
pub mod checkpoint;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod receipt;
pub mod signing;
pub mod succession;
pub mod tile_nodes;
pub mod tiles;
pub mod tree;
pub mod verify;
pub mod witness_policy;

pub use add_checkpoint::{
    add_cosignatures, parse_size_body, size_body, AddCheckpoint, AddCheckpointError,
    MAX_PROOF_LINES, SIZE_CONTENT_TYPE,
};
pub use checkpoint::{
    origin_difference, verify_bundle, Checkpoint, CheckpointError, ConsistencyBundle,
    InclusionBundle, Verified, CONSISTENCY_FORMAT, INCLUSION_FORMAT,
};
pub use cosignature::{
    cosigned_message, CosignatureError, Cosigned, WitnessKey, WitnessSigner, ALG_COSIGNATURE_V1,
    COSIGNATURE_HEADER, MAX_TIMESTAMP,
};
pub use hash::{empty_root, event_leaf_bytes, event_leaf_hash, leaf_hash, node_hash, Hash};
pub use note::{
    parse_signature_line, split_note, NoteError, SignatureLine, SignerKey, VerifierKey,
};
pub use receipt::{
    other_signers, verify_receipt, Receipt, ReceiptError, VerifiedReceipt, MAX_RECEIPT_BYTES,
    RECEIPT_HEADER,
};
pub use signing::{check_store_name, sign_checkpoint, stream_origin, InvalidStoreName};
pub use succession::{check_succession, Succession, SuccessionError};
pub use tile_nodes::{TileNodes, TileNodesError};
pub use tiles::{
    check_tile, entry_bundle, parse_entry_bundle, parse_tile, parse_tile_path, read_tile,
    root_through_tile, tile_bytes, tile_in_tree, tiles_of, TileCheckError, TileError, TileId,
    TilePath, TilePathError, MAX_ENTRY_BYTES, TILE_WIDTH,
};
pub use tree::{
    consistency_proof, inclusion_proof, root_at, subtree_root, Frontier, MemoryTree, NodeSource,
    RangeError,
};
pub use verify::{root_from_inclusion_proof, verify_consistency, verify_inclusion, ProofError};
pub use witness_policy::{verify_witnessed, WitnessPolicy};

#[cfg(test)]
mod garbage_tests;
#[cfg(test)]
mod tiles_tests;
#[cfg(test)]
mod vector_tests;
