//! The simulator's read-only opens: after a crash, before recovery runs, the file system is
//! mounted read-only. A writable open must fail, saying so, and change nothing; a read-only
//! open (`ReadOnlyFs`) must open, try no change at all (the mount counts every one), leave
//! every file as it was, and show each stream as the writable open that follows recovers it.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use kimberlite_storage::{ReadOnlyFs, Storage};
use kimberlite_types::StreamId;

use super::{read_all, Check, Run, STORE_DIR};
use crate::fs::SimFileSystem;

/// Each stream's events as a read-only open showed them.
pub(super) type View = BTreeMap<StreamId, Vec<Bytes>>;

impl Run {
    /// Mounts the file system read-only (faults off), tries a writable open, then opens
    /// read-only and reads every stream; the file system must be as before.
    pub(super) fn read_only_open(&mut self) -> Result<View, String> {
        self.fs.set_faults_enabled(false);
        self.fs.set_read_only(true);
        let before = self.fs.snapshot();
        let result = self.open_both_ways(&before);
        self.fs.set_read_only(false);
        self.fs.set_faults_enabled(true);
        result
    }

    fn open_both_ways(&mut self, before: &crate::fs::Snapshot) -> Result<View, String> {
        SimFileSystem::writable_open_refused(Storage::open_on(
            self.fs.clone(),
            Path::new(STORE_DIR),
            self.config,
        ))?;
        self.stats.attacks.writable_opens_refused += 1;
        let refused = self.fs.counts().read_only_refusals;
        let fs = ReadOnlyFs::new(self.fs.clone());
        let mut storage = Storage::open_on(fs, Path::new(STORE_DIR), self.config)
            .map_err(|error| format!("a read-only open failed: {error}"))?;
        let streams: Vec<StreamId> = self.models.keys().copied().collect();
        let view = streams
            .into_iter()
            .map(|stream| Ok((stream, read_all(&mut storage, stream)?)))
            .collect::<Result<View, String>>()?;
        drop(storage);
        self.fs.unchanged_since(refused, before)?;
        self.stats.attacks.read_only_opens += 1;
        Ok(view)
    }

    /// After the writable open that followed: every stream as the read-only open showed it.
    pub(super) fn check_read_only_view(&self, view: &View) -> Check {
        for (stream, events) in view {
            let recovered = self.models.get(stream).map(|model| &model.log);
            if recovered != Some(events) {
                return Err(format!(
                    "stream {stream}: a read-only open showed {} events, recovery then kept {}",
                    events.len(),
                    recovered.map_or(0, Vec::len)
                ));
            }
        }
        Ok(())
    }
}
