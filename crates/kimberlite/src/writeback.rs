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

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use kimberlite_storage::backend::SegmentSync;
use kimberlite_storage::StorageError;

use crate::sync_helper::{Done, SyncThread};

/// The store's writeback thread (started on first use) and the sync it is running.
#[derive(Default)]
pub(crate) struct Writeback {
    /// In a mutex only to make the store `Sync` (a `Receiver` is not): always reached
    /// through `&mut`.
    link: Mutex<Option<SyncThread>>,
    /// Where the batches waiting for a sync ended when the running sync began
    /// (`TreeBacklog::mark`): it makes the batches before it durable.
    running: Option<u64>,
}

impl Writeback {
    /// Whether a sync is running (started and not yet recorded).
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
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

    /// Hands `syncs`, which cover the batches before `mark`, to the thread; gives them back
    /// when there is no thread to run them.
    pub(crate) fn start(
        &mut self,
        syncs: Vec<SegmentSync>,
        mark: u64,
    ) -> Result<(), Vec<SegmentSync>> {
        let link = self.link.get_mut().unwrap_or_else(PoisonError::into_inner);
        if link.is_none() {
            *link = SyncThread::start("kimberlite-writeback");
        }
        let Some(thread) = link.as_ref() else {
            return Err(syncs);
        };
        if let Err(refused) = thread.jobs.send(syncs) {
            *link = None;
            return Err(refused.0);
        }
        self.running = Some(mark);
        Ok(())
    }

    /// The running writeback once it has finished (waiting for it when `wait`): its mark,
    /// syncs and outcome. `None` when none is running, or it is still running and `!wait`.
    pub(crate) fn finished(&mut self, wait: bool) -> Option<(u64, Done)> {
        let mark = self.running?;
        let link = self.link.get_mut().unwrap_or_else(PoisonError::into_inner);
        let receiver = &link.as_ref()?.done;
        let received = if wait {
            receiver.recv().ok()
        } else {
            match receiver.try_recv() {
                Err(mpsc::TryRecvError::Empty) => return None,
                received => received.ok(),
            }
        };
        self.running = None;
        let done = received.unwrap_or_else(|| {
            *link = None;
            (Vec::new(), Err(thread_ended()))
        });
        Some((mark, done))
    }
}

fn thread_ended() -> StorageError {
    StorageError::Io {
        context: "the writeback thread stopped during a sync".into(),
        source: std::io::Error::other("writeback thread ended"),
    }
}
