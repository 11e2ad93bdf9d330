//! [`SimFile`] and [`SimLock`]: an open simulated file and a held simulated lock.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use kimberlite_storage::FileHandle;
use rand::Rng;

use super::state::{apply, lock, PendingOp, State};

/// An open simulated file.
#[derive(Debug)]
pub struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) inode: u64,
    pub(super) generation: u64,
    pub(super) path: PathBuf,
    /// Opened for writing (`open`, `create`), not with `open_readonly`.
    pub(super) writable: bool,
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = lock(&self.state);
        if state.generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: handle from before a crash",
                self.path.display()
            )));
        }
        Ok(state)
    }

    /// A change through a handle opened read-only is refused (and counted, as on a read-only
    /// mount: `EBADF` on a real system).
    fn refuse_unless_writable(&self, state: &mut State) -> io::Result<()> {
        if self.writable {
            return state.refuse_change(&self.path);
        }
        state.counts.read_only_refusals += 1;
        Err(io::Error::other(format!(
            "{}: file opened read-only",
            self.path.display()
        )))
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
        self.refuse_unless_writable(&mut state)?;
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
        self.refuse_unless_writable(&mut state)?;
        let inode = state.inode(self.inode)?;
        let op = PendingOp::SetLen(len);
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.state()?;
        if !self.writable {
            // Nothing was written through this handle: nothing to make durable.
            return Ok(());
        }
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
    pub(super) state: Arc<Mutex<State>>,
    pub(super) path: PathBuf,
    pub(super) generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state.generation == self.generation {
            state.locks.remove(&self.path);
        }
    }
}
