//! A tree whose events below a retention cut are gone (module `retention`): the one leaf
//! below the cut that the kept frontier gives back.

use kimberlite_proof::Hash;
use kimberlite_storage::PrunePoint;

/// The leaf hash of event `offset`, below `point`'s cut, where the log no longer has it:
/// known only for the last event before an odd cut size (the last node of the frontier kept
/// at the cut is that leaf), which is what open's frontier check asks for.
pub(super) fn leaf_below_cut(point: &PrunePoint, offset: u64) -> Option<Hash> {
    let cut = point.first_offset.as_u64();
    let last_leaf = cut % 2 == 1 && offset + 1 == cut;
    point
        .tree_frontier
        .last()
        .filter(|_| last_leaf)
        .map(|node| Hash(*node))
}
