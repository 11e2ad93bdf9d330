//! Read-only rounds: the store is closed (cleanly, or by a crash that leaves recovery work)
//! and its file system mounted read-only. A writable open must fail with a typed error that
//! says so, and change nothing; a read-only open (`Kimberlite::open_read_only_with_fs`) must
//! succeed, try no change at all, verify intact, and report exactly the recovery that the
//! writable open which follows (the same files, mounted writable again) then does, showing
//! the same events and tree heads.

use std::collections::BTreeMap;

use bytes::Bytes;
use kimberlite::{Kimberlite, Offset, RecoveryReport};
use rand::Rng;

use super::attack::root_of;
use super::state::{Check, StoreRun, STORE_DIR};
use crate::fs::{SimFileSystem, Snapshot};

/// What a read-only open showed: its recovery report and each named stream's events.
type View = (RecoveryReport, BTreeMap<String, Vec<Bytes>>);

impl StoreRun {
    /// One read-only round (the store must be open and not poisoned).
    pub(super) fn read_only_round(&mut self) -> Check {
        let crash = self.rng.random_bool(0.5);
        self.fs.set_faults_enabled(false);
        if crash {
            self.fs.crash();
        }
        drop(self.store.take());
        let before = self.fs.snapshot();
        self.fs.set_read_only(!self.options.lie_read_only);
        let view = self.inspect_read_only(&before);
        self.fs.set_read_only(false);
        let (report, events) = view?;
        // A second crash of files the first left without unsynced operations changes nothing.
        self.reopen(crash)?;
        let store = self.store()?;
        if store.recovery_report() != report {
            return Err(format!(
                "a read-only open reported recovery \"{report}\", the writable open then did \
                 \"{}\"",
                store.recovery_report()
            ));
        }
        for (name, seen) in &events {
            let found = self.models.get(name).map(|model| &model.events);
            if found != Some(seen) {
                return Err(format!(
                    "{name}: a read-only open showed {} events, the writable open then {}",
                    seen.len(),
                    found.map_or(0, Vec::len)
                ));
            }
        }
        Ok(())
    }

    /// Refuses a writable open, then opens read-only and looks; nothing may change.
    fn inspect_read_only(&mut self, before: &Snapshot) -> Result<View, String> {
        let config = self.config.clone();
        if !self.options.lie_read_only {
            let opened = Kimberlite::open_with_fs(self.fs.clone(), STORE_DIR, config.clone());
            SimFileSystem::writable_open_refused(opened)?;
            self.stats.attacks.writable_opens_refused += 1;
            if self.fs.snapshot() != *before {
                return Err("a refused writable open changed the file system".into());
            }
        }
        let refused = self.fs.counts().read_only_refusals;
        let opened = if self.options.lie_read_only {
            Kimberlite::open_with_fs(self.fs.clone(), STORE_DIR, config)
        } else {
            Kimberlite::open_read_only_with_fs(self.fs.clone(), STORE_DIR, config)
        };
        let store = opened.map_err(|error| format!("a read-only open failed: {error}"))?;
        let view = self.look(&store)?;
        drop(store);
        self.fs.unchanged_since(refused, before)?;
        self.stats.attacks.read_only_opens += 1;
        Ok(view)
    }

    /// What a read-only open shows: intact, and tree heads over the events it reads.
    fn look(&self, store: &Kimberlite) -> Result<View, String> {
        let report = store
            .verify_all()
            .map_err(|error| format!("verify_all of a read-only open: {error}"))?;
        if !report.is_intact() {
            return Err(format!("a read-only open does not verify: {report:?}"));
        }
        let mut events = BTreeMap::new();
        for name in self.models.keys() {
            let Some(id) = store.stream(name) else {
                return Err(format!("{name}: a read-only open does not show it"));
            };
            let read: Vec<Bytes> = store
                .read(id, Offset::ZERO, u64::MAX)
                .map_err(|error| format!("{name}: read of a read-only open: {error}"))?
                .into_iter()
                .map(|event| event.payload)
                .collect();
            let head = store
                .tree_head(id)
                .map_err(|error| format!("{name}: tree head of a read-only open: {error}"))?;
            if head.tree_size != read.len() as u64 || head.root != root_of(&read) {
                return Err(format!(
                    "{name}: a read-only open's tree head of size {} is not the root of the {} \
                     events it reads",
                    head.tree_size,
                    read.len()
                ));
            }
            events.insert(name.clone(), read);
        }
        Ok((store.recovery_report(), events))
    }
}
