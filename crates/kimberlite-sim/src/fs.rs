//! [`SimFileSystem`]: a deterministic, in-memory file system that injects faults.
//!
//! It implements the on-disk engine's [`FileSystem`] trait, so `SimStorage` is the very same
//! `Storage` code running over simulated files. Everything is decided by a seeded ChaCha8
//! generator and ordered maps, so the same seed and the same calls give the same run.
//!
//! # Fault model
//!
//! Each file (inode) has a *durable* image (what survives power loss) and a *current* image
//! (what reads see: the OS page cache), plus the list of writes and truncations made since its
//! last successful `sync_data`. The namespace is the same: *current* directory entries, and the
//! *durable* ones that a `sync_dir` of their parent has made permanent.
//!
//! | fault | when | what happens | what the engine must do |
//! |---|---|---|---|
//! | lost unsynced writes | [`SimFileSystem::crash`] | each file keeps its durable image plus a random *prefix* of its unsynced operations | recover every synced batch; never return the lost ones |
//! | torn write | crash | the last kept write may be cut at any byte (sectors are not atomic) | detect the torn record by length and CRC; truncate it |
//! | lost directory entry | crash | entries created, renamed or removed since their directory's last `sync_dir` revert | sync the directory before relying on an entry |
//! | bit flip on read | each read, with `read_flip_probability` | one bit of the returned bytes is flipped; the stored bytes are fine (a transient or latent read error) | report an error, never return the flipped data |
//! | failed sync | each `sync_data`, with `sync_fail_probability` | returns an error; the data may or may not have become durable | stop accepting writes (fail-stop) until reopened |
//! | full disk | each write, with `write_fail_probability` | a random prefix of the write lands, then `StorageFull` | leave the log as before; fail-stop |
//! | link or wrong entry type | [`SimFileSystem::place`], [`SimFileSystem::place_link`] (pointing outside the store) | the entry is listed; opening, creating or walking through it is refused (`UnexpectedEntry`); `rename` replaces a link and refuses a directory, as `rename(2)` | report it as damage naming the path; never follow it |
//! | tampering at rest | [`SimFileSystem::write_raw`], [`SimFileSystem::remove_dir_all`] (durable at once) | files rewritten (forged), directories gone | never sign, prove or return what the log does not hold; report lost data |
//! | read-only mount | [`SimFileSystem::set_read_only`] | every change fails with `ReadOnlyFilesystem` and is counted; [`FileSystem::open_readonly`] handles cannot write | a read-only open changes nothing; a writable one fails saying so |
//!
//! [`SimFileSystem::snapshot`] and [`SimFileSystem::restore`] undo an attack and prove that a
//! read-only open changed nothing. Not modelled: misdirected writes, bit rot at rest (tested on
//! real files by the storage crate's tests), and concurrent access (one writer process).
//!
//! # Assumptions about real media (what the engine trusts)
//!
//! - A successful `fsync`/`fdatasync` makes the file's written bytes durable; a successful
//!   `fsync` of a directory makes its entries durable.
//! - `rename` within a directory is atomic: after a crash the name points at the old or the
//!   new file, never at a mix.
//! - Nothing else: not the order of unsynced writes beyond "a prefix survives", not sector
//!   atomicity, not that a read returns what was written.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kimberlite_storage::{EntryKind, FileSystem, UnexpectedEntry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::state::{apply, children, Inode, PendingOp, State};

pub use crate::faults::{FaultConfig, FaultCounts};
pub use file::{SimFile, SimLock};
pub use state::Snapshot;

mod file;
mod state;
mod tamper;

/// A simulated file system shared by the engine (through [`FileSystem`]) and the simulator
/// (through the inherent methods). Cloning shares the same files.
#[derive(Debug, Clone)]
pub struct SimFileSystem {
    state: Arc<Mutex<State>>,
}

impl SimFileSystem {
    /// An empty file system whose faults are drawn from `seed`.
    #[must_use]
    pub fn new(seed: u64, faults: FaultConfig) -> Self {
        let state = State {
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults,
            faults_enabled: true,
            counts: FaultCounts::default(),
            inodes: BTreeMap::new(),
            next_inode: 0,
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
            dirs: BTreeSet::new(),
            locks: BTreeSet::new(),
            specials: BTreeMap::new(),
            link_targets: BTreeMap::new(),
            follow_links: false,
            read_only: false,
            planned_flips: Vec::new(),
            generation: 0,
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        state::lock(&self.state)
    }

    /// Turns fault injection on or off (crash losses are not faults: they always apply).
    /// The simulator turns faults off while it checks what survived.
    pub fn set_faults_enabled(&self, enabled: bool) {
        self.lock().faults_enabled = enabled;
    }

    /// Plans a one-shot fault: the next read of `path` that covers byte `position` of the file
    /// returns that byte with its low bit flipped (the stored byte stays intact). Reads of the
    /// same bytes after that one are clean: a transient read error, for regression tests.
    pub fn flip_next_read(&self, path: &Path, position: u64) {
        self.lock()
            .planned_flips
            .push((path.to_path_buf(), position));
    }

    /// The faults injected so far.
    #[must_use]
    pub fn counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Simulates power loss: every file keeps its durable image plus a random prefix of its
    /// unsynced operations, the last kept write possibly torn at any byte; unsynced directory
    /// entries revert; open handles and locks die.
    pub fn crash(&self) {
        let mut state = self.lock();
        let state = &mut *state;
        state.counts.crashes += 1;
        state.generation += 1;
        state.locks.clear();
        state.entries = state.durable_entries.clone();
        let live: BTreeSet<u64> = state.entries.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        for inode in state.inodes.values_mut() {
            let pending = std::mem::take(&mut inode.pending);
            let kept = state.rng.random_range(0..=pending.len());
            state.counts.dropped_operations += (pending.len() - kept) as u64;
            let mut image = std::mem::take(&mut inode.durable);
            for op in pending.iter().take(kept) {
                apply(&mut image, op);
            }
            // The first dropped write may have been half-way to the media.
            if let Some(PendingOp::Write { position, data }) = pending.get(kept) {
                if !data.is_empty() && state.rng.random_bool(0.5) {
                    let cut = state.rng.random_range(0..data.len());
                    let torn = PendingOp::Write {
                        position: *position,
                        data: data.get(..cut).unwrap_or_default().to_vec(),
                    };
                    apply(&mut image, &torn);
                    state.counts.torn_writes += 1;
                }
            }
            inode.current = image.clone();
            inode.durable = image;
        }
    }

    /// The current bytes of a file, without faults (for the simulator's own checks).
    #[must_use]
    pub fn read_raw(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.entries.get(path)?;
        state.inodes.get(id).map(|inode| inode.current.clone())
    }

    /// Every file path, sorted.
    #[must_use]
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().entries.keys().cloned().collect()
    }

    /// A handle on `inode`, opened at `path`; it fails once a crash has passed (`state`'s
    /// generation is the one it belongs to).
    fn handle(&self, state: &State, inode: u64, path: &Path, writable: bool) -> SimFile {
        SimFile {
            state: Arc::clone(&self.state),
            inode,
            generation: state.generation,
            path: path.to_path_buf(),
            writable,
        }
    }
}

impl FileSystem for SimFileSystem {
    type File = SimFile;
    type Lock = SimLock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let path = &state.through(path, EntryKind::Dir)?;
        if !state.dirs.contains(path) {
            state.refuse_change(path)?;
        }
        for ancestor in path.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.lock();
        let inode = state.lookup(path)?;
        state.refuse_change(path)?;
        Ok(self.handle(&state, inode, path, true))
    }

    fn open_readonly(&self, path: &Path) -> io::Result<SimFile> {
        let state = self.lock();
        let inode = state.lookup(path)?;
        Ok(self.handle(&state, inode, path, false))
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.lock();
        let path = &state.through(path, EntryKind::File)?;
        state.check_parent(path)?;
        state.refuse_change(path)?;
        let inode = match state.entries.get(path).copied() {
            Some(existing) => {
                let file = state.inode(existing)?;
                let op = PendingOp::SetLen(0);
                apply(&mut file.current, &op);
                file.pending.push(op);
                existing
            }
            None => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(id, Inode::default());
                state.entries.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(self.handle(&state, inode, path, true))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.lock();
        let id = state.lookup(path)?;
        let mut bytes = state.inode(id)?.current.clone();
        state.read_faults(path, 0, &mut bytes);
        Ok(bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let from = &state.through(from, EntryKind::File)?;
        let to = &match to.parent().zip(to.file_name()) {
            Some((parent, name)) => state.through(parent, EntryKind::Dir)?.join(name),
            None => to.to_path_buf(),
        };
        state.check_parent(to)?;
        // As `rename(2)`: a link or a special file at `to` is replaced, never followed; a
        // directory there is refused (`EISDIR`, which the real file system names as damage).
        if let Some(EntryKind::Dir) = state.specials.get(to) {
            return Err(UnexpectedEntry {
                path: to.clone(),
                found: EntryKind::Dir,
                expected: EntryKind::File,
            }
            .into_io());
        }
        let id = state.lookup(from)?;
        state.refuse_change(from)?;
        state.specials.remove(to);
        state.link_targets.remove(to);
        state.entries.remove(from);
        state.entries.insert(to.clone(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let path = &state.through(path, EntryKind::File)?;
        state.lookup(path)?;
        state.refuse_change(path)?;
        state.entries.remove(path);
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let path = &state.through(path, EntryKind::Dir)?;
        let files = state.entries.keys();
        let dirs = state.dirs.iter().chain(state.specials.keys());
        let names = files
            .chain(dirs)
            .filter(|entry| entry.parent() == Some(path))
            .filter_map(|entry| entry.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let state = &mut *state;
        if state.read_only {
            // Nothing in a read-only directory changed: nothing to make durable.
            return Ok(());
        }
        // Paths under `path` form one contiguous range of each ordered map, so a sync costs
        // the directory's size, not the whole file system's.
        let stale: Vec<PathBuf> = children(&state.durable_entries, path).cloned().collect();
        for entry in stale {
            state.durable_entries.remove(&entry);
        }
        let current: Vec<(PathBuf, u64)> = children(&state.entries, path)
            .map(|entry| {
                (
                    entry.clone(),
                    state.entries.get(entry).copied().unwrap_or_default(),
                )
            })
            .collect();
        state.durable_entries.extend(current);
        Ok(())
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        let state = self.lock();
        if let Some(kind) = state.specials.get(path) {
            return Ok(Some(*kind));
        }
        if let Some(parent) = path.parent() {
            state.refuse_special(parent, EntryKind::Dir)?;
        }
        if state.entries.contains_key(path) {
            Ok(Some(EntryKind::File))
        } else if state.dirs.contains(path) {
            Ok(Some(EntryKind::Dir))
        } else {
            Ok(None)
        }
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<SimLock>> {
        let mut state = self.lock();
        state.refuse_special(path, EntryKind::File)?;
        // The lock file is created when missing: a change.
        state.refuse_change(path)?;
        if !state.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            generation: state.generation,
        }))
    }

    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        Ok(Bytes::from(self.read(path)?))
    }
}

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;
