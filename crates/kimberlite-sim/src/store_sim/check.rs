//! The checks a round makes against the models: heads, reads, verification, tree heads.

use kimberlite::proof::{event_leaf_hash, MemoryTree};
use kimberlite::Offset;
use rand::Rng;

use super::state::{Check, StoreRun};

impl StoreRun {
    /// Each stream's durable head is its acknowledged events, dense from 0.
    pub(super) fn check_heads(&self) -> Check {
        let store = self.store()?;
        for (name, model) in &self.models {
            let id = store
                .stream(name)
                .ok_or_else(|| format!("{name}: the stream is gone"))?;
            let head = store.head(id).map_err(|error| format!("{name}: {error}"))?;
            let len = model.events.len() as u64;
            if head.next_offset.as_u64() != len {
                return Err(format!(
                    "{name}: head {} but {len} events acknowledged",
                    head.next_offset
                ));
            }
        }
        Ok(())
    }

    /// A read from a random offset returns exactly the acknowledged events from there.
    pub(super) fn read(&mut self) -> Check {
        let Some((name, id)) = self.pick_stream() else {
            return Ok(());
        };
        let len = self.models.get(&name).map_or(0, |model| model.events.len()) as u64;
        let from = self.rng.random_range(0..=len);
        self.stats.reads += 1;
        let flips = self.read_flips();
        let events = match self.store()?.read(id, Offset::new(from), u64::MAX) {
            Ok(events) => events,
            Err(error) => return self.flipped(&format!("{name}: read from {from}"), flips, &error),
        };
        let model = self.models.get(&name).map(|model| model.events.as_slice());
        let expected = model
            .unwrap_or_default()
            .get(from as usize..)
            .unwrap_or_default();
        let read: Vec<_> = events.iter().map(|event| event.payload.clone()).collect();
        if read != expected {
            return Err(format!(
                "{name}: read from {from} returned {} events, {} acknowledged, or other bytes",
                read.len(),
                expected.len()
            ));
        }
        Ok(())
    }

    /// Bit flips on read injected so far.
    fn read_flips(&self) -> u64 {
        self.fs.counts().read_flips
    }

    /// Whether a read or verification that began after `flips` flips may fail by a flip: one
    /// injected during the call, or one since open that a segment mapping may still hold (the
    /// engine maps segments, and a flip in a map stays until the map is dropped; the engine
    /// simulator allows the same).
    fn flip_may_show(&self, flips: u64) -> bool {
        let now = self.read_flips();
        now > flips || now > self.flips_at_open
    }

    /// A read or verification that failed: allowed when a flip may show
    /// ([`Self::flip_may_show`]), and then its error must name the stream and the offset (the
    /// stored bytes are intact, so the store is not restarted); or after a failed write or
    /// sync since open (the tree worker's side files, say), as any call's.
    fn flipped(&mut self, what: &str, flips: u64, error: &kimberlite::Error) -> Check {
        let message = error.to_string();
        let names_where = message.contains("stream") && message.contains("offset");
        let may_flip = self.flip_may_show(flips);
        if may_flip && names_where {
            self.stats.faults_detected += 1;
            return Ok(());
        }
        if self.failures_now() > self.failures_at_open {
            return self.failed(what, error);
        }
        if may_flip {
            return Err(format!(
                "{what} failed by a flip without naming the stream and offset: {message}"
            ));
        }
        Err(format!("{what} failed with no flip injected: {message}"))
    }

    /// `verify_all` finds every stream intact, unless a flip was injected during it; then
    /// each problem names a stream of the store and an offset it holds.
    pub(super) fn verify(&mut self) -> Check {
        self.stats.verifications += 1;
        let flips = self.read_flips();
        let report = match self.store()?.verify_all() {
            Ok(report) => report,
            Err(error) => return self.flipped("verify_all", flips, &error),
        };
        if report.is_intact() {
            return Ok(());
        }
        if !self.flip_may_show(flips) {
            return Err(format!(
                "verify_all found damage with no flip injected: {:?}",
                report.problems
            ));
        }
        let store = self.store()?;
        for problem in &report.problems {
            let len = match &problem.name {
                Some(name) if store.stream(name) == Some(problem.stream) => {
                    self.models.get(name).map_or(0, |model| model.events.len())
                }
                // The catalogue (stream 0) has no name and no model: any offset it holds.
                None if problem.stream == kimberlite::CATALOG_STREAM => usize::MAX,
                _ => {
                    return Err(format!(
                        "verify_all names no stream of the store: {problem:?}"
                    ))
                }
            };
            if problem.offset.as_u64() > len as u64 {
                return Err(format!(
                    "verify_all names an offset past the stream: {problem:?}"
                ));
            }
        }
        self.stats.faults_detected += 1;
        Ok(())
    }

    /// Each stream's tree head is the root recomputed from its acknowledged events.
    pub(super) fn check_tree_heads(&mut self) -> Check {
        let models = self.models.clone();
        for (name, model) in &models {
            let Some(id) = self.store()?.stream(name) else {
                return Err(format!("{name}: the stream is gone"));
            };
            let head = match self.store()?.tree_head(id) {
                Ok(head) => head,
                Err(error) => return self.failed("tree_head", &error),
            };
            let leaves = (0u64..)
                .zip(&model.events)
                .map(|(offset, event)| event_leaf_hash(offset, event));
            let root = MemoryTree::from_leaves(leaves).root();
            if head.tree_size != model.events.len() as u64 || head.root != root {
                return Err(format!(
                    "{name}: tree head of size {} does not match the recomputation over {} \
                     events",
                    head.tree_size,
                    model.events.len()
                ));
            }
        }
        Ok(())
    }
}
