//! What an attacker with write access to a store's directory does to it at rest, and a
//! read-only mount: links (pointing outside the store) and entries of the wrong type, whole
//! directories removed, files rewritten; and snapshots, to undo an attack and to prove that a
//! read-only open changed nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kimberlite_storage::EntryKind;

use super::state::Snapshot;
use super::SimFileSystem;

impl SimFileSystem {
    /// Puts a link, a special file (`EntryKind::Other`), a directory or a file at `path`,
    /// replacing what was there: an attacker's entry inside a store, which the engine must
    /// refuse, not follow or open. A `Dir` placed where a file belongs and a `File` where a
    /// directory belongs are refused as the real file system refuses them
    /// (`UnexpectedEntry`).
    pub fn place(&self, path: &Path, kind: EntryKind) {
        let mut state = self.lock();
        state.entries.remove(path);
        state.durable_entries.remove(path);
        state.dirs.remove(path);
        state.specials.insert(path.to_path_buf(), kind);
    }

    /// Puts a symbolic link at `path` pointing to `target` (outside the store), replacing
    /// what was there. Refused like any link, unless [`Self::set_follow_links`] broke that.
    pub fn place_link(&self, path: &Path, target: &Path) {
        self.place(path, EntryKind::Link);
        self.lock()
            .link_targets
            .insert(path.to_path_buf(), target.to_path_buf());
    }

    /// Test-only breakage: links are followed to their targets, as a file system without
    /// no-follow semantics would. A correct checker must catch the writes outside the store.
    pub fn set_follow_links(&self, follow: bool) {
        self.lock().follow_links = follow;
    }

    /// Makes the file system a read-only mount (or writable again): every change (creating,
    /// opening for writing, renaming, removing, locking, writing through any handle) fails
    /// with `ReadOnlyFilesystem` and is counted in `FaultCounts::read_only_refusals`.
    pub fn set_read_only(&self, read_only: bool) {
        self.lock().read_only = read_only;
    }

    /// Removes the directory `path` and everything under it, at rest (`rm -rf`, durable at
    /// once). Returns whether anything was there.
    pub fn remove_dir_all(&self, path: &Path) -> bool {
        let mut state = self.lock();
        let state = &mut *state;
        let before = state.entries.len() + state.dirs.len() + state.specials.len();
        state.entries.retain(|entry, _| !entry.starts_with(path));
        state
            .durable_entries
            .retain(|entry, _| !entry.starts_with(path));
        state.dirs.retain(|dir| !dir.starts_with(path));
        state.specials.retain(|entry, _| !entry.starts_with(path));
        state
            .link_targets
            .retain(|entry, _| !entry.starts_with(path));
        let live: BTreeSet<u64> = state
            .entries
            .values()
            .chain(state.durable_entries.values())
            .copied()
            .collect();
        state.inodes.retain(|id, _| live.contains(id));
        before > state.entries.len() + state.dirs.len() + state.specials.len()
    }

    /// Makes `bytes` the content of the file at `path`, at rest (durable at once), creating it
    /// and its directories when missing: a forger's rewrite.
    pub fn write_raw(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let state = &mut *state;
        let id = match state.entries.get(path) {
            Some(id) => *id,
            None => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.entries.insert(path.to_path_buf(), id);
                state.durable_entries.insert(path.to_path_buf(), id);
                for dir in path.ancestors().skip(1) {
                    if !dir.as_os_str().is_empty() {
                        state.dirs.insert(dir.to_path_buf());
                    }
                }
                id
            }
        };
        let inode = state.inodes.entry(id).or_default();
        inode.current = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.pending.clear();
    }

    /// Whether `path` is a link placed with [`Self::place_link`].
    #[must_use]
    pub fn entry_is_link(&self, path: &Path) -> bool {
        self.lock().link_targets.contains_key(path)
    }

    /// Every directory, sorted.
    #[must_use]
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.lock().dirs.iter().cloned().collect()
    }

    /// Everything stored now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            inodes: state.inodes.clone(),
            entries: state.entries.clone(),
            durable_entries: state.durable_entries.clone(),
            dirs: state.dirs.clone(),
            specials: state.specials.clone(),
            link_targets: state.link_targets.clone(),
        }
    }

    /// Puts back what `snapshot` holds (undoing an attack). Handles and locks from before are
    /// dead, as after a crash; faults and their generator are untouched.
    pub fn restore(&self, snapshot: &Snapshot) {
        let mut state = self.lock();
        state.inodes = snapshot.inodes.clone();
        state.entries = snapshot.entries.clone();
        state.durable_entries = snapshot.durable_entries.clone();
        state.dirs = snapshot.dirs.clone();
        state.specials = snapshot.specials.clone();
        state.link_targets = snapshot.link_targets.clone();
        state.next_inode = state
            .inodes
            .keys()
            .next_back()
            .map_or(state.next_inode, |last| state.next_inode.max(last + 1));
        state.generation += 1;
        state.locks.clear();
    }

    /// After a read-only open of this (read-only mounted) file system: an error if the open
    /// tried any change (the mount's refusals grew past `refused`) or the files are not as in
    /// `before`.
    pub(crate) fn unchanged_since(&self, refused: u64, before: &Snapshot) -> Result<(), String> {
        let tried = self.counts().read_only_refusals - refused;
        if tried > 0 {
            return Err(format!("a read-only open tried {tried} changes"));
        }
        if self.snapshot() != *before {
            return Err("a read-only open changed the file system".into());
        }
        Ok(())
    }

    /// What a writable open on a read-only mount must answer: a failure that says so.
    pub(crate) fn writable_open_refused<T, E: std::fmt::Display>(
        opened: Result<T, E>,
    ) -> Result<(), String> {
        match opened {
            Ok(_) => Err("a writable open on a read-only mount succeeded".into()),
            Err(error) if error.to_string().contains("read-only file system") => Ok(()),
            Err(error) => Err(format!(
                "a writable open on a read-only mount failed without saying so: {error}"
            )),
        }
    }
}
