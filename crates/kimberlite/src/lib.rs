//! Kimberlite: the embeddable store.
//!
//! A store holds named, append-only streams of events. Every event is a record in a
//! hash-chained log: its chain hash commits to its offset, its payload and the hash of the event
//! before it, so a stream's head hash commits to the whole stream, and [`Kimberlite::verify`]
//! finds any changed, dropped, reordered or inserted byte and says where.
//!
//! - [`Kimberlite::open`] (on disk), [`Kimberlite::in_memory`] (tests, ephemeral work).
//! - Named streams: [`Kimberlite::create_stream`], [`Kimberlite::stream`],
//!   [`Kimberlite::list_streams`]. Names are kept in the log itself, in a system stream
//!   ([`CATALOG_STREAM`]).
//! - [`Kimberlite::append`] with optimistic concurrency ([`ExpectedOffset`]); durability per
//!   [`Durability`]: a sync per append (default) or group commit (one sync for the appends
//!   of many threads).
//! - [`Kimberlite::read`], the lazy [`Kimberlite::events`] iterator, [`Kimberlite::head`].
//! - Merkle proofs (RFC 9162, each stream's tree kept beside the log under `merkle/`):
//!   [`Kimberlite::tree_head`], [`Kimberlite::inclusion_proof`],
//!   [`Kimberlite::consistency_proof`], [`Kimberlite::check_tree`]; verify them with
//!   [`proof`] (the `kimberlite-proof` crate). The C2SP tlog-tiles view of a stream:
//!   [`Kimberlite::tile`], [`Kimberlite::entry_bundle`].
//! - [`sealed`]: events sealed for a data subject ([`sealed::SubjectKeys`]) and erased by
//!   destroying the subject's key, every proof still valid (`docs/COMPLIANCE.md`).
//! - [`Kimberlite::sign_checkpoint`]: a signed C2SP checkpoint of a stream, kept in the store.
//! - [`Kimberlite::wait_for_events`], [`Kimberlite::on_durable`]: followers woken by new
//!   durable events.
//! - [`Kimberlite::verify`], [`Kimberlite::verify_all`] → [`VerifyReport`];
//!   [`Kimberlite::check_anchor`] against head hashes kept elsewhere ([`Anchor`]), which also
//!   catches records cut from the end of a stream.
//!
//! `Kimberlite` is `Send + Sync` and a cheap clone: clones share one store. Readers run side
//! by side; appends and syncs take the store's lock one backend call at a time.
//!
//! [`Kimberlite::open_with_fs`] runs the whole store over any
//! [`FileSystem`](kimberlite_storage::FileSystem): a simulated one (`kimberlite-sim`) crashes
//! and faults every file the store writes.
//!
//! # What this layer keeps and drops from the storage layer
//!
//! Kept: every storage error, whole, as the source of [`Error::Storage`] (offset, segment, file,
//! byte); the storage layer's checks of offsets and chain links on every append and read.
//! Added: names, head tracking (so callers never pass hashes), expected-offset checks that name
//! the stream, durability policies, and read visibility limited to durable events.
//! Dropped: raw stream ids without a name are not appendable (ids come from the catalogue), and
//! the storage contract's `segment_count`/`completed_segments` surface only through
//! [`Kimberlite::stats`].

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod anchor;
mod append;
mod catalog;
mod commit;
mod config;
mod cosigned_checkpoint;
mod durable_watch;
mod error;
mod follow;
mod group_append;
mod head;
mod kept_checkpoint;
mod lost;
mod marker;
mod merkle;
mod merkle_worker;
mod proofs;
mod read;
mod receipt;
mod report;
mod retention;
pub mod sealed;
mod signed_checkpoint;
mod state;
mod store;
mod store_fs;
mod stream_name;
mod sync_helper;
mod tiles;
mod tree_check;
mod tree_trust;
mod verify;
mod write;
mod writeback;
mod writers;
mod written;

pub use anchor::{Anchor, ParseAnchorError};
pub use bytes::Bytes;
pub use catalog::{validate_stream_name, CATALOG_STREAM, MAX_STREAM_NAME_BYTES};
pub use config::{Config, Durability, DEFAULT_READ_PAGE_BYTES};
pub use error::{Error, Result, TreeEvidence};
pub use head::{AppendResult, ExpectedOffset, StreamHead, MAX_EVENT_BYTES};
pub use kimberlite_crypto::ChainHash;
pub use kimberlite_proof as proof;
pub use kimberlite_storage::{RecoveryAction, RecoveryReport};
pub use kimberlite_types::{CompressionKind, Offset, StreamId};
pub use lost::CHECKPOINT_DIR;
pub use marker::MARKER_FILE;
pub use proofs::{ConsistencyProof, InclusionProof, TreeCheck, TreeHead, TreeNode};
pub use read::{Event, Events};
pub use receipt::EventReceipt;
pub use report::{Problem, StorageStats, StreamReport, StreamStats, VerifyReport};
pub use retention::Retained;
pub use signed_checkpoint::SignedCheckpoint;
pub use store::{Kimberlite, StreamInfo};
pub use verify::CATALOG_LABEL;
pub use written::Written;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod merkle_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tiles_tests;
#[cfg(test)]
mod tree_trust_tests;
