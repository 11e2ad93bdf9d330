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
        let events = match self.store()?.read(id, Offset::new(from), u64::MAX) {
            Ok(events) => events,
            Err(error) => return self.failed("read", &error),
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

    /// `verify_all` finds every stream intact.
    pub(super) fn verify(&mut self) -> Check {
        self.stats.verifications += 1;
        let report = match self.store()?.verify_all() {
            Ok(report) => report,
            Err(error) => return self.failed("verify_all", &error),
        };
        if !report.is_intact() {
            return Err(format!("verify_all found damage: {:?}", report.problems));
        }
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
