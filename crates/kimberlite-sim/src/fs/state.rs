//! The simulated file system's state: files (durable and current images, unsynced
//! operations), directory entries, placed links and special files, and the fault generator.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use kimberlite_storage::{EntryKind, UnexpectedEntry};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::faults::{FaultConfig, FaultCounts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PendingOp {
    Write { position: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Inode {
    pub(super) durable: Vec<u8>,
    pub(super) current: Vec<u8>,
    pub(super) pending: Vec<PendingOp>,
}

pub(super) fn apply(image: &mut Vec<u8>, op: &PendingOp) {
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
pub(super) struct State {
    pub(super) rng: ChaCha8Rng,
    pub(super) faults: FaultConfig,
    pub(super) faults_enabled: bool,
    pub(super) counts: FaultCounts,
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) next_inode: u64,
    pub(super) entries: BTreeMap<PathBuf, u64>,
    pub(super) durable_entries: BTreeMap<PathBuf, u64>,
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) locks: BTreeSet<PathBuf>,
    /// Links and special files (`SimFileSystem::place`): listed, never opened or walked into.
    pub(super) specials: BTreeMap<PathBuf, EntryKind>,
    /// Where links placed with `SimFileSystem::place_link` point (outside the store).
    pub(super) link_targets: BTreeMap<PathBuf, PathBuf>,
    /// Test-only breakage: links are followed to their targets instead of refused.
    pub(super) follow_links: bool,
    /// A read-only mount: every change is refused (and counted).
    pub(super) read_only: bool,
    /// One-shot flips: the next read of `path` covering file byte `position` flips its low bit.
    pub(super) planned_flips: Vec<(PathBuf, u64)>,
    /// Bumped by every crash: handles and locks from before it are dead.
    pub(super) generation: u64,
}

impl State {
    pub(super) fn roll(&mut self, probability: f64) -> bool {
        self.faults_enabled && probability > 0.0 && self.rng.random_bool(probability.min(1.0))
    }

    /// Applies read faults to `buf`, just read from `path` at file `position`: a planned flip
    /// covering those bytes (always), else a random one (with `read_flip_probability`).
    pub(super) fn read_faults(&mut self, path: &Path, position: u64, buf: &mut [u8]) {
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

    pub(super) fn maybe_flip(&mut self, buf: &mut [u8]) {
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

    pub(super) fn inode(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "inode is gone"))
    }

    /// `path` itself, or a refusal when it or a directory above it is a link or a special
    /// file, as the real file system does (`kimberlite_storage`'s `nofollow` module). With the
    /// `follow_links` breakage, a link is followed to its target instead.
    pub(super) fn through(&self, path: &Path, expected: EntryKind) -> io::Result<PathBuf> {
        let hit = path
            .ancestors()
            .find_map(|at| Some((at, *self.specials.get(at)?)));
        let Some((at, found)) = hit else {
            return Ok(path.to_path_buf());
        };
        if let (true, Some(target)) = (self.follow_links, self.link_targets.get(at)) {
            let rest = path.strip_prefix(at).unwrap_or(Path::new(""));
            return Ok(target.join(rest));
        }
        Err(UnexpectedEntry {
            path: at.to_path_buf(),
            found,
            expected: if at == path { expected } else { EntryKind::Dir },
        }
        .into_io())
    }

    pub(super) fn refuse_special(&self, path: &Path, expected: EntryKind) -> io::Result<()> {
        self.through(path, expected).map(drop)
    }

    /// On a read-only mount, the error a change of `path` gets (counted); else `Ok`.
    pub(super) fn refuse_change(&mut self, path: &Path) -> io::Result<()> {
        if !self.read_only {
            return Ok(());
        }
        self.counts.read_only_refusals += 1;
        Err(io::Error::new(
            io::ErrorKind::ReadOnlyFilesystem,
            format!("{}: read-only file system", path.display()),
        ))
    }

    pub(super) fn lookup(&self, path: &Path) -> io::Result<u64> {
        let path = &self.through(path, EntryKind::File)?;
        self.entries.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )
        })
    }

    pub(super) fn check_parent(&self, path: &Path) -> io::Result<()> {
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

/// The entries of `map` directly inside `dir`, in order.
pub(super) fn children<'a, V>(
    map: &'a BTreeMap<PathBuf, V>,
    dir: &'a Path,
) -> impl Iterator<Item = &'a PathBuf> + 'a {
    map.range::<Path, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded))
        .map(|(entry, _)| entry)
        .take_while(move |entry| entry.starts_with(dir))
        .filter(move |entry| entry.parent() == Some(dir))
}

/// Locks `state`. A panic while holding the lock is a simulator bug; the state is still usable
/// for reporting it.
pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything stored in a `SimFileSystem`: files (durable and current images, unsynced
/// operations), entries, directories, links. Equal snapshots mean nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) entries: BTreeMap<PathBuf, u64>,
    pub(super) durable_entries: BTreeMap<PathBuf, u64>,
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) specials: BTreeMap<PathBuf, EntryKind>,
    pub(super) link_targets: BTreeMap<PathBuf, PathBuf>,
}

impl Snapshot {
    /// The files (path and current bytes) and directories at or under `dir`: what an outside
    /// directory held, to compare before and after.
    #[must_use]
    pub fn under(&self, dir: &Path) -> (Vec<(PathBuf, Vec<u8>)>, Vec<PathBuf>) {
        let files = self
            .entries
            .iter()
            .filter(|(path, _)| path.starts_with(dir))
            .map(|(path, id)| {
                let bytes = self.inodes.get(id).map(|inode| inode.current.clone());
                (path.clone(), bytes.unwrap_or_default())
            })
            .collect();
        let dirs = self.dirs.iter().filter(|d| d.starts_with(dir)).cloned();
        (files, dirs.collect())
    }
}
