//! Writeback under `Durability::Unsynced`: the segments are synced in the background as the
//! appends go on, so that no append waits for the device to write out tens of megabytes. The
//! thread is here; appends start and record its syncs (`Kimberlite::write_back` in `write.rs`,
//! `State::record_writeback`).
//!
//! Unsynced batches reach the Merkle trees only once synced (`TreeBacklog`), so a caller that
//! never syncs must be synced for it. Once the batches waiting hold [`Writeback::START_BYTES`],
//! an append takes a handle on each segment written (`StoreBackend::sync_begin`, under the
//! write lock, as group commit does) and hands them to a thread of the store that syncs them;
//! a later append (or the close) records the finished sync and hands the batches it covered
//! to the trees. A failed sync stops the store (fail-stop), as a failed append does.
//!
//! | the waiting batches hold         | a writeback is running        | the append             |
//! |----------------------------------|-------------------------------|------------------------|
//! | under `START_BYTES`              | -                             | returns                |
//! | `START_BYTES` or more            | no                            | starts one             |
//! | `START_BYTES` or more            | yes                           | returns                |
//! | over `UNSYNCED_BYTES_MAX`        | yes                           | waits for it           |
//! | over `UNSYNCED_BYTES_MAX` after  | -                             | syncs itself           |
//!
//! The last two rows bound the memory the batches hold when the device is slower than the
//! appends: the appends then wait for it, as they did when every such sync ran in the append.

use std::sync::{Mutex, PoisonError};

use kimberlite_storage::backend::SegmentSync;

use crate::sync_helper::{Done, SyncThread};

/// The store's writeback thread (started on first use) and the sync it is running.
pub(crate) struct Writeback {
    /// In a mutex only to make the store `Sync` (a `Receiver` is not): always reached
    /// through `&mut`.
    thread: Mutex<SyncThread>,
    /// Where the batches waiting for a sync ended when the running sync began
    /// (`TreeBacklog::mark`): it makes the batches before it durable.
    running: Option<u64>,
}

impl Default for Writeback {
    fn default() -> Self {
        Self {
            thread: Mutex::new(SyncThread::new("kimberlite-writeback")),
            running: None,
        }
    }
}

impl std::fmt::Debug for Writeback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writeback")
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl Writeback {
    /// Payload bytes of unsynced batches at which an append starts a writeback: small enough
    /// that a segment's rotation, which syncs it inside an append, finds little left to write.
    pub(crate) const START_BYTES: u64 = 16 << 20;

    /// Whether a sync is running (started and not yet recorded).
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Hands `syncs`, which cover the batches before `mark`, to the thread; gives them back
    /// when there is no thread to run them.
    pub(crate) fn start(
        &mut self,
        syncs: Vec<SegmentSync>,
        mark: u64,
    ) -> Result<(), Vec<SegmentSync>> {
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        thread.send(syncs)?;
        self.running = Some(mark);
        Ok(())
    }

    /// The running writeback once it has finished (waiting for it when `wait`): its mark,
    /// syncs and outcome. `None` when none is running, or it is still running and `!wait`.
    pub(crate) fn finished(&mut self, wait: bool) -> Option<(u64, Done)> {
        let mark = self.running?;
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let done = if wait { thread.wait() } else { thread.poll()? };
        self.running = None;
        Some((mark, done))
    }
}
