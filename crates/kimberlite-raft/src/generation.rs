//! Which files of a node's directory hold its applied state, and their crash-safe replacement
//! by a snapshot's (docs/REPLICATION.md, section "Snapshots").
//!
//! The store, the applied state file and the snapshot file make one *generation*, numbered:
//! generation 0 is `store/`, `state-machine.log`, `snapshot.json`; generation n > 0 is
//! `store-n/`, `state-machine-n.log`, `snapshot-n.json`. An install writes a generation
//! whose names nothing in the directory has, syncs it, then replaces the small file
//! `store.current` (the live generation's number): that is the commit point, so a crash
//! leaves the old generation live, or the new one, whole. At open, every other generation's
//! files are an interrupted install or a replaced generation, and are removed. Only files are
//! renamed, so this works over any [`FileSystem`] (the storage trait renames no directory).

use std::io;
use std::path::{Path, PathBuf};

use kimberlite_storage::{EntryKind, FileSystem};

use crate::node_fs::NodeFs;

/// The store's directory in a node's directory (generation 0).
pub const STORE_DIR: &str = "store";
/// The file naming the live generation; absent means generation 0.
const CURRENT_FILE: &str = "store.current";
/// How many unused numbers an install tries; a bound, never reached in practice.
const FRESH_TRIES_MAX: u64 = 1 << 20;

/// One generation of a node's applied state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

impl Generation {
    fn suffix(self) -> String {
        match self.0 {
            0 => String::new(),
            n => format!("-{n}"),
        }
    }

    /// The store's directory.
    pub(crate) fn store_dir(self, dir: &Path) -> PathBuf {
        dir.join(format!("{STORE_DIR}{}", self.suffix()))
    }

    /// The applied state file's name.
    pub(crate) fn applied_name(self) -> String {
        format!("state-machine{}.log", self.suffix())
    }

    /// The snapshot file's name.
    pub(crate) fn snapshot_name(self) -> String {
        format!("snapshot{}.json", self.suffix())
    }

    /// The generation whose file or directory `name` is (a `.tmp` file beside one too).
    fn of(name: &str) -> Option<Self> {
        let name = name.strip_suffix(".tmp").unwrap_or(name);
        let rest = ["store", "state-machine", "snapshot"]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))?;
        let number = rest
            .strip_suffix(".log")
            .or_else(|| rest.strip_suffix(".json"))
            .unwrap_or(rest);
        if number.is_empty() {
            return Some(Self(0));
        }
        let digits = number.strip_prefix('-')?;
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let generation = Self(digits.parse().ok()?);
        let names = [
            format!("{STORE_DIR}{}", generation.suffix()),
            generation.applied_name(),
            generation.snapshot_name(),
        ];
        names.contains(&name.to_owned()).then_some(generation)
    }

    /// The live generation of node directory `dir`.
    pub(crate) fn current(fs: &NodeFs, dir: &Path) -> io::Result<Self> {
        let Some(bytes) = fs.read_if_exists(&dir.join(CURRENT_FILE))? else {
            return Ok(Self(0));
        };
        let text = String::from_utf8(bytes).unwrap_or_default();
        text.parse().map(Self).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{CURRENT_FILE} holds no generation number: {text:?}"),
            )
        })
    }

    /// A generation after `self` of which nothing is in `dir` (a removed store directory may
    /// stay behind, empty, on a file system that cannot remove directories).
    pub(crate) fn fresh(self, fs: &NodeFs, dir: &Path) -> io::Result<Self> {
        let names: Vec<String> = fs.list_dir(dir)?;
        for n in self.0 + 1..self.0 + FRESH_TRIES_MAX {
            let next = Self(n);
            if !names.iter().any(|name| Self::of(name) == Some(next)) {
                return Ok(next);
            }
        }
        Err(io::Error::other("no unused generation number"))
    }

    /// Makes `self` (its files written and synced) the live generation: the commit point
    /// of an install.
    pub(crate) fn commit(self, fs: &NodeFs, dir: &Path, sync: bool) -> io::Result<()> {
        if sync {
            // The new files' and store directory's entries.
            fs.sync_dir(&self.store_dir(dir))?;
            fs.sync_dir(dir)?;
        }
        fs.replace(dir, CURRENT_FILE, self.0.to_string().as_bytes(), sync)
    }

    /// Removes every file and store directory of `dir` that belongs to another generation.
    pub(crate) fn remove_others(self, fs: &NodeFs, dir: &Path) -> io::Result<()> {
        for name in fs.list_dir(dir)? {
            if Self::of(&name).is_none_or(|generation| generation == self) {
                continue;
            }
            let path = dir.join(&name);
            match fs.entry_kind(&path)? {
                Some(EntryKind::Dir) => fs.remove_tree(&path)?,
                Some(_) => fs.remove_file(&path)?,
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_belong_to_their_generation_only() {
        assert_eq!(Generation::of("store"), Some(Generation(0)));
        assert_eq!(Generation::of("snapshot.json"), Some(Generation(0)));
        assert_eq!(Generation::of("state-machine.log.tmp"), Some(Generation(0)));
        assert_eq!(Generation::of("store-12"), Some(Generation(12)));
        assert_eq!(Generation::of("snapshot-3.json"), Some(Generation(3)));
        assert_eq!(Generation::of("state-machine-3.log"), Some(Generation(3)));
        for other in [
            "store.current",
            "store-",
            "store-1.log",
            "snapshot-3.log",
            "raft-log",
            "store-1x",
            "access",
        ] {
            assert_eq!(Generation::of(other), None, "{other}");
        }
        for generation in [Generation(0), Generation(7)] {
            let store = generation.store_dir(Path::new("/n"));
            let store = store.file_name().unwrap().to_str().unwrap();
            assert_eq!(Generation::of(store), Some(generation));
            assert_eq!(Generation::of(&generation.applied_name()), Some(generation));
            assert_eq!(
                Generation::of(&generation.snapshot_name()),
                Some(generation)
            );
        }
    }
}
