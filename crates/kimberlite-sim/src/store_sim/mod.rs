//! The whole-store simulator: the `kimberlite` store ([`kimberlite::Kimberlite`]) over
//! [`crate::SimFileSystem`], so that crashes and faults reach everything the store writes:
//! segments, the catalogue of named streams, the marker and the Merkle tree levels.
//!
//! One run is one `u64` seed. The seed picks the fault probabilities and, at every open, the
//! store's configuration (durability policy, segment size, compression, page size); then each
//! round's work: appends by 1–4 threads at once (group commit merges and syncs them together),
//! stream creation, reads, explicit syncs, verifications, tree heads, clean restarts and
//! crashes. What replays from a seed and what does not: `docs/TESTING.md`, "The whole-store
//! simulator".
//!
//! # What is checked
//!
//! Against a model of each named stream (the events acknowledged to appenders, in offset
//! order, and how many of them are durable):
//!
//! 1. **No durable event is lost**: every event whose append returned `Ok` under a syncing
//!    policy, or whose later `sync()` returned `Ok`, is at its offset with its payload after
//!    every crash and reopen. Events not durable (unsynced, or of a failed append) may be
//!    present only as a prefix per stream: no holes, no reordering.
//! 2. **Every reopen verifies**: `verify_all` finds every stream intact, the catalogue too.
//! 3. **Tree heads match a recomputation**: each stream's tree head (size and root) equals the
//!    RFC 9162 root recomputed from the model's events.
//! 4. **Appends are what a lone append would return**: dense offsets no other batch got;
//!    reads from any offset and heads show exactly the acknowledged events.
//!
//! 5. **Faults show only as errors, never as data**: a read or a verification may fail, or
//!    report damage, only when a bit flip on read was injected during the call or may still be
//!    held in a segment mapping made since open; its error or problem then names the stream
//!    and an offset it holds. Other errors are allowed only after a failed write or sync (a
//!    full disk) since open; the store is then poisoned, must refuse the next append
//!    (fail-stop), and is reopened with nothing durable lost.
//! 6. **No partial batch survives a crash** (`batches`): after every reopen each append's
//!    events are all there, back to back, or none of them; a crash tears the last unsynced
//!    write at any byte, which can leave whole frames of a batch.

//! 7. **Attacks at rest are caught, never believed** (`attack`, `forge`, `read_only`): links
//!    and wrong entry types are named and never followed, forged trees and watermarks and
//!    removed data are reported, nothing is signed, proven or read that the acknowledged events
//!    do not hold, and a read-only open over a read-only mount changes nothing.

mod attack;
mod batches;
mod check;
mod forge;
mod model;
mod read_only;
mod run;
mod state;
mod turns;
mod workload;

pub use run::run_store_seed;
pub use state::StoreSimOptions;
