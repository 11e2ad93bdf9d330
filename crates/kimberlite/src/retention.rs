//! Retention by verified pruning: [`Kimberlite::retain`] drops a stream's oldest whole
//! segments below a point that a kept signed checkpoint covers, and keeps what proves that
//! the rest continues them (`docs/INTERNALS.md`, "Retention"; `docs/COMPLIANCE.md`).
//!
//! What is kept at the cut (the storage engine's `pruned.json`, `docs/FORMAT.md`):
//!
//! - the chain hash of the last dropped record: every walk of the stream starts from it, so
//!   the first kept record must link to it (a forged hash fails `verify` there);
//! - the Merkle frontier at the cut size (the perfect subtree roots decomposing `[0, cut)`):
//!   `verify`, `check_tree` and the trust check at first use push the kept events onto it
//!   instead of onto an empty tree. Those nodes are all that inclusion proofs of kept events
//!   and consistency proofs between sizes at or above the cut need from below the cut
//!   (`kimberlite-proof/tests/pruned_frontier.rs`);
//! - the size of the kept checkpoint that covered the cut: `verify` recomputes the root at that
//!   size from the frontier and the kept events and compares it with the checkpoint's signed
//!   root, so a frontier forged together with the side files is still caught.
//!
//! The Merkle side files (`merkle/<id>/`) are kept as they are: they hold 32-byte hashes, no
//! event data, every proof and tile reads nodes by position in them, and a file that started
//! at the cut would be another format. They are synced before the cut is made: derived data
//! is otherwise rebuilt from the log after a crash, and below the cut the log is gone. The entry bundles of the tiles API, which hold event
//! data, are gone with the events.

use kimberlite_crypto::ChainHash;
use kimberlite_proof::{Frontier, Hash};
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result, TreeEvidence};
use crate::proofs::{refused, stream_tree, tree_error, trusted_root, TreeCheck};
use crate::report::Problem;
use crate::sealed::ERASURE_STREAM;
use crate::state::State;
use crate::store::Kimberlite;

/// What [`Kimberlite::retain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    /// The offset asked for: events below it may be dropped.
    pub before: Offset,
    /// The first offset the stream holds now: `before` rounded down to the first offset of
    /// the segment holding it (only whole segments are dropped), or the previous first
    /// offset when no whole segment lay below `before`.
    pub first_offset: Offset,
    /// The first offset the stream held before.
    pub previous_first_offset: Offset,
    /// The size of the kept checkpoint that covers the cut.
    pub checkpoint_size: u64,
}

impl Retained {
    /// Events dropped by this call.
    #[must_use]
    pub fn events_dropped(&self) -> u64 {
        self.first_offset.as_u64() - self.previous_first_offset.as_u64()
    }
}

impl Kimberlite {
    /// Drops stream `id`'s whole segments below `before` (rounded down to a segment boundary,
    /// so nothing at or after `before` is dropped, and the active segment never is), once the
    /// dropped events are verified and a kept signed checkpoint covers `before`. Reads below
    /// the cut then fail with [`Error::Pruned`]; `verify`, proofs and tiles work from it.
    ///
    /// Errors: [`Error::ReadOnly`]; [`Error::UnknownStream`]; [`Error::RetainRefused`] when
    /// `before` is past the stream's durable head or past the largest kept checkpoint, or no
    /// checkpoint is kept; [`Error::CheckpointConflict`] when the kept checkpoint is not the
    /// log's; the tree errors of [`Kimberlite::tree_head`]; the corruption a walk of the
    /// dropped segments finds. Nothing is written on any of them.
    pub fn retain(&self, id: StreamId, before: Offset) -> Result<Retained> {
        if self.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        let name = self.read_state().name_of(id)?.to_owned();
        let refuse = |reason: String| Error::RetainRefused {
            name: name.clone(),
            reason,
        };
        if name == ERASURE_STREAM {
            // Erased events read as erased (not unreadable) only while their records exist.
            return Err(refuse(
                "the erasure log is kept whole: it is what says which sealed events were erased"
                    .into(),
            ));
        }
        let head = self.tree_head(id)?;
        if before.as_u64() > head.tree_size {
            return Err(refuse(format!(
                "offset {before} is past the stream's head ({} durable events)",
                head.tree_size
            )));
        }
        let Some(kept) = self.last_kept_checkpoint(id)? else {
            return Err(refuse(
                "no signed checkpoint is kept for the stream: sign one that covers the cut \
                 first (kimberlite checkpoint)"
                    .into(),
            ));
        };
        if before.as_u64() > kept.size {
            return Err(refuse(format!(
                "offset {before} is past the last kept checkpoint (size {}): sign a \
                 checkpoint that covers it first",
                kept.size
            )));
        }
        self.check_extends_last_kept(id, head.tree_size, head.root)?;
        let storage = |source| Error::storage(Some(&name), source);
        let (previous, cut) = {
            let state = self.read_state();
            let previous = first_offset_in(&state, id);
            (
                previous,
                state.backend.prune_boundary(id, before).map_err(storage)?,
            )
        };
        let mut retained = Retained {
            before,
            first_offset: previous,
            previous_first_offset: previous,
            checkpoint_size: kept.size,
        };
        if cut <= previous {
            return Ok(retained);
        }
        let frontier = self.frontier_at(id, &name, cut.as_u64())?;
        // The side files are derived data, never synced, rebuilt from the log after a crash;
        // below the cut the log will not be there to rebuild them from.
        {
            let state = self.read_state();
            let mut trees = state.merkle.wait(id).map_err(|e| tree_error(&name, e))?;
            trees.sync_stream(id).map_err(|error| {
                Error::io(format!("syncing the Merkle tree of stream {name:?}"), error)
            })?;
        }
        kimberlite_storage::crash_point::crash_point("retain:before-commit");
        let point = self
            .write_state()
            .backend
            .prune(
                id,
                cut,
                frontier.nodes().iter().map(|node| node.0).collect(),
                kept.size,
            )
            .map_err(storage)?;
        retained.first_offset = point.first_offset;
        Ok(retained)
    }

    /// The first offset stream `id` holds: 0 unless retention cut it.
    ///
    /// Errors: [`Error::UnknownStream`].
    pub fn first_offset(&self, id: StreamId) -> Result<Offset> {
        let state = self.read_state();
        state.name_of(id)?;
        Ok(first_offset_in(&state, id))
    }

    /// Where stream `id`'s chain starts: offset 0 and no hash, or the cut and the chain hash
    /// kept at it.
    ///
    /// Errors: [`Error::UnknownStream`].
    pub(crate) fn chain_start(&self, id: StreamId) -> Result<(Offset, Option<ChainHash>)> {
        let state = self.read_state();
        state.name_of(id)?;
        Ok(match state.backend.prune_point(id) {
            None => (Offset::ZERO, None),
            Some(point) => (point.first_offset, Some(point.chain_hash)),
        })
    }

    /// The frontier of stream `id`'s tree at `size` read from the side files, checked against
    /// the trusted root at that size.
    fn frontier_at(&self, id: StreamId, name: &str, size: u64) -> Result<Frontier> {
        let state = self.read_state();
        let durable = state.durable_size(id);
        let trees = Self::trees(&state, id, name, durable)?;
        let tree = stream_tree(&trees, id, name, durable)?;
        let frontier = Frontier::from_source(tree, size).map_err(|e| tree_error(name, e))?;
        let evidence = TreeEvidence::Head { tree_size: size };
        let root = trusted_root(tree, size).map_err(|r| refused(name, id, evidence, r))?;
        if frontier.root() != root {
            return Err(Error::TreeDamaged {
                name: name.to_owned(),
                stream: id,
                evidence,
                reason: format!("the stored frontier at size {size} does not fold to its root"),
            });
        }
        Ok(frontier)
    }

    /// The kept checkpoint that covered stream `id`'s cut, when retention cut it: its size
    /// and signed root (`None` as the root when the file cannot be read).
    pub(crate) fn cut_checkpoint(&self, id: StreamId) -> Option<(u64, Option<Hash>)> {
        let size = self.read_state().backend.prune_point(id)?.checkpoint_size;
        Some((size, self.kept_checkpoint_root(id, size)))
    }

    /// The problem of a pruned stream whose recomputed root at the cut's checkpoint size is
    /// not the root that checkpoint signed (a forged frontier in the cut record), if so.
    pub(crate) fn cut_problem(
        &self,
        id: StreamId,
        name: Option<String>,
        cut: Option<(u64, Option<Hash>)>,
        check: &TreeCheck,
    ) -> Option<Problem> {
        let (size, signed) = cut?;
        let recomputed = check
            .roots_at
            .iter()
            .find(|(at, _)| *at == size)
            .map(|(_, root)| *root);
        if recomputed.is_some() && recomputed == signed {
            return None;
        }
        let first = first_offset_in(&self.read_state(), id);
        let reason = format!(
            "the tree rebuilt from the cut at offset {first} (pruned.json's frontier and the \
             kept events) does not reach the root of the kept checkpoint of size {size}: the \
             cut record or that checkpoint was changed"
        );
        Some(Problem {
            stream: id,
            message: format!("stream {id}: {reason}"),
            name,
            offset: first,
            segment: None,
            file: None,
            position: None,
            reason,
        })
    }
}

/// The first offset stream `id` holds in `state`'s backend.
pub(crate) fn first_offset_in(state: &State, id: StreamId) -> Offset {
    state
        .backend
        .prune_point(id)
        .map_or(Offset::ZERO, |point| point.first_offset)
}

/// Where a recomputation of stream `id`'s tree from its log starts: the empty tree, or the
/// frontier kept at the cut (the empty tree when the cut record's frontier does not fit its
/// size: the recomputed roots then differ from the stored ones, and `verify` says so).
pub(crate) fn tree_start(state: &State, id: StreamId) -> (Offset, Frontier) {
    match state.backend.prune_point(id) {
        None => (Offset::ZERO, Frontier::new()),
        Some(point) => {
            let size = point.first_offset.as_u64();
            let frontier =
                Frontier::from_parts(size, point.tree_frontier.into_iter().map(Hash).collect())
                    .unwrap_or_default();
            (point.first_offset, frontier)
        }
    }
}
