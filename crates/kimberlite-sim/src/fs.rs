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
//! | link or special file | [`SimFileSystem::place`] | the entry is listed; opening, creating or walking through it is refused (`UnexpectedEntry`) | report it as damage naming the path; never follow it |
//!
//! Not modelled: misdirected writes, corruption of durable bytes at rest (that is tampering,
//! tested on real files by the storage crate's tests), directories that vanish (directories are
//! durable once created), and concurrent access (the engine is driven by one thread).
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
use kimberlite_storage::{EntryKind, FileHandle, FileSystem, UnexpectedEntry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::faults::{FaultConfig, FaultCounts};

#[derive(Debug, Clone)]
enum PendingOp {
    Write { position: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOp>,
}

fn apply(image: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { position, data } => {
            let start = *position as usize;
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            if let Some(target) = image.get_mut(start..end) {
                target.copy_from_slice(data);
            }
        }
        PendingOp::SetLen(len) => image.resize(*len as usize, 0),
    }
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    faults: FaultConfig,
    faults_enabled: bool,
    counts: FaultCounts,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    entries: BTreeMap<PathBuf, u64>,
    durable_entries: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    /// Links and special files (`SimFileSystem::place`): listed, never opened or walked into.
    specials: BTreeMap<PathBuf, EntryKind>,
    /// One-shot flips: the next read of `path` covering file byte `position` flips its low bit.
    planned_flips: Vec<(PathBuf, u64)>,
    /// Bumped by every crash: handles and locks from before it are dead.
    generation: u64,
}

impl State {
    fn roll(&mut self, probability: f64) -> bool {
        self.faults_enabled && probability > 0.0 && self.rng.random_bool(probability.min(1.0))
    }

    /// Applies read faults to `buf`, just read from `path` at file `position`: a planned flip
    /// covering those bytes (always), else a random one (with `read_flip_probability`).
    fn read_faults(&mut self, path: &Path, position: u64, buf: &mut [u8]) {
        let end = position.saturating_add(buf.len() as u64);
        let planned = self
            .planned_flips
            .iter()
            .position(|(at_path, at)| at_path == path && (position..end).contains(at));
        if let Some(index) = planned {
            let (_, at) = self.planned_flips.remove(index);
            if let Some(byte) = buf.get_mut((at - position) as usize) {
                *byte ^= 1;
            }
            self.counts.read_flips += 1;
            return;
        }
        self.maybe_flip(buf);
    }

    fn maybe_flip(&mut self, buf: &mut [u8]) {
        let probability = self.faults.read_flip_probability;
        if buf.is_empty() || !self.roll(probability) {
            return;
        }
        let at = self.rng.random_range(0..buf.len());
        let bit = self.rng.random_range(0..8u32);
        if let Some(byte) = buf.get_mut(at) {
            *byte ^= 1 << bit;
        }
        self.counts.read_flips += 1;
    }

    fn inode(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "inode is gone"))
    }

    /// Refuses `path` when it or a directory above it is a link or a special file, as the
    /// real file system does (`kimberlite_storage`'s `nofollow` module).
    fn refuse_special(&self, path: &Path, expected: EntryKind) -> io::Result<()> {
        let hit = path
            .ancestors()
            .find_map(|at| Some((at, *self.specials.get(at)?)));
        match hit {
            Some((at, found)) => Err(UnexpectedEntry {
                path: at.to_path_buf(),
                found,
                expected: if at == path { expected } else { EntryKind::Dir },
            }
            .into_io()),
            None => Ok(()),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        self.refuse_special(path, EntryKind::File)?;
        self.entries.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )
        })
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !self.dirs.contains(parent) => {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no such directory", parent.display()),
                ))
            }
            _ => Ok(()),
        }
    }
}

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
            planned_flips: Vec::new(),
            generation: 0,
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a simulator bug; the state is still usable for
        // reporting it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Puts a link (or a special file: `EntryKind::Other`) at `path`, replacing what was there:
    /// an attacker's entry inside a store, which the engine must refuse, not follow.
    pub fn place(&self, path: &Path, kind: EntryKind) {
        let mut state = self.lock();
        state.entries.remove(path);
        state.dirs.remove(path);
        state.specials.insert(path.to_path_buf(), kind);
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
}

/// The entries of `map` directly inside `dir`, in order.
fn children<'a, V>(
    map: &'a BTreeMap<PathBuf, V>,
    dir: &'a Path,
) -> impl Iterator<Item = &'a PathBuf> + 'a {
    map.range::<Path, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded))
        .map(|(entry, _)| entry)
        .take_while(move |entry| entry.starts_with(dir))
        .filter(move |entry| entry.parent() == Some(dir))
}

/// An open simulated file.
#[derive(Debug)]
pub struct SimFile {
    fs: SimFileSystem,
    inode: u64,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.fs.lock();
        if state.generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: handle from before a crash",
                self.path.display()
            )));
        }
        Ok(state)
    }
}

impl FileHandle for SimFile {
    fn len_bytes(&self) -> io::Result<u64> {
        let mut state = self.state()?;
        Ok(state.inode(self.inode)?.current.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        let mut state = self.state()?;
        let inode = state.inode(self.inode)?;
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        let source = start
            .checked_add(buf.len())
            .and_then(|end| inode.current.get(start..end))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of file")
            })?;
        buf.copy_from_slice(source);
        state.read_faults(&self.path, position, buf);
        Ok(())
    }

    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        let mut state = self.state()?;
        let probability = state.faults.write_fail_probability;
        let failure = state.roll(probability);
        let landed = if failure {
            state.counts.write_failures += 1;
            let len = state.rng.random_range(0..=buf.len());
            buf.get(..len).unwrap_or_default()
        } else {
            buf
        };
        let op = PendingOp::Write {
            position,
            data: landed.to_vec(),
        };
        let inode = state.inode(self.inode)?;
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        if failure {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated full disk",
            ));
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.state()?;
        let inode = state.inode(self.inode)?;
        let op = PendingOp::SetLen(len);
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.state()?;
        let probability = state.faults.sync_fail_probability;
        if state.roll(probability) {
            state.counts.sync_failures += 1;
            // The kernel may or may not have written the pages before reporting the error.
            let persisted = state.rng.random_bool(0.5);
            let inode = state.inode(self.inode)?;
            if persisted {
                inode.durable = inode.current.clone();
                inode.pending.clear();
            }
            return Err(io::Error::other("simulated fsync failure"));
        }
        let lie = state.faults.lie_on_sync;
        let inode = state.inode(self.inode)?;
        if !lie {
            inode.durable = inode.current.clone();
            inode.pending.clear();
        }
        Ok(())
    }
}

/// A held simulated advisory lock.
#[derive(Debug)]
pub struct SimLock {
    fs: SimFileSystem,
    path: PathBuf,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.fs.lock();
        if state.generation == self.generation {
            state.locks.remove(&self.path);
        }
    }
}

impl FileSystem for SimFileSystem {
    type File = SimFile;
    type Lock = SimLock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.refuse_special(path, EntryKind::Dir)?;
        for ancestor in path.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let state = self.lock();
        let inode = state.lookup(path)?;
        Ok(SimFile {
            fs: self.clone(),
            inode,
            generation: state.generation,
            path: path.to_path_buf(),
        })
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.lock();
        state.refuse_special(path, EntryKind::File)?;
        state.check_parent(path)?;
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
        Ok(SimFile {
            fs: self.clone(),
            inode,
            generation: state.generation,
            path: path.to_path_buf(),
        })
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
        if let Some(parent) = to.parent() {
            state.refuse_special(parent, EntryKind::Dir)?;
        }
        state.check_parent(to)?;
        let id = state.lookup(from)?;
        state.entries.remove(from);
        state.entries.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.lookup(path)?;
        state.entries.remove(path);
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        state.refuse_special(path, EntryKind::Dir)?;
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
        if !state.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(SimLock {
            fs: self.clone(),
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
